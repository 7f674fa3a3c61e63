"""Beyond one machine: a registered Lossguard model runs as a Spark UDF (examples/spark_udf.py) and gives the same
figures as the model itself. Local Spark, one core, a few rows; skips cleanly without Java or PySpark."""
from __future__ import annotations

import importlib.util
import shutil
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("pyspark", reason="pyspark (dev extras) not installed")
if shutil.which("java") is None:
    pytest.skip("no Java runtime (`make java` installs Debian's default-jre-headless)", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spark_udf.py"
TEXTS = ["客服态度太差了，投诉三次都没人管", "下周一全员大会，请准时参加", "新来的主管很愿意听意见，团队氛围好多了",
         "", "加班到凌晨两点，第二天还要九点打卡"]


def _example():
    spec = importlib.util.spec_from_file_location("spark_udf_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def registered_text_model():
    """A small sentiment model fitted on a corpus sample and registered under a name of its own."""
    from features.contracts import SENTIMENTS
    from features.loaders import load_workplace_corpus
    from features.settings import configure_mlflow
    from features.text import TextNormalizer
    from training.registry import log_and_register
    from training.sentiment import fit_linear

    rows = load_workplace_corpus().sample(400, random_state=1).assign(split="train", weight=1.0)
    model = fit_linear("sentiment", rows, TextNormalizer(), SENTIMENTS, empty_label="neu", c=10.0)
    configure_mlflow()
    name = f"sentiment-spark-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(run_name=name):
        version = log_and_register(model, name, input_example=pd.DataFrame({"text": TEXTS[:2]}))
    return f"models:/{name}/{version}", model


def test_the_registered_model_as_a_spark_udf_scores_like_the_model(registered_text_model):
    uri, model = registered_text_model
    example = _example()
    spark = example.local_spark("local[1]")
    try:
        frame = spark.createDataFrame(pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}))
        scored = example.score(spark, frame, uri, ["text"]).toPandas().sort_values("id").reset_index(drop=True)
    finally:
        spark.stop()
    expected = model.predict_frame(pd.DataFrame({"text": TEXTS}))
    assert list(scored.columns) == ["id", "text", "label", "p_neg", "p_neu", "p_pos"]
    assert scored["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(scored[["p_neg", "p_neu", "p_pos"]], expected[["p_neg", "p_neu", "p_pos"]], atol=1e-6)
