"""The policy's `monitoring` section and the signals monitoring adds to the rules.

Parsed here and called by serving.policy (which imports this module, never the reverse), so the policy file keeps
one loader and one error style: every mistake names its key path. The signals read the `monitoring` mapping a
trend or clustered complaint carries in its RiskInput; the rules threshold them like any other signal.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from serving.monitoring.clusters import ClusterConfig
from serving.monitoring.spikes import SpikeConfig


def _reader(name: str) -> Callable[[Any], float | None]:
    def read(risk: Any) -> float | None:
        return (risk.monitoring or {}).get(name)

    return read


# name: (label, reader, lowest threshold, highest threshold); serving.policy turns them into Signals.
MONITORING_SIGNALS: dict[str, tuple[str, Callable[[Any], float | None], float, float | None]] = {
    "trend_ratio": ("负面声量为基线的倍数", _reader("ratio"), 0.0, None),
    "trend_excess": ("负面声量超出基线的条数", _reader("excess"), 0.0, None),
    "negative_share": ("窗口内负面内容占比", _reader("negative_share"), 0.0, 1.0),
    "trend_reach": ("窗口内负面内容作者粉丝合计", _reader("reach"), 0.0, None),
    "cluster_size": ("同一问题投诉数", _reader("cluster_size"), 0.0, None),
}


@dataclass(frozen=True)
class EffectConfig:
    window_days: int = 14      # before the warning opened / after it was resolved
    controls: int = 5          # matched control series
    level: float = 0.9         # interval level


@dataclass(frozen=True)
class MonitoringConfig:
    enabled: bool = True
    bucket_minutes: int = 10
    retention_days: int = 400  # a year of same-hour baselines plus a quarter for reports
    spikes: SpikeConfig = SpikeConfig()
    clusters: ClusterConfig = ClusterConfig()
    effects: EffectConfig = EffectConfig()
    # Events of these kinds group into the subject's open warning for this long (default: grouping.window_minutes):
    # one open warning per series, one per complaint cluster.
    grouping_minutes: Mapping[str, float] = field(default_factory=lambda: {"trend": 7 * 24 * 60, "complaint": 24 * 60})


_SPIKE_KEYS = ("weeks", "alpha", "min_count", "min_excess", "min_ratio", "merge_gap", "level_hours")
_CLUSTER_KEYS = ("enabled", "threshold", "window_hours", "max_examples")
_EFFECT_KEYS = ("window_days", "controls", "level")


def _number(value: Any, path: str, fail, *, low: float = 0.0, high: float | None = None, integer: bool = False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > low
    if ok and high is not None:
        ok = value <= high
    if ok and integer:
        ok = float(value).is_integer()
    if not ok:
        bound = f"({low:g}, {high:g}]" if high is not None else f"大于 {low:g}"
        raise fail(path, f"应为{'整数' if integer else '数字'}且{bound}, 实为 {value!r}")
    return int(value) if integer else float(value)


def _section(value: Any, path: str, keys: tuple[str, ...], fail) -> dict:
    if not isinstance(value, Mapping):
        raise fail(path, "应为映射 (key: value)")
    unknown = [key for key in value if key not in keys]
    if unknown:
        raise fail(f"{path}.{unknown[0]}", f"未知配置项; 可用: {', '.join(keys)}")
    return dict(value)


def parse_monitoring(value: Any, fail: Callable[[str, str], Exception], event_kinds: tuple[str, ...]
                     ) -> MonitoringConfig:
    """`monitoring:` of the policy file; `fail(path, message)` builds the policy's error."""
    top = _section(value, "monitoring", ("enabled", "bucket_minutes", "retention_days", "spikes", "clusters",
                                         "effects", "grouping_minutes"), fail)
    config = MonitoringConfig()
    if "enabled" in top:
        if not isinstance(top["enabled"], bool):
            raise fail("monitoring.enabled", "应为 true 或 false")
        config = replace(config, enabled=top["enabled"])
    bucket = _number(top.get("bucket_minutes", config.bucket_minutes), "monitoring.bucket_minutes", fail,
                     high=60, integer=True)
    if 60 % bucket:
        raise fail("monitoring.bucket_minutes", f"应能整除 60, 实为 {bucket}")
    retention = _number(top.get("retention_days", config.retention_days), "monitoring.retention_days", fail,
                        low=7, integer=True)
    spikes = _section(top.get("spikes", {}), "monitoring.spikes", _SPIKE_KEYS, fail)
    spike_values = {key: _number(spikes[key], f"monitoring.spikes.{key}", fail,
                                 high=1.0 if key == "alpha" else None,
                                 integer=key in ("weeks", "min_count", "merge_gap", "level_hours"))
                    for key in spikes}
    clusters = _section(top.get("clusters", {}), "monitoring.clusters", _CLUSTER_KEYS, fail)
    if not isinstance(clusters.get("enabled", True), bool):
        raise fail("monitoring.clusters.enabled", "应为 true 或 false")
    cluster_values = {key: clusters[key] if key == "enabled" else
                      _number(clusters[key], f"monitoring.clusters.{key}", fail,
                              high=1.0 if key == "threshold" else None, integer=key == "max_examples")
                      for key in clusters}
    effects = _section(top.get("effects", {}), "monitoring.effects", _EFFECT_KEYS, fail)
    effect_values = {key: _number(effects[key], f"monitoring.effects.{key}", fail,
                                  high=0.999 if key == "level" else None, integer=key != "level")
                     for key in effects}
    grouping = _section(top.get("grouping_minutes", {}), "monitoring.grouping_minutes", event_kinds, fail)
    group_values = {**config.grouping_minutes, **{kind: _number(minutes, f"monitoring.grouping_minutes.{kind}", fail)
                                                  for kind, minutes in grouping.items()}}
    return replace(config, bucket_minutes=bucket, retention_days=retention,
                   spikes=replace(SpikeConfig(bucket_minutes=bucket), **spike_values),
                   clusters=replace(ClusterConfig(), **cluster_values),
                   effects=replace(EffectConfig(), **effect_values), grouping_minutes=group_values)

