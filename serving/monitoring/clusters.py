"""Complaint clusters: many complaints about one issue become one warning with a count, not N warnings.

Forty customers writing that the same vacuum robot will not charge are one issue; each complaint alone may be
too mild for any rule. Online, single pass (complaints arrive one by one): a complaint joins the most similar
open cluster of the same department when its cosine similarity to the cluster's centroid reaches `threshold`,
else it opens a cluster of its own. A cluster stays open for `window_hours` after its latest complaint.

Similarity is the cosine of the text models' own features (hashed character 1-3-grams with tf-idf weights fitted
on the training corpus): near-duplicates score close to 1, rewordings that share the product and the symptom
("充不进电" / "充电两天就坏了") well above unrelated complaints, whose overlap is generic complaint words that
idf weighs down. No sentence-embedding model can be fetched offline; this is lexical closeness, which is what
paraphrases of one issue share in practice (product names, model numbers, the symptom's words).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy import sparse

Vectorizer = Callable[[Sequence[str]], sparse.csr_matrix]  # L2-normalised rows


@dataclass(frozen=True)
class ClusterConfig:
    threshold: float = 0.15
    window_hours: float = 24.0
    max_examples: int = 5


@dataclass
class Cluster:
    """An open cluster as the store keeps it: the first few texts stand for it (examples), size counts all."""

    id: int | None
    department_id: str
    size: int
    first_at: datetime
    last_at: datetime
    examples: list[dict] = field(default_factory=list)  # {text, at, ref}
    centroid: np.ndarray | None = None  # in memory only: rebuilt from the examples when read back
    changed: bool = False


@dataclass(frozen=True)
class Complaint:
    text: str
    department_id: str | None
    at: datetime
    ref: str = ""


def centroid(vectors: sparse.csr_matrix) -> np.ndarray:
    dense = np.asarray(vectors.sum(axis=0)).ravel()
    norm = np.linalg.norm(dense)
    return dense / norm if norm > 0 else dense


def assign(complaints: Sequence[Complaint], open_clusters: list[Cluster], vectorize: Vectorizer,
           config: ClusterConfig = ClusterConfig()) -> list[Cluster]:
    """The cluster each complaint joins (in time order); new clusters are appended to `open_clusters` and every
    cluster touched is marked `changed`. Clusters without a centroid get one from their examples."""
    if not complaints:
        return []
    missing = [c for c in open_clusters if c.centroid is None]
    if missing:
        texts = [e["text"] for c in missing for e in c.examples]
        rows = vectorize(texts) if texts else None
        start = 0
        for cluster in missing:
            count = len(cluster.examples)
            cluster.centroid = centroid(rows[start:start + count]) if count else None
            start += count
    vectors = vectorize([c.text for c in complaints])
    order = sorted(range(len(complaints)), key=lambda i: complaints[i].at)
    chosen: list[Cluster | None] = [None] * len(complaints)
    window = timedelta(hours=config.window_hours)
    for i in order:
        item = complaints[i]
        department = item.department_id or ""
        vector = vectors[i]
        best, best_sim = None, config.threshold
        for cluster in open_clusters:
            if cluster.department_id != department or cluster.centroid is None or item.at - cluster.last_at > window:
                continue
            similarity = float(vector.dot(cluster.centroid)[0])
            if similarity >= best_sim:
                best, best_sim = cluster, similarity
        example = {"text": item.text, "at": item.at.isoformat(), "ref": item.ref}
        if best is None:
            best = Cluster(None, department, 0, item.at, item.at, [], None)
            open_clusters.append(best)
        best.size += 1
        best.last_at = max(best.last_at, item.at)
        if len(best.examples) < config.max_examples:
            best.examples.append(example)
            best.centroid = centroid(vectorize([e["text"] for e in best.examples]))
        best.changed = True
        chosen[i] = best
    return chosen  # type: ignore[return-value]


def bcubed(truth: Sequence[int], predicted: Sequence[int]) -> tuple[float, float]:
    """B-cubed precision and recall of a clustering against planted labels (each item counts once)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    precision = recall = 0.0
    for i in range(len(truth)):
        same_pred = predicted == predicted[i]
        same_true = truth == truth[i]
        both = np.sum(same_pred & same_true)
        precision += both / same_pred.sum()
        recall += both / same_true.sum()
    return precision / len(truth), recall / len(truth)
