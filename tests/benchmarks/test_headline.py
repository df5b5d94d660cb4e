"""The README headline table (benchmarks/headline.py): output, and --update keeping the previous
machine's table when the CPU differs."""

from __future__ import annotations

import json

from benchmarks import headline


def _results(cpu="Intel(R) Xeon(R) Processor", uarch="Rocket Lake"):
    return {"meta": {"started": "2026-12-02 08:00:00 UTC", "quick": False, "command": "python -m benchmarks.run"},
            "machine": {"cpu_model": cpu, "microarchitecture": uarch, "physical_cores": 2,
                        "blas": {"name": "scipy-openblas", "version": "0.3.31", "core_type": "SkylakeX"}},
            "frameworks": {"minicnn-numba": {"info": {"threading": {"codegen": {"vector_isa": "AVX-512"}}}}},
            "models": {"seed": {"float32": {}}},
            "derived": {"steps": {"seed": {"float32": {"100": {"minicnn-numba": {"img_s": 2500.0, "vs_tf": 1.16}}}}},
                        "infer": {"seed": {"float32": {"1000": {"minicnn-numba": {"img_s": 9239.0, "vs_tf": 0.88}}}}},
                        "latency": {"seed": {"float32": {"minicnn-numba": {"median_ms": 0.41, "vs_tf": 6.5}}}},
                        "goals": [{"goal": "seed train step", "target": ">= 1.5x", "verdict": "not met",
                                   "worst": 1.16, "unit": "x", "worst_case": "seed"}]}}


def test_table_names_the_machine_and_the_figures():
    md = headline.table(_results())
    assert "CPU: Intel(R) Xeon(R) Processor (Rocket Lake), 2 cores; numba codegen AVX-512" in md
    assert "core SkylakeX" in md
    assert "| seed | float32 | 100 | 2,500 img/s (1.16x) | 1000 | 9,239 img/s (0.88x) | 0.41 (6.50x) |" in md
    assert "- seed train step >= 1.5x: **not met** (worst 1.16x, seed)" in md


def test_update_same_cpu_replaces_and_other_cpu_keeps_the_previous(tmp_path):
    readme = "# x\n\n## Results\n\ntext\n"
    a = headline.update(readme, "TABLE-A\n", headline.machine_line(_results()))
    assert a.startswith(readme.rstrip("\n")) and "TABLE-A" in a and a.count(headline.START) == 1
    b = headline.update(a, "TABLE-B\n", headline.machine_line(_results()))  # same CPU: replaced
    assert "TABLE-B" in b and "TABLE-A" not in b and "Previous machine" not in b
    amd = _results(cpu="AMD EPYC 7B13", uarch="Zen 3")
    c = headline.update(b, "TABLE-C\n", headline.machine_line(amd))  # new CPU: B kept as previous
    assert "TABLE-C" in c and "Previous machine" in c and "TABLE-B" in c
    assert c.index("TABLE-C") < c.index("TABLE-B") and c.endswith(headline.END + "\n")
    d = headline.update(c, "TABLE-D\n", headline.machine_line(amd))  # same new CPU: previous stays
    assert "TABLE-D" in d and "TABLE-C" not in d and "TABLE-B" in d


def test_main_prints_and_updates(tmp_path, capsys):
    p = tmp_path / "results.json"
    p.write_text(json.dumps(_results()))
    assert headline.main([str(p)]) == 0
    assert "| seed | float32 |" in capsys.readouterr().out
    readme = tmp_path / "README.md"
    readme.write_text(f"# r\n{headline.START}\nold\n{headline.END}\nafter\n")
    assert headline.main([str(p), "--update", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| seed | float32 |" in text and text.endswith("after\n")


def test_bad_input_is_named(tmp_path, capsys):
    p = tmp_path / "r.json"
    p.write_text("{}")
    assert headline.main([str(p)]) == 2
    assert "no 'derived' section" in capsys.readouterr().err
    assert headline.main([str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
