"""Beyond the paper (chapter 09): does the sparse-dense gap change with model size, and what do longer
(iso-FLOP) or dynamic-mask (RigL, SET) sparse pre-training runs buy?

Every function takes results as the plain dicts the runners store and returns a ``DataFrame`` or a
frozen dataclass; nothing here draws or reads files.

* :func:`gap_frame`: validation-loss gap (sparse minus dense, nats) of the Chinchilla-length static-mask
  runs at every size and sparsity, with a Welch t interval over pre-training seeds (``stats.contrast``);
* :func:`fit_gap_trend` / :class:`GapTrend`: the gap against ``log10`` of the non-embedding parameters
  by ordinary least squares, and the interval of the fitted mean at any size;
* :func:`extrapolations`: that fit evaluated at the paper's sizes (:func:`paper_targets`), said to be an
  extrapolation when outside the sizes fitted;
* :func:`pooled_contrast`: a contrast whose variance pools the within-group spread of several groups,
  so that a group with one pre-training seed still gets an interval (assuming equal variances);
* :func:`variant_frame`: one row per run kind of one size (dense, static, iso-FLOP, RigL, SET) with
  cost, validation loss, and downstream quality against the dense and the static runs.

Model size is given by the caller as ``params``: non-embedding parameters by size name, i.e.
``flops.sparsifiable_weights`` of the size's configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import stats
from .flops import sparsifiable_weights
from .model import get_config
from .verdicts import METRIC, TASK_LABEL, final_evals, variant_of

__all__ = ["VARIANT_ORDER", "run_label", "gap_frame", "GapTrend", "fit_gap_trend", "paper_targets",
           "extrapolations", "pooled_contrast", "score_columns", "variant_frame", "chapter_inputs", "answer_rules",
           "answers_frame", "gpu_time_frame", "dynamic_update_cost",
           "leave_one_out", "size_outcome"]

# "" = Chinchilla-length static mask; "isoflop" = static mask trained to the dense model's FLOPs;
# "rigl" / "set" = dynamic sparsity. Rows of the comparison follow this order within a sparsity.
VARIANT_ORDER = ("", "isoflop", "rigl", "set")
_VARIANT_NAME = {"rigl": "RigL", "set": "SET"}


# ----------------------------------------------------------------------------------------- helpers

def _t(q: float, df: float) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def _level(sparsity) -> float:
    return round(float(sparsity), 6)


def _percent(sparsity: float) -> str:
    return f"{100 * sparsity:g}%"


def run_label(variant: str, sparsity: float) -> str:
    """How a run kind is named in tables and figures: "dense", "static 50%", "static 50%, iso-FLOP",
    "RigL 75%", "SET 75%"."""
    variant = variant or ""
    if variant in ("", "isoflop"):
        base = "dense" if sparsity == 0 else f"static {_percent(sparsity)}"
        return base + (", iso-FLOP" if variant == "isoflop" else "")
    return f"{_VARIANT_NAME.get(variant, variant)} {_percent(sparsity)}"


def _params_of(params: Mapping[str, int], size: str) -> int:
    if size not in params:
        raise KeyError(f"no non-embedding parameter count for size {size!r} (params has {sorted(params)})")
    return int(params[size])


def _units(results: Iterable[Mapping], seed_key: str, value_key: str) -> list[float]:
    """Per-unit means of ``value_key`` (a unit = one ``seed_key``; repeated runs of a unit are averaged)."""
    by_unit: dict = {}
    for r in results:
        by_unit.setdefault(r[seed_key], []).append(float(r[value_key]))
    return stats.unit_means(by_unit) if by_unit else []


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


# -------------------------------------------------------------------------- gap by model size

def gap_frame(pretrain_results: Iterable[Mapping], params: Mapping[str, int]) -> pd.DataFrame:
    """Validation-loss gap, sparse minus dense (nats; positive = sparse worse), of the Chinchilla-length
    static-mask runs (variant ``""``), one row per size and sparsity > 0, ordered by sparsity then size.

    Each pre-training seed is one unit; the 95% interval is ``stats.contrast`` (Welch t) of the
    per-seed losses. Where it is not computable (fewer than two seeds on a side, no spread), ``low``,
    ``high``, ``se`` and ``df`` are NaN and ``interval`` says why (``""`` otherwise)."""
    cells: dict[tuple[str, float], list[Mapping]] = {}
    for r in pretrain_results:
        if variant_of(r) == "":
            cells.setdefault((r["size"], _level(r["sparsity"])), []).append(r)
    rows = []
    for (size, sparsity), runs in cells.items():
        if sparsity == 0:
            continue
        sparse = _units(runs, "seed", "val_loss")
        dense = _units(cells.get((size, 0.0), []), "seed", "val_loss")
        row = {"size": size, "non-embedding params": _params_of(params, size), "sparsity": sparsity,
               "dense seeds": len(dense), "sparse seeds": len(sparse), "dense val loss": _mean(dense),
               "sparse val loss": _mean(sparse), "gap": _mean(sparse) - _mean(dense),
               "low": math.nan, "high": math.nan, "se": math.nan, "df": math.nan, "interval": ""}
        if not dense:
            row["interval"] = "no dense run of this size"
        else:
            try:
                ci = stats.contrast([(1, sparse), (-1, dense)])
                row |= {"low": ci.low, "high": ci.high, "se": ci.se, "df": ci.df}
            except stats.NotComputable as why:
                row["interval"] = str(why)
        rows.append(row)
    columns = ["size", "non-embedding params", "sparsity", "dense seeds", "sparse seeds", "dense val loss",
               "sparse val loss", "gap", "low", "high", "se", "df", "interval"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["sparsity", "non-embedding params"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- trend with size

@dataclass(frozen=True)
class GapTrend:
    """``gap = intercept + slope * log10(N)``, fitted by ordinary least squares over the sizes at one
    sparsity. ``slope`` is in nats per tenfold increase of the non-embedding parameters ``N``.

    The fit weighs every size equally and takes the residual spread as its error (it does not use
    the per-size seed intervals)."""

    sparsity: float
    intercept: float
    slope: float
    slope_se: float
    residual_sd: float
    df: int  # n - 2
    n: int
    x: tuple[float, ...]  # log10(N) of the sizes fitted

    @property
    def _xbar(self) -> float:
        return float(np.mean(self.x))

    @property
    def _sxx(self) -> float:
        return float(np.sum((np.asarray(self.x) - self._xbar) ** 2))

    @property
    def fitted_range(self) -> tuple[float, float]:
        """Smallest and largest ``N`` fitted."""
        return 10 ** min(self.x), 10 ** max(self.x)

    def slope_interval(self, level: float = 0.95) -> stats.Interval:
        """The t interval of the slope (``df = n - 2``)."""
        half = _t(0.5 + level / 2, self.df) * self.slope_se
        return stats.Interval(self.slope, self.slope - half, self.slope + half, self.slope_se, self.df,
                              (self.n,), level)

    def predict(self, n_params: float, level: float = 0.95, new_size: bool = False) -> stats.Interval:
        """The fitted gap at ``n_params`` with its t interval: of the fitted mean,
        ``se = s sqrt(1/n + (x0 - xbar)^2 / Sxx)``, or, with ``new_size``, of the gap one new size would
        show (the prediction interval, ``se = s sqrt(1 + 1/n + (x0 - xbar)^2 / Sxx)``, which adds the
        scatter of the sizes around the line); ``x0 = log10(n_params)``, ``df = n - 2``. Both assume the
        straight line is the right model, which nothing here can check far outside the fitted sizes."""
        if not n_params > 0:
            raise ValueError(f"n_params must be positive, got {n_params!r}")
        x0 = math.log10(n_params)
        estimate = self.intercept + self.slope * x0
        se = self.residual_sd * math.sqrt(int(new_size) + 1 / self.n + (x0 - self._xbar) ** 2 / self._sxx)
        half = _t(0.5 + level / 2, self.df) * se
        return stats.Interval(estimate, estimate - half, estimate + half, se, self.df, (self.n,), level)


def _at(gaps: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    rows = gaps[np.isclose(gaps["sparsity"].astype(float), float(sparsity)) & np.isfinite(gaps["gap"].astype(float))]
    return rows.sort_values("non-embedding params")


def fit_gap_trend(gaps: pd.DataFrame, sparsity: float) -> GapTrend:
    """OLS of ``gap`` on ``log10(non-embedding params)`` over the rows of ``gaps`` (:func:`gap_frame`) at
    ``sparsity``. ``stats.NotComputable`` with fewer than 3 sizes or when the points lie on a line."""
    rows = _at(gaps, sparsity)
    n = len(rows)
    if n < 3:
        raise stats.NotComputable(f"{n} model size(s) at sparsity {_percent(sparsity)}; a trend with an interval "
                                  "needs at least 3")
    x = np.log10(rows["non-embedding params"].to_numpy(dtype=float))
    y = rows["gap"].to_numpy(dtype=float)
    xbar, ybar = x.mean(), y.mean()
    sxx = float(np.sum((x - xbar) ** 2))
    if sxx == 0:
        raise stats.NotComputable(f"every gap at sparsity {_percent(sparsity)} is from the same model size")
    slope = float(np.sum((x - xbar) * (y - ybar)) / sxx)
    intercept = float(ybar - slope * xbar)
    residual_sd = math.sqrt(float(np.sum((y - intercept - slope * x) ** 2)) / (n - 2))
    if residual_sd <= 1e-12 * max(1.0, float(np.abs(y).max())):
        raise stats.NotComputable(f"the gaps at sparsity {_percent(sparsity)} lie exactly on a line: no residual "
                                  "spread to build an interval on")
    return GapTrend(float(sparsity), intercept, slope, residual_sd / math.sqrt(sxx), residual_sd, n - 2, n,
                    tuple(float(v) for v in x))


def paper_targets() -> dict[str, int]:
    """The paper's model sizes as non-embedding parameters (they do not depend on the vocabulary)."""
    return {"GPT-2 Small": sparsifiable_weights(get_config("gpt2-small")),
            "GPT-3 XL": sparsifiable_weights(get_config("gpt3-xl"))}


def extrapolations(gaps: pd.DataFrame, targets: Mapping[str, int], level: float = 0.95) -> pd.DataFrame:
    """The fitted gap (:func:`fit_gap_trend`) at each target size, one row per sparsity > 0 and target.

    ``kind`` is "extrapolation" when the target is outside the sizes fitted, else "interpolation";
    ``factor beyond largest fitted`` is ``N / max fitted N``. Where the trend is not computable the
    prediction is NaN and ``interval`` says why (``""`` otherwise)."""
    rows = []
    for sparsity in sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0):
        fitted = _at(gaps, sparsity)["non-embedding params"].astype(float)
        low_n, high_n = (fitted.min(), fitted.max()) if len(fitted) else (math.nan, math.nan)
        try:
            trend, why = fit_gap_trend(gaps, sparsity), ""
        except stats.NotComputable as error:
            trend, why = None, str(error)
        for name, n_params in targets.items():
            row = {"target": name, "non-embedding params": int(n_params), "sparsity": sparsity,
                   "predicted gap": math.nan, "low": math.nan, "high": math.nan,
                   "fitted range": f"{low_n:.1e}-{high_n:.1e}" if len(fitted) else "",
                   "kind": "interpolation" if low_n <= n_params <= high_n else "extrapolation",
                   "factor beyond largest fitted": n_params / high_n, "interval": why}
            if trend is not None:
                ci = trend.predict(n_params, level, new_size=True)
                row |= {"predicted gap": ci.estimate, "low": ci.low, "high": ci.high}
            rows.append(row)
    columns = ["target", "non-embedding params", "sparsity", "predicted gap", "low", "high", "fitted range", "kind",
               "factor beyond largest fitted", "interval"]
    return pd.DataFrame(rows, columns=columns)


# ----------------------------------------------------------------------- pooled-variance contrast

def pooled_contrast(groups: Iterable[tuple[float, Sequence[float]]], pool: Iterable[Sequence[float]],
                    level: float = 0.95) -> stats.Interval:
    """Student t interval of ``sum_i c_i mean(x_i)`` (``groups``: pairs ``(c_i, unit values x_i)``)
    whose variance is the pooled within-group variance ``s_p^2`` of the groups in ``pool``.

    ``pool`` lists every group that shares the variance, each once (the contrast's own groups among
    them when they should count); groups with one unit add nothing to it but may be in the contrast.
    ``se = s_p sqrt(sum c_i^2 / n_i)``, ``df = sum (n_g - 1)`` over the pooled groups.

    This assumes every group has the same variance (here: that a run kind does not change the spread
    between pre-training seeds); with one seed a group's own variance cannot be checked.
    ``stats.NotComputable`` when no pooled group has two units or the pooled variance is 0."""
    contrast = [(float(c), [float(x) for x in xs]) for c, xs in groups if c != 0]
    if not contrast:
        raise ValueError("a contrast needs at least one group with a non-zero coefficient")
    if any(not xs for _, xs in contrast):
        raise ValueError("every group of the contrast needs at least one unit")
    pooled = [[float(x) for x in xs] for xs in pool if len(xs) >= 2]
    df = sum(len(xs) - 1 for xs in pooled)
    if df == 0:
        raise stats.NotComputable("no group has 2 or more pre-trained models: there is no within-group spread "
                                  "to pool")
    ss = sum(float(np.sum((np.asarray(xs) - np.mean(xs)) ** 2)) for xs in pooled)
    if ss == 0:
        raise stats.NotComputable("every pre-trained model of every group gave its group's value: the pooled "
                                  "variance is 0")
    sp = math.sqrt(ss / df)
    estimate = sum(c * float(np.mean(xs)) for c, xs in contrast)
    se = sp * math.sqrt(sum(c * c / len(xs) for c, xs in contrast))
    half = _t(0.5 + level / 2, df) * se
    return stats.Interval(estimate, estimate - half, estimate + half, se, float(df),
                          tuple(len(xs) for _, xs in contrast), level)


# ------------------------------------------------------------------------ variants of one size

def score_columns(task: str = "e2e") -> dict[str, str]:
    """Names of :func:`variant_frame`'s downstream columns for ``task``: for E2E "E2E BLEU",
    "BLEU vs dense", "BLEU low", "BLEU high"."""
    metric = METRIC.get(task, ("value", ""))[0]
    score = f"{TASK_LABEL.get(task, task)} {metric}"
    return {"score": score, "score low": f"{score} low", "score high": f"{score} high",
            "vs dense": f"{metric} vs dense", "low": f"{metric} low", "high": f"{metric} high",
            "vs static": f"{metric} vs static", "static low": f"{metric} vs static low",
            "static high": f"{metric} vs static high"}


def _difference(units: Sequence[float], reference: Sequence[float], pool: Sequence[Sequence[float]]):
    """(estimate, low, high) of ``mean(units) - mean(reference)`` by :func:`pooled_contrast`; NaN where
    a side is empty, NaN bounds where no interval is computable."""
    if not units or not reference:
        return math.nan, math.nan, math.nan
    estimate = _mean(units) - _mean(reference)
    try:
        ci = pooled_contrast([(1, units), (-1, reference)], pool)
    except stats.NotComputable:
        return estimate, math.nan, math.nan
    return estimate, ci.low, ci.high


def _mean_bounds(units: Sequence[float], pool: Sequence[Sequence[float]]) -> tuple[float, float]:
    """The 95% interval of ``mean(units)`` with the pooled seed variance of ``pool``."""
    if not units:
        return math.nan, math.nan
    try:
        ci = pooled_contrast([(1, units)], pool)
    except stats.NotComputable:
        return math.nan, math.nan
    return ci.low, ci.high


def variant_frame(pretrain_results: Iterable[Mapping], eval_results: Iterable[Mapping], size: str,
                  task: str = "e2e") -> pd.DataFrame:
    """One row per (variant, sparsity) among the pre-training results of ``size``: the dense run
    first, then by sparsity the static, iso-FLOP, RigL and SET runs (labels by :func:`run_label`).

    Cost (means over pre-training seeds): ``tokens``, ``training PFLOP``, ``GPU wall s``. Quality:
    ``val loss`` (mean, with its t interval in ``val loss low``/``high``, pooled variance as below);
    ``val loss vs dense`` with ``low``/``high`` and ``val loss vs static`` (the Chinchilla static run
    of the same sparsity; NaN for static and dense rows) with ``static low``/``high``, both by
    :func:`pooled_contrast` with every group of this size in the pool. Downstream (``task``, masks not
    kept): the score of each pre-trained model is its mean over fine-tuning seeds; the mean of those
    (``E2E BLEU`` for E2E, with its pooled t interval), its difference to dense by :func:`pooled_contrast`
    (``BLEU vs dense``, ``BLEU low``/``high``), the same for ``test_loss`` (``test loss vs dense``,
    nats), and ``fine-tunes``, the number of fine-tuning runs. NaN where a row has no downstream results.
    """
    groups: dict[tuple[str, float], list[Mapping]] = {}
    for r in pretrain_results:
        if r["size"] == size:
            groups.setdefault((variant_of(r), _level(r["sparsity"])), []).append(r)
    evals: dict[tuple[str, float], list[Mapping]] = {}
    for e in eval_results:
        if e["size"] == size and e.get("task") == task and not e.get("keep_masks", False):
            evals.setdefault((variant_of(e), _level(e["sparsity"])), []).append(e)
    keys = sorted(groups, key=lambda k: (k != ("", 0.0), k[1],
                                         VARIANT_ORDER.index(k[0]) if k[0] in VARIANT_ORDER else len(VARIANT_ORDER),
                                         k[0]))
    loss = {k: _units(groups[k], "seed", "val_loss") for k in keys}
    score = {k: _units(evals.get(k, []), "pretrain_seed", "value") for k in keys}
    test = {k: _units([e for e in evals.get(k, []) if e.get("test_loss") is not None], "pretrain_seed", "test_loss")
            for k in keys}
    dense = ("", 0.0)
    names = score_columns(task)
    rows = []
    for key in keys:
        variant, sparsity = key
        runs = groups[key]
        is_reference = key == dense
        vs_dense = (_difference(loss[key], loss.get(dense, []), list(loss.values())) if not is_reference
                    else (math.nan,) * 3)
        static = ("", sparsity)
        vs_static = (_difference(loss[key], loss.get(static, []), list(loss.values()))
                     if variant != "" and sparsity > 0 else (math.nan,) * 3)
        bleu = (_difference(score[key], score.get(dense, []), [v for v in score.values() if v])
                if not is_reference else (math.nan,) * 3)
        bleu_static = (_difference(score[key], score.get(static, []), [v for v in score.values() if v])
                       if variant != "" and sparsity > 0 else (math.nan,) * 3)
        test_loss = (_difference(test[key], test.get(dense, []), [v for v in test.values() if v])
                     if not is_reference else (math.nan,) * 3)
        loss_bounds = _mean_bounds(loss[key], list(loss.values()))
        score_bounds = _mean_bounds(score[key], [v for v in score.values() if v])
        walls = [float(r["log"]["wall_s"]) for r in runs if isinstance(r.get("log"), Mapping) and "wall_s" in r["log"]]
        rows.append({
            "run": run_label(variant, sparsity), "variant": variant, "sparsity": sparsity,
            "pre-training seeds": len(loss[key]),
            "tokens": _mean([float(r["tokens"]) for r in runs]),
            "training PFLOP": _mean([float(r["training_flops"]) / 1e15 for r in runs]),
            "GPU wall s": _mean(walls),
            "val loss": _mean(loss[key]), "val loss low": loss_bounds[0], "val loss high": loss_bounds[1],
            "val loss vs dense": vs_dense[0], "low": vs_dense[1], "high": vs_dense[2],
            "val loss vs static": vs_static[0], "static low": vs_static[1], "static high": vs_static[2],
            names["score"]: _mean(score[key]),
            names["score low"]: score_bounds[0], names["score high"]: score_bounds[1],
            names["vs dense"]: bleu[0], names["low"]: bleu[1], names["high"]: bleu[2],
            names["vs static"]: bleu_static[0], names["static low"]: bleu_static[1],
            names["static high"]: bleu_static[2],
            "test loss vs dense": test_loss[0], "test loss low": test_loss[1], "test loss high": test_loss[2],
            "fine-tunes": len(evals.get(key, [])),
            "mask updates": _mean([float(r.get("mask_updates", 0)) for r in runs]),
        })
    frame = pd.DataFrame(rows)
    frame.attrs["task"] = task
    return frame


# ------------------------------------------------------------------ the chapter's inputs and answers

def chapter_inputs(out: Mapping, profile) -> dict:
    """What chapter 09 reads from the scheduler's results ``out`` (stages pretrain, finetune, eval and
    beyond): ``scaling`` (the size study's pre-training results, exactly the planned runs), ``params``
    (non-embedding parameters by size), ``pretrain`` and ``evals`` (every result of ``beyond.size`` at
    the study's levels: dense, static, iso-FLOP, RigL, SET; chapter 08's pruning baseline left out)."""
    from . import runs as R

    b = profile.beyond
    planned = {r.run_id for r in R.scaling_runs(profile)}
    levels = {_level(x) for x in (*b.levels, *b.isoflop_levels, b.dynamic.level)}
    of_size = lambda r: r["size"] == b.size and _level(r["sparsity"]) in levels  # noqa: E731
    return {
        "scaling": [r for rid, r in out["pretrain"].items() if rid in planned],
        "params": {size: sparsifiable_weights(get_config(size)) for size in b.family},
        "pretrain": [r for r in out["pretrain"].values() if of_size(r)],
        "evals": [r for r in final_evals(out["eval"].values(), out["lr_search"])
                  if of_size(r) and r.get("task") == b.task],
    }


def answer_rules(margin: float) -> str:
    """The rules :func:`answers_frame` applies, in words (``margin``: H1's BLEU margin)."""
    return _ANSWER_RULES.format(margin=margin)


_ANSWER_RULES = (
    "- **Size.** Per sparsity, the slope of the gap (sparse minus dense validation loss, nats) against "
    "the base-ten logarithm of the non-embedding parameters: *shrinks* when its 95% interval lies below "
    "zero, *grows* when it lies above, *inconclusive* otherwise.\n"
    "- **Longer sparse pre-training at equal FLOPs.** Validation loss of the iso-FLOP run minus the "
    "Chinchilla-length static run of the same sparsity: *better* when the 95% interval lies below zero, "
    "*worse* above, *inconclusive* otherwise; the same rule against the dense model. Its downstream "
    "score against the dense model uses chapter 06's H1 rule: *preserved* when the interval of the BLEU "
    "change lies above minus the margin of {margin:g} BLEU, *degraded* when it lies below it, "
    "*inconclusive* otherwise.\n"
    "- **Dynamic sparsity.** Validation loss of the RigL and the SET runs minus the static run of the "
    "same sparsity and length, and minus the dense run, and their BLEU against dense, with the same rules.\n"
    "- For both, the BLEU change against the static run of the same sparsity: *better* when its 95% "
    "interval lies above zero, *worse* below, *inconclusive* otherwise.\n"
    "- Every interval is a 95% Student t interval; those of the longer and dynamic runs pool the seed "
    "variance of every run kind of that size (see `pooled_contrast`), because some kinds have a single "
    "pre-training seed. Runs of one seed share their initialisation, first mask and data order across "
    "kinds, but every comparison treats the kinds as independent, which can only widen the intervals.")


def size_outcome(slope: stats.Interval) -> str:
    """The size rule of :func:`answer_rules` applied to the interval of a gap's slope."""
    return _sign_outcome(slope.low, slope.high, "shrinks", "grows")


def _sign_outcome(low: float, high: float, below: str, above: str) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not computable"
    return below if high < 0 else above if low > 0 else "inconclusive"


def _margin_outcome(low: float, high: float, margin: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not computable"
    return "preserved" if low > -margin else "degraded" if high < -margin else "inconclusive"


def answers_frame(gaps: pd.DataFrame, variants: pd.DataFrame, margin: float, level: float = 0.95) -> pd.DataFrame:
    """The chapter's questions judged by :func:`answer_rules`: one row per judged quantity with its
    estimate, interval and outcome (``margin``: H1's BLEU margin, ``verdicts.BLEU_MARGIN``)."""
    rows = []

    def row(question, compared, estimate, low, high, outcome):
        rows.append({"question": question, "compared": compared, "estimate": estimate, "low": low, "high": high,
                     "outcome": outcome})

    for sparsity in sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0):
        try:
            ci = fit_gap_trend(gaps, sparsity).slope_interval(level)
            row("size", f"gap slope per tenfold parameters, {_percent(sparsity)}", ci.estimate, ci.low, ci.high,
                size_outcome(ci))
        except stats.NotComputable as err:
            row("size", f"gap slope per tenfold parameters, {_percent(sparsity)}", math.nan, math.nan, math.nan,
                f"not computable ({err})")
    names = score_columns(variants.attrs.get("task", "e2e"))
    for _, v in variants[variants["variant"] != ""].iterrows():
        question = "longer at equal FLOPs" if v["variant"] == "isoflop" else "dynamic"
        row(question, f"{v['run']} vs static {_percent(v['sparsity'])}, val loss", v["val loss vs static"],
            v["static low"], v["static high"], _sign_outcome(v["static low"], v["static high"], "better", "worse"))
        row(question, f"{v['run']} vs dense, val loss", v["val loss vs dense"], v["low"], v["high"],
            _sign_outcome(v["low"], v["high"], "better", "worse"))
        metric = names["vs dense"].split()[0]
        row(question, f"{v['run']} vs static {_percent(v['sparsity'])}, {metric}", v[names["vs static"]],
            v[names["static low"]], v[names["static high"]],
            _sign_outcome(v[names["static low"]], v[names["static high"]], "worse", "better"))
        row(question, f"{v['run']} vs dense, {metric}", v[names["vs dense"]], v[names["low"]],
            v[names["high"]], _margin_outcome(v[names["low"]], v[names["high"]], margin))
    return pd.DataFrame(rows, columns=["question", "compared", "estimate", "low", "high", "outcome"])


def gpu_time_frame(variants: pd.DataFrame, tokens_per_s: float, update_cost_steps: Mapping[str, float],
                   tokens_per_step: int) -> pd.DataFrame:
    """What each run kind of :func:`variant_frame` costs in time on a GPU that multiplies masked
    weights like any other (chapter 09): its tokens at ``tokens_per_s`` (one run alone on the idle
    GPU, measured), plus, for a dynamic method, ``update_cost_steps[method]`` training steps' worth of
    time for each of the run's mask updates (``mask updates``, measured per update); and that time
    relative to the dense run's."""
    rows = []
    dense = variants[(variants["variant"] == "") & (variants["sparsity"] == 0.0)]
    dense_s = float(dense["tokens"].iloc[0]) / tokens_per_s if len(dense) else math.nan
    for _, v in variants.iterrows():
        steps = float(v["tokens"]) / tokens_per_step
        extra = update_cost_steps.get(v["variant"], 0.0) * float(v.get("mask updates", 0.0) or 0.0)
        seconds = (steps + extra) * tokens_per_step / tokens_per_s
        rows.append({"run": v["run"], "tokens": v["tokens"], "training PFLOP": v["training PFLOP"],
                     "GPU s (one run alone)": seconds, "vs dense": seconds / dense_s,
                     "FLOPs vs dense": v["training PFLOP"] / float(dense["training PFLOP"].iloc[0])
                     if len(dense) else math.nan})
    return pd.DataFrame(rows)


def dynamic_update_cost(bench: Mapping) -> dict:
    """From ``benchmarks/bench_pretrain_throughput.py --loops masked,rigl,set --json``: the measured
    tokens per second of the static mask alone (``"tokens_per_s"``) and, per dynamic method, the time of
    one mask update in training steps (its slowdown over the static mask times the update interval)."""
    rows = bench["rows"]
    ratios = next((r for r in rows if r["loop"] == "ratios"), None)
    masked = next((r for r in rows if r["loop"] == "masked 75%"), None)
    if ratios is None or masked is None:
        raise ValueError("the benchmark file has no 'masked 75%' and 'ratios' rows: run "
                         "bench_pretrain_throughput.py with --loops masked,rigl,set")
    cost = {m: ratios[f"{m}_slowdown_vs_masked"] * ratios["dynamic_interval"] for m in ("rigl", "set")
            if math.isfinite(ratios.get(f"{m}_slowdown_vs_masked", math.nan))}
    return {"tokens_per_s": masked["tokens_per_s"], "update_cost_steps": cost, "preset": masked["preset"],
            "interval": ratios["dynamic_interval"]}


def leave_one_out(gaps: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """How much the size answer rests on any one size: per sparsity and left-out size, the slope of
    the gap fitted without it, its interval and the outcome the size rule gives (chapter 09)."""
    rows = []
    for sparsity in sorted(s for s in gaps["sparsity"].astype(float).unique() if s > 0):
        at = _at(gaps, sparsity)
        for size in at["size"]:
            rest = gaps[~(np.isclose(gaps["sparsity"].astype(float), sparsity) & (gaps["size"] == size))]
            try:
                ci = fit_gap_trend(rest, sparsity).slope_interval(level)
                low, high, estimate = ci.low, ci.high, ci.estimate
                outcome = size_outcome(ci)
            except stats.NotComputable as err:
                estimate = low = high = math.nan
                outcome = f"not computable ({err})"
            rows.append({"sparsity": sparsity, "left out": size, "slope": estimate, "low": low, "high": high,
                         "outcome": outcome})
    return pd.DataFrame(rows, columns=["sparsity", "left out", "slope", "low", "high", "outcome"])
