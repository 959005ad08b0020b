"""The statistics against scipy and hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from weightlab.analysis import stats


@pytest.mark.parametrize("df", [1, 2, 3.5, 10, 57.3])
@pytest.mark.parametrize("t", [-12.0, -2.1, -0.3, 0.0, 0.7, 4.3, 40.0])
def test_t_cdf_matches_scipy(t, df):
    assert stats.t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)


@pytest.mark.parametrize("df", [1, 2, 4, 29])
@pytest.mark.parametrize("q", [0.001, 0.025, 0.5, 0.9, 0.975])
def test_t_ppf_matches_scipy(q, df):
    assert stats.t_ppf(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), rel=1e-9, abs=1e-9)


def test_describe_by_hand():
    # mean 2, s = 1, n = 3: CI = 2 ± t(0.975, 2) · 1/√3 = 2 ± 4.302653 / 1.732051
    summary = stats.describe([1.0, 2.0, 3.0])
    assert summary["mean"] == 2.0 and summary["std"] == 1.0 and summary["n"] == 3
    assert summary["ci_high"] - 2.0 == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert summary["ci_low"] == pytest.approx(2.0 - 4.302652729911275 / math.sqrt(3))
    one = stats.describe([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["std"]) and math.isnan(one["ci_low"])


def test_welch_matches_scipy():
    a, b = [0.97, 0.971, 0.969, 0.972], [0.11, 0.095, 0.13]
    ours = stats.welch_t_test(a, b)
    theirs = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert ours["t"] == pytest.approx(theirs.statistic) and ours["p"] == pytest.approx(theirs.pvalue, rel=1e-6)
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    assert ours["df"] == pytest.approx((va + vb) ** 2 / (va**2 / 3 + vb**2 / 2))


def test_welch_without_spread():
    assert stats.welch_t_test([1, 1], [0, 0]) == {"t": math.inf, "df": 2.0, "p": 0.0}
    assert math.isnan(stats.welch_t_test([1, 1], [1, 1])["t"])
    assert math.isnan(stats.welch_t_test([1], [0, 2])["p"])


def test_hedges_g_by_hand():
    a, b = [2.0, 4.0], [0.0, 2.0]  # pooled s = √2, d = 2/√2, correction 1 − 3/(4·4 − 9)
    assert stats.hedges_g(a, b) == pytest.approx(2 / math.sqrt(2) * (1 - 3 / 7))


def test_paired_matches_scipy():
    a, b = [0.97, 0.965, 0.972, 0.968], [0.95, 0.951, 0.949, 0.955]
    ours = stats.paired_t_test(a, b)
    theirs = scipy_stats.ttest_rel(a, b)
    assert ours["t"] == pytest.approx(theirs.statistic) and ours["p"] == pytest.approx(theirs.pvalue, rel=1e-6)
    assert ours["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
