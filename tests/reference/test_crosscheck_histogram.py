"""reference.crosscheck.histogram: log-decade histograms of elementwise relative errors (issue 15,
item 4). Known arrays give known counts; exact equality lands in the exact bin; NaN and Inf are
counted apart; a zero or subnormal reference divides by the dtype's smallest normal."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.tf]
pytest.importorskip("tensorflow")

from reference.crosscheck import compare  # noqa: E402
from reference.crosscheck.histogram import LABELS, bin_index, compact, decade_histogram, sparkline  # noqa: E402
from reference.crosscheck.report import histogram_lines, histogram_tables  # noqa: E402


def counts_by_label(h):
    return {label: c for label, c in zip(LABELS, h["counts"]) if c}


def test_the_bins_are_exact_then_decades_then_above_one():
    assert LABELS[0] == "exact" and LABELS[1] == "<=1e-17" and LABELS[2] == "1e-16"
    assert LABELS[-3:] == ("1e-1", "1", ">1") and len(LABELS) == 20
    # each decade is (10^(k-1), 10^k], labelled by its upper end; powers of two avoid the boundaries
    r = np.array([0.0, 2.0 ** -60, 2.0 ** -54, 2.0 ** -30, 2.0 ** -10, 0.75, 1.0, 1.5, np.inf])
    assert [LABELS[i] for i in bin_index(r)] == ["exact", "<=1e-17", "1e-16", "1e-9", "1e-3", "1", "1", ">1", ">1"]


def test_known_arrays_give_known_counts():
    ref = np.array([1.0, 1.0, 1.0, 1.0, 4.0, 0.0, 2.0, 8.0])
    mine = ref + ref * np.array([0, 2.0 ** -10, 2.0 ** -10, 2.0 ** -30, 0.5, 0, -2.0, 2.0 ** -52])
    h = decade_histogram(mine, ref)
    assert counts_by_label(h) == {"exact": 2, "1e-3": 2, "1e-9": 1, "1": 1, ">1": 1, "1e-15": 1}
    assert (h["total"], h["nonfinite"], sum(h["counts"])) == (8, 0, 8)
    # sorted bins: exact exact 1e-15 1e-9 | 1e-3 1e-3 1 >1 -> the lower median is 1e-9; the max >1
    assert (h["median"], h["max"]) == ("1e-9", ">1")


def test_exact_equality_lands_in_the_exact_bin_signed_zeros_included():
    a = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
    h = decade_histogram(a, a.copy())
    assert h["counts"][0] == a.size and sum(h["counts"][1:]) == 0 and h["median"] == h["max"] == "exact"
    z = decade_histogram(np.array([-0.0, 0.0]), np.array([0.0, -0.0]))
    assert z["counts"][0] == 2


def test_nan_and_inf_are_counted_apart_not_binned():
    ref = np.array([1.0, np.nan, 3.0, np.inf, 5.0])
    mine = np.array([1.0, 2.0, np.nan, np.inf, 5.0 * (1 + 2.0 ** -20)])
    h = decade_histogram(mine, ref)
    assert h["nonfinite"] == 3 and h["total"] == 5 and sum(h["counts"]) == 2
    assert counts_by_label(h) == {"exact": 1, "1e-6": 1}
    all_nan = decade_histogram(np.full(3, np.nan), np.full(3, np.nan))
    assert all_nan["nonfinite"] == 3 and all_nan["median"] is None and "3 NaN/Inf" in compact(all_nan)


def test_zero_and_subnormal_references_divide_by_the_smallest_normal():
    tiny64 = np.finfo(np.float64).tiny
    # a value the reference has as 0 is wrong by all of it: r = |a| / tiny, > 1 unless |a| < tiny
    h = decade_histogram(np.array([1e-30, tiny64 / 4]), np.array([0.0, 0.0]))
    assert counts_by_label(h) == {">1": 1, "1": 1}
    # float32: the denominator is float32's smallest normal, not float64's
    tiny32 = np.finfo(np.float32).tiny
    h32 = decade_histogram(np.array([0.0], np.float32), np.array([tiny32 / 8], np.float32))
    assert counts_by_label(h32) == {"1": 1}  # |d| / tiny32 = 1/8


def test_sparkline_marks_empty_bins_blank_and_the_largest_full():
    counts = [1000, 0, 0, 10, 1] + [0] * 15
    s = sparkline(counts)
    assert len(s) == 20 and s[0] == "@" and s[1] == s[2] == " " and s[4] == "." and s[3] not in " .@"
    assert sparkline([0] * 20) == " " * 20


def test_every_compared_row_carries_its_histogram_and_the_report_draws_it():
    ref = np.linspace(1, 2, 12).reshape(3, 4)
    mine = ref.copy()
    mine[1, 2] *= 1 + 2.0 ** -20
    r = compare(mine, ref, 1e-10)
    assert counts_by_label(r["rel_histogram"]) == {"exact": 11, "1e-6": 1}
    assert compare(ref[:2], ref, 1e-10)["rel_histogram"] is None  # shape mismatch: nothing to bin
    row = {"layer": "dense", "tensor": "dW", **r}
    text = "\n".join(histogram_lines([row]))
    assert "dense/dW" in text and "median exact, max 1e-6" in text and "by decade" in text
    table = "\n".join(histogram_tables([row], "layers"))
    assert "1e-6" in table and "NaN/Inf" in table and "dense/dW" in table.splitlines()[-1]
    assert table.splitlines()[-1].split()[1] == "11"
