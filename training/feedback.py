"""Feedback loop: resolved warnings become labeled text for the next `lossguard train`.

A reviewer closing a warning says whether it was a true or a false alarm, how far it actually spread, and may
correct the labels. Those are the most valuable labels we get (they are exactly the model's mistakes on our own
traffic), so they are written where the text models' training reads extra rows: settings.generated_dir/feedback.

Rules, in order: a corrected label wins; otherwise a false alarm teaches "nothing here" (neu / none / none); a
true alarm confirms what the warning said. `label_source` keeps which rule gave each row, `actual_spread` is kept
for spread analysis. The store's frame comes in as an argument: training never imports serving (the CLI does).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.settings import settings

FEEDBACK_FILE = "warnings.csv"
LABELS = {"sentiment": SENTIMENTS, "loss_type": LOSS_TYPES, "function": TEXT_FUNCTIONS}
FALSE_ALARM = {"sentiment": "neu", "loss_type": "none", "function": "none"}
COLUMNS = ["warning_id", "text", "channel", "sentiment", "loss_type", "function", "label_source", "outcome",
           "actual_spread", "predicted_sentiment", "predicted_loss_type", "predicted_function", "resolved_at"]
# The measured effect of the fix (serving.monitoring, when the store could evaluate it), kept beside the outcome.
EFFECT_COLUMNS = ["effect_status", "effect_negative", "effect_negative_low", "effect_negative_high",
                  "effect_negative_share"]


def feedback_labels(resolved: pd.DataFrame) -> pd.DataFrame:
    """Labeled rows from `WarningStore.export_feedback()`; warnings without text (team/attrition) are dropped."""
    frame = resolved[resolved["text"].fillna("").str.strip() != ""].reset_index(drop=True)
    predicted = {"sentiment": frame["sentiment_label"], "loss_type": frame["loss_type"], "function": frame["function"]}
    false_alarm = frame["outcome"] == "false_alarm"
    corrected = pd.Series(False, index=frame.index)
    out = pd.DataFrame({"warning_id": frame["warning_id"], "text": frame["text"], "channel": frame["channel"]})
    for label, allowed in LABELS.items():
        given = frame[f"corrected_{label}"]
        has = given.notna() & given.isin(allowed)
        corrected |= has
        fallback = predicted[label].where(~false_alarm, FALSE_ALARM[label])
        out[label] = given.where(has, fallback)
        out[f"predicted_{label}"] = predicted[label]
    out["label_source"] = "confirmed"
    out.loc[false_alarm, "label_source"] = "false_alarm"
    out.loc[corrected, "label_source"] = "corrected"
    out["outcome"] = frame["outcome"]
    out["actual_spread"] = frame["actual_spread"].astype("Int64")
    out["resolved_at"] = frame["resolved_at"]
    for column in EFFECT_COLUMNS:
        out[column] = frame[column] if column in frame else None
    return out[COLUMNS + EFFECT_COLUMNS]


def export_feedback(resolved: pd.DataFrame, out_dir: Path | None = None) -> Path:
    """Write the labeled rows to out_dir/warnings.csv (default settings.generated_dir/feedback).

    The store holds every resolved warning, so each export is a full snapshot that replaces the last one
    (appending would count a warning twice)."""
    folder = Path(out_dir or settings.generated_dir / "feedback")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FEEDBACK_FILE
    feedback_labels(resolved).to_csv(path, index=False, encoding="utf-8")
    return path
