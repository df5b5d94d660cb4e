"""Benchmarks for minicnn (not tests): ``python -m benchmarks.run [--quick] [--out DIR]``."""
