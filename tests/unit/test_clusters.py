"""Complaint clustering on planted bursts: each issue lands in one cluster (rates over many generated companies),
unrelated complaints and questions about the same product rarely join it, and clusters close after their window."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features.text import TextFeaturizer, TextNormalizer
from serving.monitoring.clusters import ClusterConfig, Complaint, assign, bcubed
from synthetic.monitoring import _complaint_bursts
from synthetic.org import build_org
from synthetic.texts import _corpus


@pytest.fixture(scope="module")
def vectorize():
    """The text models' features (hashed char 1-3-grams, tf-idf) fitted on the workplace corpus."""
    normalizer = TextNormalizer()
    featurizer = TextFeaturizer().fit(normalizer.batch(_corpus()["text"].tolist()))
    return lambda texts: featurizer.transform(normalizer.batch(list(texts)))


@pytest.fixture(scope="module")
def bursts():
    corpus = _corpus()
    out = []
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        out.append(_complaint_bursts(rng, build_org(800, rng), pd.Timestamp("2026-06-30"), corpus))
    return out


def _clusters(frame: pd.DataFrame, vectorize) -> list[int]:
    items = [Complaint(t, d, a.to_pydatetime(), str(i)) for i, (t, d, a) in
             enumerate(zip(frame["text"], frame["department_id"], frame["created_at"], strict=True))]
    found: list = []
    chosen = assign(items, found, vectorize)
    index = {id(c): k for k, c in enumerate(found)}
    return [index[id(c)] for c in chosen]


def test_each_issue_becomes_one_cluster_and_strangers_stay_out(bursts, vectorize):
    shares, intruders, background = [], 0, 0
    precision = recall = 0.0
    for frame, issues in bursts:
        labels = _clusters(frame, vectorize)
        truth = [t if t >= 0 else 10_000 + i for i, t in enumerate(frame["planted_issue"])]
        p, r = bcubed(truth, labels)
        precision, recall = precision + p, recall + r
        for issue in issues:
            members = [labels[i] for i, t in enumerate(frame["planted_issue"]) if t == issue["issue"]]
            top = max(set(members), key=members.count)
            shares.append(members.count(top) / len(members))
            planted = frame["planted_issue"]
            intruders += sum(1 for i, t in enumerate(planted) if labels[i] == top and t != issue["issue"])
        background += int((frame["planted_issue"] < 0).sum())
    assert np.mean(shares) >= 0.9 and np.percentile(shares, 10) >= 0.75
    assert intruders / background <= 0.05
    assert precision / len(bursts) >= 0.9 and recall / len(bursts) >= 0.9


def test_a_cluster_closes_after_its_window_and_never_crosses_departments(vectorize):
    t0 = datetime(2026, 6, 1, 9)
    text = "X5扫地机器人充不进电，要求退货退款"
    items = [Complaint(text, "U1", t0), Complaint(text, "U1", t0 + timedelta(hours=2)),
             Complaint(text, "U2", t0 + timedelta(hours=3)), Complaint(text, "U1", t0 + timedelta(hours=40))]
    found: list = []
    chosen = assign(items, found, vectorize, ClusterConfig(window_hours=24))
    assert chosen[0] is chosen[1] and chosen[1].size == 2
    assert chosen[2] is not chosen[0] and chosen[2].department_id == "U2"
    assert chosen[3] is not chosen[0]


def test_examples_are_kept_up_to_the_limit_and_size_counts_all(vectorize):
    t0 = datetime(2026, 6, 1, 9)
    items = [Complaint(f"Q3蓝牙耳机左耳没声音{'，' * (i % 3)}希望尽快处理", "U1", t0 + timedelta(minutes=i), f"c{i}")
             for i in range(12)]
    found: list = []
    chosen = assign(items, found, vectorize, ClusterConfig(max_examples=5))
    assert len(found) == 1 and chosen[-1].size == 12 and len(chosen[-1].examples) == 5
    assert [e["ref"] for e in chosen[-1].examples] == [f"c{i}" for i in range(5)]
