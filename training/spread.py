"""Spread forecast training: LightGBM quantile models on early-window features, judged against SEISMIC and a naive
growth-scaling baseline on the same held-out cascades.

Cascades come from the synthetic generator (no real repost data is reachable here). The latest 20% of posts by
creation time are the test set; everything the model and the baselines learn (boosters, conformal widening,
SEISMIC's n*, correction factors and cap, the naive ratios) comes from the earlier 80% only. One model serves any
elapsed time: it is trained on several early windows with the window length as a feature.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import Unavailable
from features.model_specs import BatchResult, Evaluator
from features.settings import settings
from features.spread_features import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    SpreadModel,
    cascade_events,
    cascade_outcomes,
    early_features,
    naive_forecast,
    seismic_forecast,
)

TRAIN_WINDOWS = (10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360)
EVAL_WINDOWS = (30, 60)
THRESHOLD = 100  # "100 reposts" is the speed signal
QUANTILES = (0.1, 0.5, 0.9)
TARGET_COVERAGE = 0.80
TEST_SHARE = 0.20
CV_FOLDS = 5


def load_cascades(generated_dir: Path | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """posts.parquet + reposts.parquet from the synthetic company (default) or any folder with those two files,
    such as an import folder (`lossguard data import` writes the same names)."""
    folder = Path(generated_dir or settings.generated_dir)
    missing = [n for n in ("posts.parquet", "reposts.parquet") if not (folder / n).exists()]
    if missing:
        raise Unavailable(f"{folder} 中缺少 {missing}: 请先运行 `lossguard data generate` (make data), 或用 "
                          "`lossguard data import` 导入 posts 与 reposts", field="data")
    return pd.read_parquet(folder / "posts.parquet"), pd.read_parquet(folder / "reposts.parquet")


def with_text_scores(posts: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """p_neg and loss_type as the service will see them: from the registered text models when they exist (no
    train/serve skew), else the generator's labels (p_neg 1/0) so that training still works on a fresh store."""
    from features.modelio import ModelNotFound, load_champion

    try:
        sentiment, loss = load_champion("sentiment"), load_champion("loss_type")
    except ModelNotFound:
        return posts.assign(p_neg=(posts["sentiment"] == "neg").astype(float)), "generator labels"
    texts = posts[["text"]]
    return (posts.assign(p_neg=sentiment.estimator.predict_frame(texts)["p_neg"].to_numpy(),
                         loss_type=loss.estimator.predict_frame(texts)["loss_type"].to_numpy()),
            f"sentiment v{sentiment.version}, loss_type v{loss.version}")


def time_split(posts: pd.DataFrame, test_share: float = TEST_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier posts train (and calibrate), the latest posts test. Training posts whose 24 h outcome would only
    be known after the first test post appeared are left out, as they would be at deployment time."""
    ordered = posts.sort_values("created_at", kind="stable").reset_index(drop=True)
    cut = int(round(len(ordered) * (1.0 - test_share)))
    test = ordered.iloc[cut:].reset_index(drop=True)
    known_by = test["created_at"].min() - pd.Timedelta(hours=settings.spread_horizon_hours) if len(test) else None
    train = ordered.iloc[:cut]
    return (train[train["created_at"] <= known_by] if known_by is not None else train).reset_index(drop=True), test


def feature_table(posts: pd.DataFrame, reposts: pd.DataFrame, windows: Sequence[float], n_star: float) -> pd.DataFrame:
    """Features at each window joined with the 24 h truth; one row per (post, window)."""
    posts = posts.reset_index(drop=True)
    events = cascade_events(posts, reposts)
    outcomes = cascade_outcomes(posts, reposts, settings.spread_horizon_hours, THRESHOLD, events)
    outcomes = outcomes.drop(columns="post_id")
    frames = [pd.concat([early_features(posts, reposts, w, n_star=n_star, events=events), outcomes], axis=1)
              for w in windows]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------- baselines
@dataclass
class Baselines:
    """What the baselines take from training cascades: n* (mean reposter followers), SEISMIC's correction
    factors α_t, γ_t and super-critical cap per window, and the naive growth ratio per window."""

    n_star: float
    seismic: dict  # window -> (alpha, gamma, cap)
    growth_ratios: dict  # window -> ratio

    def seismic_params(self, window: float) -> tuple[float, float, float]:
        return self.seismic[min(self.seismic, key=lambda w: abs(w - window))]


SEISMIC_ALPHAS = np.exp(np.linspace(np.log(0.05), np.log(2.0), 33))
SEISMIC_GAMMAS = np.linspace(0.0, 1.0, 21)
SEISMIC_CAPS = (0.5, 0.7, 0.8, 0.9, 0.95)


def fit_baselines(table: pd.DataFrame, n_star: float) -> Baselines:
    """Fit on training cascades with at least one repost by T (SEISMIC's p̂ is 0 otherwise, and so is naive).

    SEISMIC needs no training, but the paper scales its formula by α_t and γ_t learned per observation time, and
    its infinite answer for super-critical cascades needs a cap: a grid search of all three that minimises the
    training MSLE gives SEISMIC its best shot. The naive ratio is the log-mean of final/count(T) (Szabo & Huberman
    2010), measured at the same T.
    """
    seismic, ratios = {}, {}
    for window, rows in table[table["n_window"] > 0].groupby("window_min"):
        truth = np.log2(1.0 + rows["final"].to_numpy())
        count = rows["n_window"].to_numpy()
        ratios[float(window)] = float(np.exp(np.mean(np.log(rows["final"].to_numpy()) - np.log(count))))
        best = (np.inf, (1.0, 1.0, SEISMIC_CAPS[-1]))
        for gamma, cap in itertools.product(SEISMIC_GAMMAS, SEISMIC_CAPS):
            growth = seismic_forecast(rows, n_star, 1.0, gamma, cap) - count  # linear in alpha: score all at once
            errors = np.mean((np.log2(1.0 + count + np.outer(SEISMIC_ALPHAS, growth)) - truth) ** 2, axis=1)
            if errors.min() < best[0]:
                best = (float(errors.min()), (float(SEISMIC_ALPHAS[errors.argmin()]), float(gamma), float(cap)))
        seismic[float(window)] = best[1]
    return Baselines(n_star=n_star, seismic=seismic, growth_ratios=ratios)


# ------------------------------------------------------------------------------------------------- model
def _booster(objective: str, **overrides) -> lgb.LGBMRegressor:
    params = dict(n_estimators=250, learning_rate=0.04, num_leaves=15, min_child_samples=40, subsample=0.8,
                  subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0, verbose=-1, random_state=settings.seed,
                  n_jobs=1)
    return lgb.LGBMRegressor(objective=objective, **{**params, **overrides})


def _design(table: pd.DataFrame) -> np.ndarray:
    return table[FEATURE_COLUMNS].to_numpy(dtype=float)


def _fit(booster: lgb.LGBMRegressor, table: pd.DataFrame, target: np.ndarray) -> lgb.Booster:
    """The fitted core booster: its predict skips the scikit-learn wrapper's per-call overhead (~5 ms)."""
    categorical = [FEATURE_COLUMNS.index(c) for c in CATEGORICAL_COLUMNS]
    return booster.fit(_design(table), target, categorical_feature=categorical).booster_


def growth_target(table: pd.DataFrame) -> np.ndarray:
    """Boosters learn the growth still to come, log1p(final) − log1p(count at T) ≥ 0, not the final size."""
    return np.log1p(table["final"].to_numpy()) - np.log1p(table["n_window"].to_numpy())


def fit_quantiles(table: pd.DataFrame) -> dict:
    target = growth_target(table)
    return {q: _fit(_booster("quantile", alpha=q), table, target) for q in QUANTILES}


def fit_point(table: pd.DataFrame) -> lgb.Booster:
    """Squared error on the log growth: its prediction, E[log(1+final)], is what minimises MSLE."""
    return _fit(_booster("regression", n_estimators=300, num_leaves=7, min_child_samples=100), table,
                growth_target(table))


def growth_curve(posts: pd.DataFrame, reposts: pd.DataFrame, horizon_hours: float) -> np.ndarray:
    """Median share of the horizon count reached by each minute, over cascades with at least 20 reposts."""
    posts = posts.reset_index(drop=True)
    events = cascade_events(posts, reposts)
    horizon = int(horizon_hours * 60)
    events = events[events["delay"] <= horizon * 60.0]
    sizes = np.bincount(events["post"], minlength=len(posts))
    big = np.flatnonzero(sizes >= 20)
    if not len(big):
        return np.linspace(0.0, 1.0, horizon + 1)
    rows = events[np.isin(events["post"], big)]
    row_of = np.searchsorted(big, rows["post"].to_numpy())
    minute = np.minimum(rows["delay"].to_numpy() // 60, horizon).astype(np.int64)
    counts = np.zeros((len(big), horizon + 1))
    np.add.at(counts, (row_of, minute), 1.0)
    return np.median(np.cumsum(counts, axis=1) / sizes[big][:, None], axis=0)


def calibrate(low: np.ndarray, high: np.ndarray, table: pd.DataFrame) -> dict:
    """Conformalized quantile regression (Romano et al. 2019) on out-of-fold log1p intervals [low, high]: per
    window and per 'has reposts yet' group, the widening that makes [P10, P90] cover TARGET_COVERAGE of those
    cascades. Negative widening narrows an interval that is too wide."""
    truth = np.log1p(table["final"].to_numpy())
    scores = np.maximum(low - truth, truth - high)
    widen = {}
    groups = pd.DataFrame({"window": table["window_min"].to_numpy(), "active": table["n_window"].to_numpy() > 0,
                           "score": scores})
    for (window, active), rows in groups.groupby(["window", "active"]):
        n = len(rows)
        level = min(1.0, np.ceil((n + 1) * TARGET_COVERAGE) / n)
        widen[(float(window), bool(active))] = float(np.quantile(rows["score"], level, method="higher"))
    return widen


def fit(posts: pd.DataFrame, reposts: pd.DataFrame, windows: Sequence[float] = TRAIN_WINDOWS
        ) -> tuple[SpreadModel, Baselines, pd.DataFrame, pd.DataFrame]:
    """Return (model, baselines, train posts, test posts). Time-ordered cross-fitting on the training posts gives
    out-of-fold forecasts for conformal calibration; the final boosters are refitted on all training posts."""
    train, test = time_split(posts)
    train_reposts = reposts[reposts["post_id"].isin(train["post_id"])]
    n_star = float(train_reposts["user_followers"].mean()) if len(train_reposts) else 1.0
    table = feature_table(train, train_reposts, windows, n_star)
    fold = np.tile(np.arange(len(train)) * CV_FOLDS // max(len(train), 1), len(windows))
    model = SpreadModel(
        horizon_hours=settings.spread_horizon_hours, threshold=THRESHOLD, n_star=n_star, quantiles={},
        point_model=None, reach_model=None, regions_model=None,
        growth_curve=growth_curve(train, train_reposts, settings.spread_horizon_hours),
        window_minutes=settings.spread_window_minutes,
    )
    low, high = np.empty(len(table)), np.empty(len(table))
    for k in range(CV_FOLDS):
        model.quantiles = fit_quantiles(table[fold != k])
        low[fold == k], _, high[fold == k] = model.raw_interval(table[fold == k])
    model.widen = calibrate(low, high, table)
    model.quantiles = fit_quantiles(table)
    model.point_model = fit_point(table)
    model.reach_model = _fit(_booster("regression"), table,
                             np.log1p(table["reach"].to_numpy()) - np.log1p(table["marks"].to_numpy()))
    model.regions_model = _fit(_booster("poisson"), table, table["regions"].to_numpy())
    return model, fit_baselines(table, n_star), train, test


# ---------------------------------------------------------------------------------------------- evaluation
def msle_log2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean((np.log2(1.0 + np.maximum(pred, 0.0)) - np.log2(1.0 + truth)) ** 2))


def evaluate(model: SpreadModel, baselines: Baselines, test: pd.DataFrame, reposts: pd.DataFrame,
             windows: Sequence[float] = EVAL_WINDOWS) -> dict:
    """Held-out figures per window. The headline population is the cascades with at least one repost by T (a
    post nobody has reposted yet is not a cascade: SEISMIC and naive both say 0); `_all` adds every test post."""
    test_reposts = reposts[reposts["post_id"].isin(test["post_id"])]
    metrics: dict[str, float] = {"n_test_posts": float(len(test))}
    for window in windows:
        table = feature_table(test, test_reposts, [window], model.n_star)
        ours = model.predict_frame(table)
        truth = table["final"].to_numpy()
        active = table["n_window"].to_numpy() > 0
        forecasts = {
            "naive": naive_forecast(table, baselines.growth_ratios),
            "seismic_paper": seismic_forecast(table, baselines.n_star),
            "seismic": seismic_forecast(table, baselines.n_star, *baselines.seismic_params(window)),
            "ours": ours["forecast"].to_numpy(),
        }
        for name, forecast in forecasts.items():
            metrics[f"msle_{name}_T{window}"] = msle_log2(forecast[active], truth[active])
            metrics[f"msle_{name}_all_T{window}"] = msle_log2(forecast, truth)
        inside = (truth >= ours["p10"].to_numpy() - 1e-6) & (truth <= ours["p90"].to_numpy() + 1e-6)
        metrics[f"coverage_T{window}"] = float(inside[active].mean())
        metrics[f"coverage_all_T{window}"] = float(inside.mean())
        metrics[f"n_active_T{window}"] = float(active.sum())
        regions_error = np.abs(ours["regions"].to_numpy() - table["regions"].to_numpy())
        metrics[f"regions_mae_T{window}"] = float(regions_error[active].mean())
        metrics[f"reach_msle_T{window}"] = msle_log2(ours["reach"].to_numpy()[active],
                                                     table["reach"].to_numpy()[active])
        # cascades that pass the threshold after T: did we see it coming, and how far off was the minute?
        crossing, predicted = table["time_to_threshold_min"].to_numpy(), ours["time_to_threshold_min"].to_numpy()
        late = crossing > window
        if late.any():
            metrics[f"threshold_hit_rate_T{window}"] = float(np.isfinite(predicted[late]).mean())
            caught = late & np.isfinite(predicted)
            if caught.any():
                metrics[f"threshold_minutes_median_error_T{window}"] = float(
                    np.median(np.abs(predicted[caught] - crossing[caught])))
    return metrics


def fan_chart(model: SpreadModel, test: pd.DataFrame, reposts: pd.DataFrame, n: int = 6):
    """Forecast fan for a few test cascades as more reposts arrive, beside the realised 24 h count."""
    import matplotlib.pyplot as plt  # the backend is left to the caller (inline in notebooks, Agg headless)

    truth = cascade_outcomes(test, reposts, model.horizon_hours, model.threshold)
    active = truth[truth["final"] >= 5].sort_values("final")
    chosen = active["post_id"].to_numpy()[np.linspace(0, len(active) - 1, min(n, len(active))).astype(int)]
    windows = np.array([10, 20, 30, 45, 60, 90, 120, 180, 240, 360])
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(4 * ((n + 1) // 2), 7), squeeze=False)
    for ax, post_id in zip(axes.ravel(), chosen, strict=False):  # fewer active posts than panels
        post = test[test["post_id"] == post_id]
        events = reposts[reposts["post_id"] == post_id]
        fan = pd.concat([model.forecast(post, events, window_minutes=w) for w in windows])
        ax.fill_between(windows, fan["p10"], fan["p90"], alpha=0.3, label="P10–P90")
        ax.plot(windows, fan["p50"], marker="o", label="P50")
        ax.plot(windows, fan["observed"], color="grey", label="observed")
        ax.axhline(float(truth.loc[truth["post_id"] == post_id, "final"].iloc[0]), color="black", linestyle="--",
                   label="24h actual")
        ax.set_yscale("symlog")
        ax.set_title(f"{post_id} ({post['channel'].iloc[0]})", fontsize=9)
        ax.set_xlabel("minutes observed")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def summary_line(metrics: dict) -> str:
    return (f"MSLE T60 ours {metrics['msle_ours_T60']:.3f} vs SEISMIC {metrics['msle_seismic_T60']:.3f} "
            f"naive {metrics['msle_naive_T60']:.3f}, P10–P90 coverage {metrics['coverage_T60']:.2f}")


def train(promote: bool = True, force: bool = False, generated_dir: Path | None = None,
          data_dir: Path | str | None = None, **_) -> list[dict]:
    """Fit on the synthetic cascades (or the imported posts + reposts in `data_dir`), log, register, gate (the
    champion re-scored on the same test cascades)."""
    import mlflow

    from features.imported import data_digest
    from features.settings import configure_mlflow
    from training import gate
    from training.registry import log_and_register, log_figure, log_json

    configure_mlflow()
    posts, reposts = load_cascades(data_dir or generated_dir)
    posts, text_source = with_text_scores(posts)
    source = ({"data_dir": str(data_dir), "data_digest": data_digest(data_dir, ["posts", "reposts"]),
               "data_source": "imported"} if data_dir is not None
              else {"data_dir": str(generated_dir or settings.generated_dir), "data_source": "synthetic"})
    with mlflow.start_run(run_name="spread"):
        model, baselines, _, test = fit(posts, reposts)
        metrics = evaluate(model, baselines, test, reposts)
        mlflow.log_params({"windows": ",".join(map(str, TRAIN_WINDOWS)), "threshold": THRESHOLD,
                           "n_posts": len(posts), "test_share": TEST_SHARE, "text_features": text_source,
                           "n_star": round(model.n_star, 2), **source})
        mlflow.log_metrics(metrics)
        log_json({"widen": {f"{w}:{a}": v for (w, a), v in model.widen.items()},
                  "seismic_alpha_gamma_cap": {str(w): list(p) for w, p in baselines.seismic.items()},
                  "naive_growth_ratios": {str(w): r for w, r in baselines.growth_ratios.items()}}, "calibration.json")
        log_figure(fan_chart(model, test, reposts), "plots/fan_chart.png")
        example = early_features(test.head(3), reposts, settings.spread_window_minutes, n_star=model.n_star)
        version = log_and_register(model, "spread", input_example=example)
    rescored = gate.rescore_champion("spread", version, evaluator("spread").score, (test, reposts),
                                     source.get("data_digest"))
    promoted = gate.maybe_promote("spread", version, metrics, promote=promote, force=force, rescored=rescored)
    return [{"name": "spread", "version": version, "metrics": metrics, "summary": summary_line(metrics),
             "promoted": promoted}]


def evaluator(name: str = "spread", data_dir: Path | str | None = None) -> Evaluator:
    """Re-score on today's held-out cascades (of `data_dir` when given). The baselines' fitted parameters come
    from the version's own run (calibration.json), so re-scoring needs no refit; only the model's figures matter
    to the gate."""
    def load():
        posts, reposts = load_cascades(data_dir)
        posts, _ = with_text_scores(posts)
        return time_split(posts)[1], reposts

    def score(estimator, data, run_id: str) -> dict[str, float]:
        import mlflow

        test, reposts = data
        fitted = mlflow.artifacts.load_dict(f"runs:/{run_id}/calibration.json")
        baselines = Baselines(n_star=estimator.n_star,
                              seismic={float(w): tuple(p) for w, p in fitted["seismic_alpha_gamma_cap"].items()},
                              growth_ratios={float(w): r for w, r in fitted["naive_growth_ratios"].items()})
        return evaluate(estimator, baselines, test, reposts)

    return Evaluator(load, score)


def predict_file(posts_path: Path, reposts_path: Path, output: Path, model_uri: str | None = None) -> BatchResult:
    """Batch forecast from each post's first `settings.spread_window_minutes` of reposts, written as CSV or Parquet
    by `output`'s suffix. A file that cannot be read, or rows that break the Post/Repost contracts, are refused
    naming the file, row and field. Both tables are read whole: a post's features need all its reposts."""
    from features.contracts import validate
    from features.modelio import load_champion, load_model
    from features.tables import TableWriter, check_output, read_table

    output = check_output(output)
    posts = validate(read_table(posts_path), "Post", strict=True).frame
    reposts = validate(read_table(reposts_path), "Repost", strict=True).frame
    loaded = load_model(model_uri, "spread") if model_uri else load_champion("spread")
    with TableWriter(output) as writer:
        writer.write(loaded.estimator.forecast(posts, reposts))
    return BatchResult(output, scored=len(posts))
