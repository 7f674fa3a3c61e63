"""Spread forecast training: LightGBM on early-window features, judged against SEISMIC, naive growth scaling and the
Szabo–Huberman log-linear fit on the same held-out cascades.

Data: posts.parquet + reposts.parquet from `--data DIR`, else the real cascades in `settings.cascades_dir` when
they are there (a Weibo crawl: no reposter follower counts, no regions), else the synthetic company's. The latest
20% of posts by creation time are the test set; everything the model and the baselines learn (boosters,
conformal widening, the blend weight, SEISMIC's n*, correction factors and cap, the naive ratios, the log-linear
coefficients, the daily activity profile) comes from the earlier 80% only, and every design choice is made by
forward-chaining CV inside those 80% (each validation block scored by models fitted on earlier posts only).
One model serves any elapsed time: it is trained on several early windows with the window length as a feature.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import InputError
from features.model_specs import BatchResult, Evaluator
from features.settings import settings
from features.spread_baselines import fit_log_linear, log_linear_forecast
from features.spread_features import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    Events,
    SpreadModel,
    activity_profile,
    cascade_events,
    cascade_outcomes,
    early_features,
    local_hours,
    utc_ns,
)
from training.spread_eval import EVAL_WINDOWS, Baselines, evaluate, fan_chart, fit_baselines  # noqa: F401

TRAIN_WINDOWS = (10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360)
THRESHOLD = 100  # "100 reposts" is the speed signal
QUANTILES = (0.1, 0.5, 0.9)
TARGET_COVERAGE = 0.80
TEST_SHARE = 0.20
FIRST_FIT_SHARE, CV_BLOCKS = 0.4, 3  # forward-chaining CV: the first 40% of training posts only fit
BLEND_WEIGHTS = np.linspace(0.0, 1.0, 11)
# Chosen by forward-chaining CV on the real cascades (scratch/spread NOTES §3): 7 leaves and 80 rows per leaf beat
# the 15/40 of the synthetic-only model by 2-3 points of MSLE at T=60.
PARAMS = dict(learning_rate=0.02, num_leaves=7, min_data_in_leaf=80, feature_fraction=0.8, bagging_fraction=0.8,
              bagging_freq=1, lambda_l2=1.0, verbose=-1, num_threads=1, deterministic=True)
ROUNDS = 300
# Groups that bought nothing in forward-chaining CV on the real cascades are computed where a caller wants them but
# not fed to the boosters (T=60, active, vs log-linear: -9.6% without them, -8.6% with tree shape, -7.8% with
# reaction-text negativity, which also costs a text-model call per repost); bench/spread.py re-measures this.
MODEL_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c not in ("share_direct", "max_depth", "max_children_log",
                                                              "tree_known", "reaction_text_known", "neg_share"))


# ------------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class DataSource:
    folder: Path
    kind: str  # "real" (settings.cascades_dir), "given" (--data) or "synthetic" (settings.generated_dir)

    def describe(self) -> str:
        return {"real": "真实级联", "given": "指定数据", "synthetic": "合成公司"}[self.kind] + f" {self.folder}"


def _has_cascades(folder: Path | None) -> bool:
    return folder is not None and all((Path(folder) / n).exists() for n in ("posts.parquet", "reposts.parquet"))


def data_source(data_dir: Path | None = None) -> DataSource:
    """Where training reads cascades: `data_dir` when given, else the real cascades when they exist, else the
    synthetic company."""
    if data_dir is not None:
        return DataSource(Path(data_dir), "given")
    if str(settings.cascades_dir).lower() not in ("", "none", "off") and _has_cascades(settings.cascades_dir):
        return DataSource(Path(settings.cascades_dir), "real")
    return DataSource(Path(settings.generated_dir), "synthetic")


def load_cascades(folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = Path(folder or data_source().folder)
    missing = [n for n in ("posts.parquet", "reposts.parquet") if not (folder / n).exists()]
    if missing:
        raise InputError(f"{folder} 中缺少 {missing}: 请给出含 posts.parquet 和 reposts.parquet 的目录 (--data), "
                         "或先运行 `lossguard data generate` (make data)", field="data")
    return pd.read_parquet(folder / "posts.parquet"), pd.read_parquet(folder / "reposts.parquet")


def data_params(posts: pd.DataFrame, reposts: pd.DataFrame, source: DataSource) -> dict[str, str | int]:
    """What the model saw, for its card: folder, size, time range and a digest of the ids and times."""
    created = pd.to_datetime(utc_ns(posts["created_at"]).view("datetime64[ns]"))
    digest = hashlib.sha256()
    for column in (posts["post_id"], posts["created_at"], reposts["post_id"], reposts["timestamp"]):
        digest.update(pd.util.hash_pandas_object(column.astype(str), index=False).to_numpy().tobytes())
    return {"data_dir": str(source.folder), "data_source": source.kind, "n_posts": len(posts),
            "n_events": len(reposts), "data_time_range": f"{created.min():%Y-%m-%d} … {created.max():%Y-%m-%d} UTC",
            "data_digest": digest.hexdigest()[:16]}


def with_text_scores(posts: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """p_neg and loss_type as the service will see them: from the registered text models when they exist (no
    train/serve skew); else the generator's labels (synthetic posts carry them); else none (NaN: the features
    say the text score is missing)."""
    from features.modelio import ModelNotFound, load_champion

    try:
        sentiment, loss = load_champion("sentiment"), load_champion("loss_type")
    except ModelNotFound:
        if "sentiment" in posts:
            return posts.assign(p_neg=(posts["sentiment"] == "neg").astype(float)), "generator labels"
        return posts.assign(p_neg=np.nan), "none"
    texts = posts[["text"]].fillna("")
    return (posts.assign(p_neg=sentiment.estimator.predict_frame(texts)["p_neg"].to_numpy(),
                         loss_type=loss.estimator.predict_frame(texts)["loss_type"].to_numpy()),
            f"sentiment v{sentiment.version}, loss_type v{loss.version}")


def time_split(posts: pd.DataFrame, test_share: float = TEST_SHARE) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Earlier posts train (and calibrate), the latest posts test. Training posts whose 24 h outcome would only
    be known after the first test post appeared are left out, as they would be at deployment time."""
    train, test = split_positions(utc_ns(posts["created_at"]), test_share)
    ordered = posts.iloc[np.argsort(utc_ns(posts["created_at"]), kind="stable")].reset_index(drop=True)
    return ordered.iloc[train].reset_index(drop=True), ordered.iloc[test].reset_index(drop=True)


def split_positions(created_ns: np.ndarray, test_share: float = TEST_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions in creation order (see `time_split`)."""
    created = np.sort(created_ns)
    cut = int(round(len(created) * (1.0 - test_share)))
    test = np.arange(cut, len(created))
    if not len(test):
        return np.arange(cut), test
    known_by = created[cut] - int(settings.spread_horizon_hours * 3.6e12)
    return np.flatnonzero(created[:cut] <= known_by), test


def forward_folds(created_ns: np.ndarray, rows: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining CV over `rows` (in creation order): the first FIRST_FIT_SHARE only fit; the rest is cut into
    CV_BLOCKS consecutive validation blocks, each scored by a model fitted on everything before it, purged of posts
    whose 24 h outcome lands after the block starts. (Folds fitted on fewer posts were unrepresentative of the
    deployed model.)"""
    edges = np.linspace(int(len(rows) * FIRST_FIT_SHARE), len(rows), CV_BLOCKS + 1).astype(int)
    horizon = int(settings.spread_horizon_hours * 3.6e12)
    for k in range(CV_BLOCKS):
        validate = rows[edges[k]:edges[k + 1]]
        if not len(validate):
            continue
        earlier = rows[:edges[k]]
        yield earlier[created_ns[earlier] <= created_ns[validate[0]] - horizon], validate


class Cascades:
    """Posts in creation order with their events, outcomes and (cached) feature tables per window: every table is
    computed once for all posts (features are per post) and sliced by positions."""

    def __init__(self, posts: pd.DataFrame, reposts: pd.DataFrame):
        order = np.argsort(utc_ns(posts["created_at"]), kind="stable")
        self.posts = posts.iloc[order].reset_index(drop=True)
        self.created = utc_ns(self.posts["created_at"])
        self.events: Events = cascade_events(self.posts, reposts)
        self.outcomes = cascade_outcomes(self.posts, self.events, settings.spread_horizon_hours, THRESHOLD
                                         ).drop(columns="post_id")
        self._tables: dict[float, pd.DataFrame] = {}
        self.n_star: float | None = None
        self.profile: np.ndarray | None = None

    def learn_from(self, rows: np.ndarray) -> None:
        """n* and the daily activity profile from the training posts `rows` (tables are rebuilt)."""
        mine = np.isin(self.events.post, rows)
        followers = self.events.followers[mine]
        self.n_star = float(np.nanmean(followers)) if np.isfinite(followers).any() else None
        hours = local_hours(self.created, settings.audience_timezone)
        self.profile = activity_profile(self.events, hours, rows)
        self._tables.clear()

    def table(self, window: float) -> pd.DataFrame:
        if window not in self._tables:
            features = early_features(self.posts, None, window, n_star=self.n_star, events=self.events,
                                      profile=self.profile, timezone=settings.audience_timezone)
            self._tables[window] = pd.concat([features, self.outcomes], axis=1)
        return self._tables[window]

    def rows(self, positions: np.ndarray, windows: Sequence[float]) -> pd.DataFrame:
        """One row per (post, window), window-major."""
        return pd.concat([self.table(w).iloc[positions] for w in windows], ignore_index=True)


# ------------------------------------------------------------------------------------------------- model
def growth_target(table: pd.DataFrame) -> np.ndarray:
    """Boosters learn the growth still to come, log1p(final) − log1p(count at T) ≥ 0, not the final size."""
    return np.log1p(table["final"].to_numpy()) - np.log1p(table["n_window"].to_numpy())


def _fit(table: pd.DataFrame, target: np.ndarray, objective: str, columns: Sequence[str], **extra) -> lgb.Booster:
    """A core booster (its predict skips the scikit-learn wrapper's per-call overhead)."""
    categorical = [i for i, c in enumerate(columns) if c in CATEGORICAL_COLUMNS]
    X = table[list(columns)].to_numpy(dtype=float)
    data = lgb.Dataset(X, target, categorical_feature=categorical or "auto", free_raw_data=True)
    return lgb.train({**PARAMS, "seed": settings.seed, "objective": objective, **extra}, data,
                     num_boost_round=ROUNDS)


def fit_quantiles(table: pd.DataFrame, columns: Sequence[str]) -> dict:
    target = growth_target(table)
    return {q: _fit(table, target, "quantile", columns, alpha=q) for q in QUANTILES}


def fit_point(table: pd.DataFrame, columns: Sequence[str]) -> lgb.Booster:
    """Squared error on the log growth: its prediction, E[log(1+final)], is what minimises MSLE."""
    return _fit(table, growth_target(table), "regression", columns)


def growth_curve(posts: pd.DataFrame, reposts: pd.DataFrame, horizon_hours: float) -> np.ndarray:
    """Median share of the horizon count reached by each minute, over the cascades with ≥ 20 reposts."""
    cascades = Cascades(posts, reposts)
    return _growth_curve(cascades, np.arange(len(cascades.posts)), horizon_hours)


def _growth_curve(cascades: Cascades, rows: np.ndarray, horizon_hours: float) -> np.ndarray:
    events, horizon = cascades.events, int(horizon_hours * 60)
    final = cascades.outcomes["final"].to_numpy()
    big = np.sort(rows[final[rows] >= 20])
    if not len(big):
        return np.linspace(0.0, 1.0, horizon + 1)
    pick = np.isin(events.post, big) & (events.delay <= horizon * 60.0)
    row_of = np.searchsorted(big, events.post[pick])
    minute = np.minimum(events.delay[pick] // 60, horizon).astype(np.int64)
    counts = np.zeros((len(big), horizon + 1))
    np.add.at(counts, (row_of, minute), 1.0)
    return np.median(np.cumsum(counts, axis=1) / final[big][:, None], axis=0)


def calibrate(low: np.ndarray, high: np.ndarray, table: pd.DataFrame) -> dict:
    """Conformalized quantile regression (Romano et al. 2019) on out-of-fold log1p intervals [low, high]: per
    window and per 'has reposts yet' group, the widening that makes [P10, P90] cover TARGET_COVERAGE of those
    cascades. Negative widening narrows an interval that is too wide."""
    truth = np.log1p(table["final"].to_numpy())
    groups = pd.DataFrame({"window": table["window_min"].to_numpy(), "active": table["n_window"].to_numpy() > 0,
                           "score": np.maximum(low - truth, truth - high)})
    widen = {}
    for (window, active), rows in groups.groupby(["window", "active"]):
        if len(rows) < 20:  # too few to calibrate: the raw quantiles stand
            continue
        level = min(1.0, np.ceil((len(rows) + 1) * TARGET_COVERAGE) / len(rows))
        widen[(float(window), bool(active))] = float(np.quantile(rows["score"], level, method="higher"))
    return widen


def choose_blend(point: np.ndarray, log_linear: np.ndarray, truth: np.ndarray) -> float:
    """The weight w of ours in w·ours + (1 − w)·log-linear (log space) with the lowest out-of-fold MSLE."""
    errors = [np.mean((w * point + (1 - w) * log_linear - truth) ** 2) for w in BLEND_WEIGHTS]
    return float(BLEND_WEIGHTS[int(np.argmin(errors))])


def fit(posts: pd.DataFrame, reposts: pd.DataFrame, windows: Sequence[float] = TRAIN_WINDOWS,
        columns: Sequence[str] = MODEL_COLUMNS) -> tuple[SpreadModel, Baselines, pd.DataFrame, pd.DataFrame]:
    """Return (model, baselines, train posts, test posts). Forward-chaining out-of-fold forecasts on the training
    posts calibrate the intervals and choose the blend weight; the final boosters are refitted on all of them."""
    cascades = Cascades(posts, reposts)
    train, test = split_positions(cascades.created)
    if len(train) < 50:
        raise InputError(f"训练用的帖子太少 ({len(train)} 个, 至少 50 个): 需要更多级联数据", field="data")
    cascades.learn_from(train)
    columns = tuple(columns)
    table = cascades.rows(train, windows)
    model = SpreadModel(
        horizon_hours=settings.spread_horizon_hours, threshold=THRESHOLD, n_star=cascades.n_star, quantiles={},
        point_model=None, reach_model=None, regions_model=None,
        growth_curve=_growth_curve(cascades, train, settings.spread_horizon_hours),
        window_minutes=settings.spread_window_minutes, columns=columns, profile=cascades.profile,
        timezone=settings.audience_timezone)
    model.widen, model.blend_weight = _out_of_fold(cascades, train, windows, columns)
    model.quantiles = fit_quantiles(table, columns)
    model.point_model = fit_point(table, columns)
    reach = np.log1p(table["reach"].to_numpy()) - np.log1p(table["marks"].to_numpy())
    known = np.isfinite(reach)
    if cascades.n_star is not None and known.sum() >= 100:  # without follower counts (Weibo): reach unknown
        model.reach_model = _fit(table[known], reach[known], "regression", columns)
    regions = table["regions"].to_numpy()
    known = np.isfinite(regions)
    if known.sum() >= 100 and regions[known].sum() > 0:  # poisson refuses an all-zero label (no regions in the feed)
        model.regions_model = _fit(table[known], regions[known], "poisson", columns)
    baselines = fit_baselines(table, cascades.n_star)
    model.log_linear = baselines.log_linear
    return model, baselines, cascades.posts.iloc[train].reset_index(drop=True), \
        cascades.posts.iloc[test].reset_index(drop=True)


def _out_of_fold(cascades: Cascades, train: np.ndarray, windows: Sequence[float], columns: tuple
                 ) -> tuple[dict, float]:
    """Conformal widening and the blend weight from forward-chaining out-of-fold forecasts (each block scored by
    models fitted on earlier posts only, so later posts never calibrate earlier ones)."""
    low, high, point, other, parts = [], [], [], [], []
    probe = SpreadModel(horizon_hours=settings.spread_horizon_hours, threshold=THRESHOLD, n_star=None,
                        quantiles={}, point_model=None, reach_model=None, regions_model=None,
                        growth_curve=np.zeros(1), columns=columns)
    for fit_rows, validate in forward_folds(cascades.created, train):
        fitted, held = cascades.rows(fit_rows, windows), cascades.rows(validate, windows)
        probe.quantiles = fit_quantiles(fitted, columns)
        probe.point_model = fit_point(fitted, columns)
        lo, _, hi = probe.raw_interval(held)
        coefficients = {float(w): fit_log_linear(rows["n_window"].to_numpy(), rows["final"].to_numpy())
                        for w, rows in fitted.groupby("window_min")}
        low.append(lo), high.append(hi), parts.append(held)
        point.append(probe.point_log(held))
        other.append(np.maximum(np.log1p(log_linear_forecast(held, coefficients)),
                                np.log1p(held["n_window"].to_numpy(dtype=float))))
    if not parts:
        return {}, 1.0
    held = pd.concat(parts, ignore_index=True)
    weight = choose_blend(np.concatenate(point), np.concatenate(other), np.log1p(held["final"].to_numpy()))
    return calibrate(np.concatenate(low), np.concatenate(high), held), weight


# ------------------------------------------------------------------------------------------------ training
def summary_line(metrics: dict, source: DataSource | None = None) -> str:
    line = (f"MSLE T60 ours {metrics['msle_ours_T60']:.3f} vs log-linear "
            f"{metrics.get('msle_log_linear_T60', np.nan):.3f} SEISMIC {metrics.get('msle_seismic_T60', np.nan):.3f}, "
            f"P10–P90 coverage {metrics['coverage_T60']:.2f}")
    return f"{line}; 数据: {source.describe()}" if source else line


def train(promote: bool = True, force: bool = False, data_dir: Path | None = None,
          generated_dir: Path | None = None) -> list[dict]:
    """Train on `data_dir` (posts.parquet + reposts.parquet), else the real cascades, else the synthetic company
    (`generated_dir` is the older name of `data_dir`); gate against the champion re-scored on the same test set."""
    import mlflow

    from features.settings import configure_mlflow
    from training import gate
    from training.registry import log_and_register, log_figure, log_json

    configure_mlflow()
    source = data_source(data_dir or generated_dir)
    posts, reposts = load_cascades(source.folder)
    posts, text_source = with_text_scores(posts)
    with mlflow.start_run(run_name="spread"):
        model, baselines, _, test = fit(posts, reposts)
        test_events = cascade_events(test, reposts)
        metrics = evaluate(model, baselines, test, test_events)
        mlflow.log_params({"windows": ",".join(map(str, TRAIN_WINDOWS)), "threshold": THRESHOLD,
                           "test_share": TEST_SHARE, "text_features": text_source, "n_test_posts": len(test),
                           "n_star": "none (no follower counts)" if model.n_star is None else round(model.n_star, 2),
                           "blend_weight": model.blend_weight, "features": len(model.columns),
                           **data_params(posts, reposts, source)})
        mlflow.log_metrics(metrics)
        log_json({"widen": {f"{w}:{a}": v for (w, a), v in model.widen.items()}, **baselines.to_json(),
                  "profile": None if model.profile is None else [round(float(v), 4) for v in model.profile]},
                 "calibration.json")
        log_figure(fan_chart(model, test, reposts, title=f"{source.kind}: {source.folder}"), "plots/fan_chart.png")
        example = early_features(test.head(3), reposts, settings.spread_window_minutes, n_star=model.n_star,
                                 profile=model.profile)
        version = log_and_register(model, "spread", input_example=example)
    champion_metrics, unscored = champion_on(test, test_events, baselines, version)
    promoted = gate.maybe_promote("spread", version, metrics, promote=promote, force=force,
                                  champion_metrics=champion_metrics, champion_unscored=unscored)
    return [{"name": "spread", "version": version, "metrics": metrics, "summary": summary_line(metrics, source),
             "promoted": promoted, "data": source.describe()}]


def champion_on(test: pd.DataFrame, events: Events, baselines: Baselines, version: str
                ) -> tuple[dict | None, str | None]:
    """The current champion's figures on the challenger's held-out cascades, so the gate compares like with like;
    (None, reason) when it cannot be scored on them (e.g. a version from before the current features)."""
    from features.modelio import ModelNotFound, load_model
    from training.registry import champion_version

    current = champion_version("spread")
    if current is None or current == str(version):
        return None, None
    try:
        champion = load_model(f"models:/spread/{current}", "spread").estimator
        return evaluate(champion, baselines, test, events), None
    except (ModelNotFound, AttributeError, KeyError, TypeError, ValueError, LookupError, RuntimeError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]


def evaluator(name: str = "spread", data_dir: Path | None = None) -> Evaluator:
    """Re-score on today's held-out cascades (the data `lossguard train spread [--data DIR]` would use now). The
    baselines' fitted parameters come from the version's own run (calibration.json), so re-scoring needs no refit."""
    def load():
        posts, reposts = load_cascades(data_source(data_dir).folder)
        posts, _ = with_text_scores(posts)
        test = time_split(posts)[1]
        return test, cascade_events(test, reposts)

    def score(estimator, data, run_id: str) -> dict[str, float]:
        import mlflow

        test, events = data
        fitted = mlflow.artifacts.load_dict(f"runs:/{run_id}/calibration.json")
        return evaluate(estimator, Baselines.from_json(fitted, estimator.n_star), test, events)

    return Evaluator(load, score)


def predict_file(posts_path: Path, reposts_path: Path, output: Path, model_uri: str | None = None) -> BatchResult:
    """Batch forecast from the reposts in the file (the ones known so far), each post observed for the training
    window. A file that cannot be read, or rows that break the Post/Repost contracts, are refused naming the file,
    row and field. Written as CSV or Parquet by `output`'s suffix."""
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
