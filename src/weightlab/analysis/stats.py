"""Statistics over seeds: means, confidence intervals, Welch's and paired t-tests, effect sizes.

Pure functions of plain numbers. The Student t distribution is computed here from the
regularized incomplete beta function (a continued fraction, as in Numerical Recipes §6.4)
so that analysis needs numpy alone; the tests check it against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b), evaluated by the modified Lentz method."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float, one_minus_x: float | None = None) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and 0 ≤ x ≤ 1.

    ``one_minus_x`` may be given when the caller knows 1 − x more precisely than ``1.0 - x``
    (for x within a rounding error of 1).
    """
    y = 1.0 - x if one_minus_x is None else one_minus_x
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, y) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom: 1 − ½·I_{df/(df+t²)}(df/2, ½) for t > 0."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(q: float, df: float) -> float:
    """The t with P(T ≤ t) = q, by bisection on `t_cdf` (monotone, so it cannot miss)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    low, high = -1.0, 1.0
    while t_cdf(low, df) > q:
        low *= 2.0
    while t_cdf(high, df) < q:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < q:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, abs(middle)):
            break
    return 0.5 * (low + high)


def finite(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The values as float64 with None, NaN and ±inf left out (a diverged run's missing loss, say)."""
    x = np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def describe(values: Sequence[float | None] | np.ndarray, confidence: float = 0.95) -> dict:
    """n, mean, sample standard deviation (ddof 1) and the t-based confidence interval of the mean.

    CI = mean ± t_{(1+c)/2, n−1} · s / √n, over the finite values; ``missing`` counts the others
    (``values`` keeps all of them, in order). With one value the spread is unknown: std and CI are NaN.
    """
    everything = [math.nan if v is None else float(v) for v in values]
    x = finite(everything)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    result = {
        "n": n,
        "missing": len(everything) - n,
        "mean": mean,
        "std": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "values": everything,
    }
    if n >= 2:
        std = float(x.std(ddof=1))
        half = t_ppf(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
        result.update(std=std, ci_low=mean - half, ci_high=mean + half)
    return result


def _p_two_sided(t: float, df: float) -> float:
    if math.isnan(t):
        return math.nan
    return 2.0 * (1.0 - t_cdf(abs(t), df)) if not math.isinf(t) else 0.0


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Welch's two-sample t-test of mean(a) ≠ mean(b), not assuming equal variances.

    t = (ā − b̄) / √(s_a²/n_a + s_b²/n_b); df by Welch–Satterthwaite. Two-sided p.
    Zero variance in both samples gives t = ±∞ (p = 0) when the means differ, NaN when not.
    """
    a_values, b_values = finite(a), finite(b)
    if len(a_values) < 2 or len(b_values) < 2:
        return {"t": math.nan, "df": math.nan, "p": math.nan}
    na, nb = len(a_values), len(b_values)
    va, vb = a_values.var(ddof=1) / na, b_values.var(ddof=1) / nb
    difference = a_values.mean() - b_values.mean()
    if va + vb == 0:
        t = math.nan if difference == 0 else math.copysign(math.inf, difference)
        return {"t": t, "df": float(na + nb - 2), "p": math.nan if difference == 0 else 0.0}
    t = float(difference / math.sqrt(va + vb))
    df = float((va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)))
    return {"t": t, "df": df, "p": _p_two_sided(t, df)}


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Standardised mean difference (ā − b̄) / s_pooled, with the small-sample correction 1 − 3/(4(n_a+n_b)−9)."""
    a_values, b_values = finite(a), finite(b)
    na, nb = len(a_values), len(b_values)
    if na < 2 or nb < 2:
        return math.nan
    pooled = math.sqrt(((na - 1) * a_values.var(ddof=1) + (nb - 1) * b_values.var(ddof=1)) / (na + nb - 2))
    difference = a_values.mean() - b_values.mean()
    if pooled == 0:
        return math.nan if difference == 0 else math.copysign(math.inf, difference)
    return float(difference / pooled * (1.0 - 3.0 / (4.0 * (na + nb) - 9.0)))


def paired_t_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The paired differences a_i − b_i: their `describe` (mean and CI), and the one-sample t-test of mean 0."""
    a_values = np.asarray([math.nan if v is None else v for v in a], dtype=np.float64)
    b_values = np.asarray([math.nan if v is None else v for v in b], dtype=np.float64)
    differences = a_values - b_values  # a pair with a missing side is left out by describe
    summary = describe(differences, confidence)
    n = summary["n"]
    if n < 2:
        return {**summary, "t": math.nan, "df": math.nan, "p": math.nan}
    if summary["std"] == 0:
        t = math.nan if summary["mean"] == 0 else math.copysign(math.inf, summary["mean"])
    else:
        t = summary["mean"] / (summary["std"] / math.sqrt(n))
    return {**summary, "t": t, "df": float(n - 1), "p": _p_two_sided(t, n - 1) if not math.isnan(t) else math.nan}
