"""Feedback export: resolved warnings as labeled rows, what the next training learns from.

The outcome (true or false alarm), the spread actually seen and the labels a reviewer corrected are what people
add to a warning; `lossguard feedback export` (run by `lossguard train`) writes these rows for retraining.
"""
from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from serving.store.schema import CORRECTABLE_LABELS, WarningRecord, warnings_table

EFFECT_COLUMNS = ["effect_status", "effect_negative", "effect_negative_low", "effect_negative_high",
                  "effect_negative_share"]


class FeedbackExport:
    """A mixin of WarningStore: it expects `self.engine`."""

    def export_feedback(self, effects: dict[int, dict] | None = None) -> pd.DataFrame:
        """Resolved warnings with outcome, actual spread and corrected labels: the labels retraining learns from.
        `effects` (warning id -> serving.monitoring effect) puts the measured effect of the fix beside the
        outcome: relative change of negative volume against matched controls, its interval, the share change."""
        columns = ["warning_id", "subject", "event_kind", "text", "channel", "internal", "department_id", "grade",
                   "loss_type", "function", "sentiment_label", "p_neg", "reach_p50", "reach_p90",
                   "velocity_per_hour", "outcome", "actual_spread", "resolution_notes", "resolved_at",
                   "corrected_sentiment", "corrected_loss_type", "corrected_function"]
        records = []
        for warning in self._all_resolved():
            labels = warning.corrected_labels or {}
            risk = warning.risk
            records.append({
                "warning_id": warning.id, "subject": warning.subject, "event_kind": warning.event_kind,
                "text": warning.text, "channel": warning.channel, "internal": warning.internal,
                "department_id": warning.department_id, "grade": warning.grade, "loss_type": warning.loss_type,
                "function": warning.function, "sentiment_label": risk.get("sentiment_label"),
                "p_neg": risk.get("p_neg"), "reach_p50": risk.get("reach_p50"), "reach_p90": risk.get("reach_p90"),
                "velocity_per_hour": risk.get("velocity_per_hour"), "outcome": warning.outcome,
                "actual_spread": warning.actual_spread, "resolution_notes": warning.resolution_notes,
                "resolved_at": warning.resolved_at, **{f"corrected_{k}": labels.get(k) for k in CORRECTABLE_LABELS},
                **_effect_columns((effects or {}).get(warning.id)),
            })
        return pd.DataFrame.from_records(records, columns=columns + EFFECT_COLUMNS)

    def _all_resolved(self) -> list[WarningRecord]:
        query = sa.select(warnings_table).where(warnings_table.c.status == "resolved").order_by(warnings_table.c.id)
        with self.engine.connect() as conn:
            return [WarningRecord(**row) for row in conn.execute(query).mappings()]


def _effect_columns(effect: dict | None) -> dict:
    metrics = (effect or {}).get("metrics") or {}
    negative, share = metrics.get("negative") or {}, metrics.get("negative_share") or {}
    return {"effect_status": (effect or {}).get("status"), "effect_negative": negative.get("estimate"),
            "effect_negative_low": negative.get("low"), "effect_negative_high": negative.get("high"),
            "effect_negative_share": share.get("estimate")}
