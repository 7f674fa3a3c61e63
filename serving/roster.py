"""The people the service knows: where its org chart and roster come from, and the roster scored once at start.

By default the generated company (`settings.generated_dir`); with `settings.serve_data_dir` (LOSSGUARD_SERVE_DATA_DIR,
a folder `lossguard data import` wrote) the company's own employees are the roster, its imported org units the
chart (else the generated chart), its posts and complaints the 90-day signals when imported. The roster is either
a snapshot history (the latest snapshot's people who have not left) or a single export (one row each: those who
stayed). Team views filter this scored roster; they never call a model.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import Unavailable
from features.settings import settings

log = logging.getLogger("lossguard")

ORG_TABLES = ("org_units", "employees", "snapshots", "posts", "complaints")


def check_data() -> None:
    """The preflight's data part: what is missing, and the command that makes it."""
    if settings.serve_data_dir:
        folder = Path(settings.serve_data_dir)
        if not (folder / "employees.parquet").is_file():
            raise Unavailable(f"LOSSGUARD_SERVE_DATA_DIR={folder} 中缺少 employees.parquet: 请先用 "
                              f"`lossguard data import … --out {folder}` 导入员工数据", field="serve_data_dir")
        if (folder / "org_units.parquet").is_file():
            return
        needed = ["org_units"]  # no imported org chart: the generated one serves
    else:
        needed = list(ORG_TABLES)
    folder = Path(settings.generated_dir)
    absent = [t for t in needed if not (folder / f"{t}.parquet").exists()]
    if absent:
        raise Unavailable(f"{folder} 中缺少 {absent}: 请先运行 `make data` (或 `lossguard data generate`)")


def data_tables() -> dict[str, pd.DataFrame | None]:
    """org_units, employees (the chart's people), snapshots (the roster and its history), posts, complaints."""
    generated = Path(settings.generated_dir)
    if not settings.serve_data_dir:
        return {t: pd.read_parquet(generated / f"{t}.parquet") for t in ORG_TABLES}
    from features.imported import load_imported

    tables = load_imported(settings.serve_data_dir, "employees", optional=("org_units", "posts", "complaints"))
    if "org_units" not in tables:
        tables["org_units"] = pd.read_parquet(generated / "org_units.parquet")
    return {"org_units": tables["org_units"], "employees": tables["employees"],
            "snapshots": tables["employees"], "posts": tables.get("posts"), "complaints": tables.get("complaints")}


def current_staff(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Who works here now: the latest snapshot's people who have not left (a history), or those who stayed (a
    single export, whose leave dates are outcomes)."""
    from features.imported import EXPORT, attrition_design, export_labels

    if snapshots.empty:
        return snapshots
    if attrition_design(snapshots) == EXPORT:
        return snapshots[(export_labels(snapshots) == 0).to_numpy()].reset_index(drop=True)
    latest_day = snapshots["snapshot_date"].max()
    leave = pd.to_datetime(snapshots["leave_date"])
    current = snapshots[(snapshots["snapshot_date"] == latest_day) & (leave.isna() | (leave > latest_day))]
    return current.reset_index(drop=True)


def score_roster(models: dict, tables: dict[str, pd.DataFrame | None]) -> tuple[pd.DataFrame, str | None]:
    """(every current employee with the same features as training, None), or the roster unscored and why: when
    the attrition champion needs columns this roster does not have (`request_inputs`: an export model on the
    synthetic history, say) it is not scored on blanks; history signals the roster cannot settle are imputed,
    as in training."""
    from features.attrition_build import build_features

    snapshots = tables["snapshots"]
    current = current_staff(snapshots)
    out = current.reindex(columns=["employee_id", "department_id", "role", "pay_vs_band", "performance_rating"])
    out["is_key"] = current["is_key"].fillna(False).astype(bool) if "is_key" in current else False
    if current.empty:
        return out.assign(propensity=[], band=[], drivers=[], driver_features=[]), None
    sentiment = models["sentiment"].estimator

    def p_neg(texts: list[str]) -> np.ndarray:
        return sentiment.predict_frame(pd.DataFrame({"text": texts}))["p_neg"].to_numpy(dtype=float)

    loaded = models["attrition"]
    model = loaded.estimator
    context = {"history": snapshots, "posts": tables.get("posts"), "complaints": tables.get("complaints"),
               "org_units": tables.get("org_units"), "sentiment_fn": p_neg}
    if not hasattr(model, "request_inputs"):  # any estimator with the predict_frame interface
        scored = model.predict_frame(current, **context)
    else:
        features = build_features(current, **context)
        missing = [c for c in model.request_inputs() if c not in features or features[c].isna().all()]
        if missing:
            note = (f"attrition v{loaded.version} 按 {model.spec.name} 特征训练, 名册缺少 {missing[:6]}: 未打分 "
                    "(请用同类数据训练的模型, 或用 LOSSGUARD_SERVE_DATA_DIR 指向训练它的数据)")
            log.warning("roster not scored: %s", note)
            empty = [[] for _ in range(len(out))]
            return out.assign(propensity=np.nan, band=None, drivers=empty, driver_features=empty), note
        scored = model.score(features).reset_index(drop=True)
    for column in ("propensity", "band", "drivers"):
        out[column] = scored[column].to_numpy()
    out["driver_features"] = (scored["driver_features"].to_numpy() if "driver_features" in scored
                              else [[] for _ in range(len(out))])
    return out, None
