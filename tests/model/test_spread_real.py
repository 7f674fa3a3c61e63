"""The spread forecaster on real Weibo cascades (CED; ../shared/data/weibo_cascades, never committed; every test
here skips cleanly without them): trained end to end through MLflow and the gate, it beats the log-linear
baseline on the latest 20% of posts, its intervals cover, the card names the data, and real-world input variants
(time zones, missing columns) give the same forecasts across the whole test set."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.model_specs import spec
from features.modelio import load_model
from training.spread import load_cascades, time_split, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_real(real_cascades):
    # registered and gated, but the session's champion stays the synthetic-trained one the service tests expect
    # (they send provinces and follower counts, which a model trained on the Weibo crawl cannot use)
    result = train(data_dir=real_cascades, promote=False)[0]
    posts, reposts = load_cascades(real_cascades)
    model = load_model(f"models:/spread/{result['version']}", "spread").estimator
    return result, model, time_split(posts)[1], reposts


def test_ours_beats_the_baselines_on_held_out_real_cascades(trained_real):
    metrics = trained_real[0]["metrics"]
    assert metrics["n_test_posts"] > 400 and metrics["n_active_T60"] > 400
    for window in (60, 120):
        for suffix in ("", "_all"):
            for baseline in ("log_linear", "seismic", "naive"):
                assert metrics[f"msle_ours{suffix}_T{window}"] < metrics[f"msle_{baseline}{suffix}_T{window}"]
    for window in (30, 60, 120):  # ~450 active test cascades: the calibrated 80% within sampling error
        assert 0.7 <= metrics[f"coverage_T{window}"] <= 0.9


def test_without_follower_counts_or_regions_reach_and_regions_are_unknown(trained_real):
    _, model, test, reposts = trained_real
    assert model.n_star is None and model.reach_model is None and model.regions_model is None
    forecast = model.forecast(test, reposts, window_minutes=60)
    active = forecast["observed"] > 0
    assert forecast.loc[active, ["reach", "regions"]].isna().all().all()
    assert (forecast["p10"] <= forecast["p50"]).all() and (forecast["p50"] <= forecast["p90"]).all()
    assert (forecast["p10"] >= forecast["observed"]).all()


def test_the_card_names_the_real_data(trained_real, real_cascades):
    result, _, _, _ = trained_real
    version = MlflowClient().get_model_version("spread", result["version"])
    card = mlflow.artifacts.load_text(version.tags["model_card"])
    posts, reposts = load_cascades(real_cascades)
    for fact in (str(real_cascades), f"| n_posts | {len(posts)} |", f"| n_events | {len(reposts)} |", "2010-12-20",
                 "data_digest", "1,000", "23:xx", "抓取不完整"):
        assert fact in card, fact
    assert str(real_cascades) in result["summary"]


def test_time_zones_and_missing_optional_columns_give_the_same_forecasts(trained_real):
    """Over every test cascade: naive UTC, Asia/Shanghai and tz-aware UTC read the same; the model does not read
    parent ids or texts (they bought nothing in CV), so dropping them changes nothing; repost ids make a twice
    delivered event count once (the crawl repeats events of ~30% of the test posts)."""
    _, model, test, reposts = trained_real
    mine = reposts[reposts["post_id"].isin(test["post_id"])]
    reference = model.forecast(test, mine, window_minutes=60)
    variants = {
        "naive": (test.assign(created_at=test["created_at"].dt.tz_convert(None)),
                  mine.assign(timestamp=mine["timestamp"].dt.tz_convert(None))),
        "shanghai": (test.assign(created_at=test["created_at"].dt.tz_convert("Asia/Shanghai")),
                     mine.assign(timestamp=mine["timestamp"].dt.tz_convert("Asia/Shanghai"))),
        "no parents or texts": (test, mine.drop(columns=["parent_id", "text"])),
    }
    for name, (posts, events) in variants.items():
        pd.testing.assert_frame_equal(model.forecast(posts, events, window_minutes=60), reference,
                                      check_exact=False, obj=name)
    created = mine["post_id"].map(test.set_index("post_id")["created_at"])
    first_hour = mine[mine["timestamp"] <= created + pd.Timedelta(minutes=60)]
    distinct = first_hour.drop_duplicates(["post_id", "repost_id"]).groupby("post_id").size()
    np.testing.assert_array_equal(reference["observed"], distinct.reindex(test["post_id"]).fillna(0).to_numpy())
    counted_twice = model.forecast(test, mine.drop(columns="repost_id"), window_minutes=60)["observed"]
    assert (counted_twice >= reference["observed"]).all() and (counted_twice > reference["observed"]).mean() > 0.1


def test_cli_batch_forecast_on_real_posts_with_the_reposts_known_so_far(trained_real, tmp_path):
    from cli import app

    result, model, test, reposts = trained_real
    posts = test.head(40)
    created = posts.set_index("post_id")["created_at"]
    mine = reposts[reposts["post_id"].isin(posts["post_id"])]
    so_far = mine[mine["timestamp"] <= mine["post_id"].map(created) + pd.Timedelta(minutes=60)]
    posts_csv, reposts_csv, out = tmp_path / "posts.csv", tmp_path / "reposts.csv", tmp_path / "out.csv"
    posts.drop(columns=["author_followers"]).to_csv(posts_csv, index=False)  # a feed without author counts too
    so_far.to_csv(reposts_csv, index=False)
    run = CliRunner().invoke(app, ["predict", "spread", "--posts", str(posts_csv), "--reposts", str(reposts_csv),
                                   "--output", str(out), "--model-uri", f"models:/spread/{result['version']}"])
    assert run.exit_code == 0, run.output
    written = pd.read_csv(out)
    assert tuple(written.columns) == spec("spread").output_columns
    assert written["post_id"].tolist() == posts["post_id"].tolist()
    assert (written["p10"] <= written["p90"]).all()
    np.testing.assert_array_equal(written["observed"], so_far.groupby("post_id").size().reindex(posts["post_id"])
                                  .fillna(0).to_numpy())
