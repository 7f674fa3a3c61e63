"""Score with the registered models on Spark: every executor runs the same MLflow model the service loads.

    PYSPARK_PYTHON=.venv/bin/python .venv/bin/python examples/spark_udf.py --model sentiment \\
        --input posts.parquet --output scored/ [--column text] [--master 'local[*]']

`mlflow.pyfunc.spark_udf` ships the registered model (`models:/NAME@champion`, or any `--model-uri`) to the
executors and calls its `predict` on Arrow batches of rows. Every Lossguard model is logged with an input
example, so MLflow knows its output schema and the UDF returns a struct with one field per output column
(`label, p_neg, p_neu, p_pos` for sentiment; `loss_type, p_loss_type_*` for loss type; `propensity, band,
drivers, …` for attrition); `select("scores.*")` flattens it. `env_manager="local"`: executors run the Python
they were started with (the project's venv, or an image with the project installed): nothing is downloaded at
run time. On a cluster it is the same call, with that environment on every executor and
`LOSSGUARD_MLFLOW_TRACKING_URI` pointing at the shared tracking server (artifacts served over HTTP or S3).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT_MODELS = ("sentiment", "loss_type", "function")


def local_spark(master: str = "local[*]"):
    """A local SparkSession whose Python workers use this interpreter (the venv with the project installed)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    return (SparkSession.builder.master(master).appName("lossguard-score")
            .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())


def model_udf(spark, model_uri: str):
    """The registered model as a Spark UDF returning its output columns as one struct."""
    import mlflow

    from features.settings import configure_mlflow

    configure_mlflow()  # the same tracking store (LOSSGUARD_MLFLOW_TRACKING_URI) as the CLI and the service
    return mlflow.pyfunc.spark_udf(spark, model_uri, env_manager="local")


def score(spark, frame, model_uri: str, columns: list[str]):
    """`frame` with the model's output columns appended (the input columns the model reads passed by name)."""
    udf = model_udf(spark, model_uri)
    return frame.withColumn("_scores", udf(*columns)).select("*", "_scores.*").drop("_scores")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentiment", help="registered model name (its champion is used)")
    parser.add_argument("--model-uri", default=None, help="any MLflow model URI instead of NAME@champion")
    parser.add_argument("--input", required=True, help="Parquet or CSV (with a header) to score")
    parser.add_argument("--output", required=True, help="folder for the scored Parquet files")
    parser.add_argument("--column", action="append", default=None,
                        help="input column(s) the model reads (default: text for text models, else all)")
    parser.add_argument("--master", default="local[*]")
    args = parser.parse_args(argv)

    spark = local_spark(args.master)
    try:
        reader = spark.read.option("header", True)
        frame = reader.parquet(args.input) if args.input.endswith(".parquet") else reader.csv(args.input)
        columns = args.column or (["text"] if args.model in TEXT_MODELS else frame.columns)
        uri = args.model_uri or f"models:/{args.model}@champion"
        score(spark, frame, uri, columns).write.mode("overwrite").parquet(args.output)
        print(f"{args.input} -> {args.output} ({uri})")
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
