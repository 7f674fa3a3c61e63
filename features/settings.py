"""One settings module for the whole project; every value can be overridden with a LOSSGUARD_* env var.

Training, serving, notebooks and tests all read paths and URIs from here so that pointing the project at
another MLflow server or data folder is one env var, not a code change.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

# Offline and no telemetry, whatever entry point is used (CLI, bentoml serve, notebooks, tests).
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default):
    raw = os.environ.get(f"LOSSGUARD_{name.upper()}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path):
        return Path(raw)
    return raw


@dataclass(frozen=True)
class Settings:
    root: Path = PROJECT_ROOT
    data_dir: Path = PROJECT_ROOT / "data"
    generated_dir: Path = PROJECT_ROOT / "data" / "generated"
    imported_dir: Path = PROJECT_ROOT / "data" / "imported"  # where `lossguard data import` writes by default
    serve_data_dir: str = ""  # an import folder the service reads its org chart and roster from ("": generated)
    models_dir: Path = PROJECT_ROOT / "models"
    cache_dir: Path = PROJECT_ROOT / ".cache"
    mlflow_dir: Path = PROJECT_ROOT / "mlflow"
    tracking_uri: str = ""
    artifact_root: str = ""
    ibm_hr_csv: Path = PROJECT_ROOT.parent / "shared" / "data" / "ibm_hr_attrition.csv"
    # real repost cascades (posts.parquet + reposts.parquet): `lossguard train spread` uses them when they exist,
    # else the synthetic company's (LOSSGUARD_CASCADES_DIR=none turns them off)
    cascades_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "weibo_cascades"
    # SMP2020-EWECT labelled Weibo posts ({usual,virus}_{train,eval}.csv): sentiment trains and is scored on them
    # when they exist, else on the shipped corpora alone (LOSSGUARD_SMP_DIR=none turns them off)
    smp_dir: Path = PROJECT_ROOT.parent / "shared" / "data" / "smp2020_ewect"
    seed: int = 42
    employees: int = 5000
    days: int = 365
    start_date: str = "2025-01-01"
    attrition_horizon_days: int = 180
    spread_window_minutes: int = 60
    spread_horizon_hours: int = 24
    audience_timezone: str = "Asia/Shanghai"  # the clock of the audience (hour-of-day features of the spread model)
    max_text_chars: int = 5000
    max_batch: int = 1000
    predict_workers: int = 0  # scoring processes for `lossguard predict sentiment`; 0 = one per CPU but one
    warnings_db: str = ""
    policy_path: Path = PROJECT_ROOT / "serving" / "policy.yaml"
    keywords_path: Path = PROJECT_ROOT / "data" / "keywords.yaml"
    webhook_secret: str = "change-me"
    experiment: str = "lossguard"
    # --- service security (README, "Security") ---
    public_metrics: bool = False  # /metrics without a key (a monitor or admin key otherwise)
    public_docs: bool = True  # /docs.json and /schema.json without a key: the integration contract
    auth_fail_limit: int = 20  # unknown API keys per client within the window before 429
    auth_fail_window_s: int = 60
    max_reach: float = 1.1e9  # the most people a post can reach: China's internet users (CNNIC, 2024)
    # The audit chain's HMAC keys: LOSSGUARD_AUDIT_KEYS (hex keys, oldest first, comma-separated; the last signs)
    # or else the 0600 key file, created on first start. Anchors: signed checkpoints of the chain head, appended
    # to a file per store in audit_anchor_dir (and POSTed to audit_anchor_url when set).
    audit_keys: str = ""
    audit_key_file: str = ""  # default: generated_dir/audit_keys
    audit_anchor_dir: str = ""  # default: generated_dir/audit_anchors
    audit_anchor_url: str = ""

    def __post_init__(self):
        # Fill the derived defaults after env overrides so that LOSSGUARD_MLFLOW_DIR moves the store too.
        if not self.tracking_uri:
            object.__setattr__(self, "tracking_uri", f"sqlite:///{self.mlflow_dir / 'mlflow.db'}")
        if not self.artifact_root:
            object.__setattr__(self, "artifact_root", (self.mlflow_dir / "artifacts").as_uri())
        if not self.warnings_db:
            object.__setattr__(self, "warnings_db", f"sqlite:///{self.data_dir / 'generated' / 'warnings.db'}")
        if not self.audit_key_file:
            object.__setattr__(self, "audit_key_file", str(self.generated_dir / "audit_keys"))
        if not self.audit_anchor_dir:
            object.__setattr__(self, "audit_anchor_dir", str(self.generated_dir / "audit_anchors"))


def load_settings() -> Settings:
    """Build settings from defaults overridden by LOSSGUARD_<FIELD> env vars (read at call time)."""
    aliases = {"tracking_uri": "mlflow_tracking_uri"}
    return Settings(**{f.name: _env(aliases.get(f.name, f.name), f.default) for f in fields(Settings)})


settings = load_settings()


def configure_jieba() -> None:
    """jieba writes its dictionary cache to /tmp by default; keep it inside the project cache."""
    import jieba

    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    jieba.dt.tmp_dir = str(settings.cache_dir)
    jieba.setLogLevel(60)


def configure_mlflow() -> str:
    """Point MLflow at the configured store; create the local folders for the embedded SQLite default."""
    import mlflow

    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        (settings.mlflow_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(settings.experiment) is None:
        mlflow.create_experiment(settings.experiment, artifact_location=settings.artifact_root)
    mlflow.set_experiment(settings.experiment)
    return settings.tracking_uri
