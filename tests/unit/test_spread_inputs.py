"""What real feeds lack or garble (issue #18), judged over many generated cascades: missing follower counts,
regions, parent ids and texts degrade the features they feed (NaN plus a `*_known` flag, never a silent zero) and
leave every other feature unchanged; timestamps read the same naive (UTC), tz-aware in any zone, or as strings;
duplicates count once; small clock skew is clamped; a really broken row is refused naming its row and field."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contracts import ContractError
from features.spread_features import (
    FEATURE_COLUMNS,
    FEATURE_GROUPS,
    cascade_events,
    cascade_outcomes,
    early_features,
)

N_POSTS = 120
WINDOWS = np.resize([15.0, 30.0, 60.0, 120.0], N_POSTS)


def feed(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N_POSTS posts over a week (naive UTC) with cascades of 0–150 events: ids, parents (a random earlier event
    of the same post or the post itself), followers, regions and texts."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2025-05-01") + pd.to_timedelta(rng.uniform(0, 7 * 86400, N_POSTS).round(), unit="s")
    posts = pd.DataFrame({"post_id": [f"P{i}" for i in range(N_POSTS)], "created_at": created, "channel": "weibo",
                          "author_followers": rng.integers(0, 100_000, N_POSTS), "internal": False,
                          "author_verified": rng.random(N_POSTS) < 0.5, "text": "某品牌被曝质量问题"})
    rows = []
    for i, size in enumerate(rng.integers(0, 150, N_POSTS) * (rng.random(N_POSTS) > 0.1)):
        delays = np.sort(rng.exponential(3600.0, size)).round()
        parents = [None if k == 0 or rng.random() < 0.6 else f"P{i}-R{rng.integers(0, k)}" for k in range(size)]
        rows.append(pd.DataFrame({
            "post_id": f"P{i}", "repost_id": [f"P{i}-R{k}" for k in range(size)], "parent_id": parents,
            "timestamp": created[i] + pd.to_timedelta(delays, unit="s"),
            "user_followers": rng.integers(0, 50_000, size), "region": rng.choice(["广东", "上海", "北京"], size),
            "text": rng.choice(["", "转发微博", "太过分了"], size)}))
    return posts, pd.concat(rows, ignore_index=True)


def features(posts: pd.DataFrame, stream: pd.DataFrame) -> pd.DataFrame:
    return early_features(posts, stream, WINDOWS, n_star=300.0)


def _unaffected(group: str) -> list[str]:
    return [c for c in FEATURE_COLUMNS if c not in FEATURE_GROUPS[group]]


@pytest.fixture(scope="module")
def full() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    posts, stream = feed()
    return posts, stream, features(posts, stream)


def test_the_generated_feed_carries_every_optional_input(full):
    _, _, table = full
    active = table["n_window"] > 0
    assert active.mean() > 0.8
    for flag in ("followers_known", "tree_known", "regions_known"):
        assert (table.loc[active, flag] == 1).all()
    assert table.loc[active, "max_depth"].max() >= 3


def test_missing_follower_counts_flag_the_follower_group_and_change_nothing_else(full):
    posts, stream, table = full
    degraded = features(posts, stream.drop(columns="user_followers"))
    pd.testing.assert_frame_equal(degraded[_unaffected("followers")], table[_unaffected("followers")])
    active = table["n_window"] > 0
    assert (degraded.loc[active, "followers_known"] == 0).all()
    followers = [c for c in FEATURE_GROUPS["followers"] if c != "followers_known"]
    assert degraded.loc[active, followers].isna().all().all()  # unknown, not zero followers
    reach = cascade_outcomes(posts, cascade_events(posts, stream.assign(user_followers=None)), 24, 100)["reach"]
    assert reach[active.to_numpy()].isna().all()


def test_some_follower_counts_missing_is_a_share_not_a_switch(full):
    posts, stream, _ = full
    half = stream.assign(user_followers=stream["user_followers"].astype("Int64").where(stream.index % 2 == 0))
    table = features(posts, half)
    active = table["n_window"] >= 10
    assert table.loc[active, "followers_known"].between(0.2, 0.8).mean() > 0.9
    assert table.loc[active, "exposure"].isna().all()  # SEISMIC's marks are incomplete: its statistic is unknown


def test_missing_regions_make_regions_unknown_only_where_there_were_reposts(full):
    posts, stream, table = full
    degraded = features(posts, stream.assign(region=None))
    pd.testing.assert_frame_equal(degraded[_unaffected("regions")], table[_unaffected("regions")])
    active = table["n_window"] > 0
    assert degraded.loc[active, "regions_window"].isna().all() and (degraded.loc[active, "regions_known"] == 0).all()
    assert (degraded.loc[~active, "regions_window"] == 0).all()  # no reposts: no region reached, a fact
    outcome = cascade_outcomes(posts, cascade_events(posts, stream.drop(columns="region")), 24, 100)
    assert outcome["regions"].isna().all()


def test_missing_parent_ids_flag_the_tree_group(full):
    posts, stream, table = full
    for degraded in (features(posts, stream.drop(columns="parent_id")),
                     features(posts, stream.drop(columns=["parent_id", "repost_id"]))):
        pd.testing.assert_frame_equal(degraded[_unaffected("tree")], table[_unaffected("tree")])
        active = table["n_window"] > 0
        assert (degraded.loc[active, "tree_known"] == 0).all()
        assert degraded[FEATURE_GROUPS["tree"][1:]].isna().all().all()


def test_parents_outside_the_stream_leave_depth_unknown_for_their_subtree():
    posts, stream = feed()
    orphaned = stream.assign(parent_id=stream["parent_id"].where(stream.index % 7 != 0, "GONE"))
    events = cascade_events(posts, orphaned)
    assert np.isnan(events.depth).mean() >= 1 / 7 - 0.01
    assert np.isfinite(events.depth).mean() > 0.5
    assert (events.depth[np.isfinite(events.depth)] >= 1).all()


def test_depth_follows_parent_ids():
    posts = pd.DataFrame({"post_id": ["A"], "created_at": [pd.Timestamp("2025-01-01")]})
    stream = pd.DataFrame({"post_id": "A", "repost_id": ["r1", "r2", "r3", "r4"], "parent_id": [None, "r1", "r2", None],
                           "timestamp": pd.Timestamp("2025-01-01") + pd.to_timedelta([1, 2, 3, 4], unit="min")})
    events = cascade_events(posts, stream.sample(frac=1.0, random_state=1))
    assert events.depth.tolist() == [1.0, 2.0, 3.0, 1.0]
    row = early_features(posts, stream, 60).iloc[0]
    assert row["max_depth"] == 3 and row["share_direct"] == 0.5 and row["max_children_log"] == pytest.approx(np.log(2))


def test_missing_texts_and_scores_flag_the_reaction_text_group(full):
    posts, stream, table = full
    active = table["n_window"] > 0
    assert table.loc[active, "neg_share"].isna().all()  # texts without scores: nothing to average
    assert (table.loc[active, "reaction_text_known"] == 0).all()
    scored = stream.assign(p_neg=np.where(stream["text"] == "太过分了", 0.9, 0.1))
    with_scores = features(posts, scored)
    pd.testing.assert_frame_equal(with_scores[_unaffected("reaction_text")], table[_unaffected("reaction_text")])
    some = with_scores["reaction_text_known"] > 0
    assert some[active].mean() > 0.9 and with_scores.loc[some, "neg_share"].between(0.1, 0.9).all()
    assert (with_scores.loc[active, "reaction_text_known"] < 1).mean() > 0.9  # empty texts are not scored
    pd.testing.assert_frame_equal(features(posts, stream.drop(columns="text")), table)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_tz_aware_timestamps_in_any_zone_read_like_naive_utc(full, zone):
    posts, stream, table = full
    aware_posts = posts.assign(created_at=posts["created_at"].dt.tz_localize("UTC").dt.tz_convert(zone))
    aware_stream = stream.assign(timestamp=stream["timestamp"].dt.tz_localize("UTC").dt.tz_convert(zone))
    pd.testing.assert_frame_equal(features(aware_posts, aware_stream), table)
    mixed = stream.assign(timestamp=stream["timestamp"].dt.tz_localize("UTC").dt.tz_convert(zone).astype(object))
    pd.testing.assert_frame_equal(features(posts, mixed), table)  # naive posts, aware reposts


def test_timestamps_as_strings_with_and_without_offsets_read_the_same(full):
    posts, stream, table = full
    iso = stream.assign(timestamp=stream["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    shanghai = stream.assign(timestamp=(stream["timestamp"].dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai")
                                        .dt.strftime("%Y-%m-%d %H:%M:%S%z")))
    pd.testing.assert_frame_equal(features(posts, iso), table)
    pd.testing.assert_frame_equal(features(posts, shanghai), table)


def test_hour_of_day_is_the_audiences():
    created = pd.Series(pd.to_datetime(["2025-01-01 15:30:00", "2025-01-01 16:10:00", "2025-07-01 02:00:00"]))
    posts = pd.DataFrame({"post_id": ["a", "b", "c"], "created_at": created})
    shanghai = early_features(posts, None, 60, timezone="Asia/Shanghai")
    assert shanghai["hour_local"].tolist() == [23.0, 0.0, 10.0]
    assert shanghai["weekday_local"].tolist() == [2.0, 3.0, 1.0]  # Wed 23:30, Thu 00:10, Tue 10:00 in Shanghai
    new_york = early_features(posts, None, 60, timezone="America/New_York")
    assert new_york["hour_local"].tolist() == [10.0, 11.0, 22.0]  # EST in January, EDT in July


def test_duplicated_events_count_once(full):
    posts, stream, table = full
    doubled = pd.concat([stream, stream.sample(frac=0.3, random_state=2)], ignore_index=True)
    pd.testing.assert_frame_equal(features(posts, doubled), table)
    outcome = cascade_outcomes(posts, cascade_events(posts, doubled), 24, 100)
    assert outcome["final"].sum() == len(stream)


def test_clock_skew_up_to_a_minute_is_clamped_to_the_post_time():
    posts, stream = feed()
    created = stream["post_id"].map(posts.set_index("post_id")["created_at"])
    skewed = stream.assign(timestamp=stream["timestamp"].where(stream.index % 5 != 0,
                                                               created - pd.Timedelta(seconds=45)))
    events = cascade_events(posts, skewed)
    assert len(events) == len(stream) and (events.delay >= 0).all()
    assert (events.delay == 0).sum() >= (stream.index % 5 == 0).sum()


def test_broken_rows_are_refused_naming_row_and_field():
    posts, stream = feed()
    broken = stream.astype({"timestamp": object, "user_followers": object})
    broken.loc[[4, 9], "timestamp"] = "soon"
    broken.loc[11, "user_followers"] = "lots"
    created = broken.loc[20, "post_id"]
    broken.loc[20, "timestamp"] = posts.set_index("post_id").at[created, "created_at"] - pd.Timedelta(minutes=5)
    with pytest.raises(ContractError) as caught:
        cascade_events(posts, broken)
    assert {(e.row, e.field) for e in caught.value.errors} == {(4, "timestamp"), (9, "timestamp"), (20, "timestamp")}
    with pytest.raises(ContractError) as caught:
        cascade_events(posts, broken.drop(index=[4, 9, 20]))
    assert [(e.row, e.field) for e in caught.value.errors] == [(9, "user_followers")]  # position in that input
    bad_posts = posts.astype({"created_at": object})
    bad_posts.loc[3, "created_at"] = "yesterday-ish"
    bad_posts.loc[7, "post_id"] = "P0"
    with pytest.raises(ContractError) as caught:
        cascade_events(bad_posts, stream)
    assert {(e.row, e.field) for e in caught.value.errors} == {(3, "created_at"), (7, "post_id")}


def test_a_post_gets_the_same_features_alone_as_in_a_batch_with_richer_feeds(full):
    """Batch-level facts (another post has followers or regions) must not leak into a post's features."""
    posts, stream, table = full
    poorer = stream.assign(user_followers=stream["user_followers"].where(stream["post_id"] != "P5"),
                           region=stream["region"].where(stream["post_id"] != "P5"))
    together = features(posts, poorer).set_index("post_id")
    alone = early_features(posts[posts["post_id"] == "P5"], poorer[poorer["post_id"] == "P5"], WINDOWS[5],
                           n_star=300.0).set_index("post_id")
    pd.testing.assert_frame_equal(alone, together.loc[["P5"]])
