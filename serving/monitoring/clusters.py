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
    enabled: bool = True
    threshold: float = 0.15
    window_hours: float = 24.0
    max_examples: int = 5


@dataclass
class Cluster:
    """An open cluster as the store keeps it: the first few texts stand for it (examples), size counts all.

    `examples` is None when the store did not read them (the caller already holds the cluster's centroid and the
    examples are complete); such a cluster only grows in size."""

    id: int | None
    department_id: str
    size: int
    first_at: datetime
    last_at: datetime
    examples: list[dict] | None = field(default_factory=list)  # {text, at, ref}
    centroid: sparse.csr_matrix | None = None  # 1 x features, L2-normalised; in memory only
    changed: bool = False


@dataclass(frozen=True)
class Complaint:
    text: str
    department_id: str | None
    at: datetime
    ref: str = ""


def centroids(vectors: sparse.csr_matrix, groups: list[int]) -> sparse.csr_matrix:
    """Sum the rows of each group (groups[i] = group of row i), L2-normalise: one sparse row per group."""
    count = max(groups) + 1 if groups else 0
    indicator = sparse.csr_matrix((np.ones(len(groups)), (groups, np.arange(len(groups)))),
                                  shape=(count, vectors.shape[0]))
    summed = sparse.csr_matrix(indicator @ vectors)
    squares = np.add.reduceat(summed.data ** 2, summed.indptr[:-1]) if summed.nnz else np.zeros(count)
    norms = np.where(np.diff(summed.indptr) > 0, np.sqrt(squares), 1.0)
    summed.data /= np.repeat(norms, np.diff(summed.indptr))
    return summed


def _stack(rows: list[sparse.csr_matrix], width: int) -> sparse.csr_matrix:
    """One-row CSR matrices stacked by concatenating their arrays (scipy's vstack costs ~10 us a row)."""
    indptr = np.concatenate([[0], np.cumsum([r.nnz for r in rows])])
    return sparse.csr_matrix((np.concatenate([r.data for r in rows]), np.concatenate([r.indices for r in rows]),
                              indptr), shape=(len(rows), width))


def assign(complaints: Sequence[Complaint], open_clusters: list[Cluster], vectorize: Vectorizer,
           config: ClusterConfig = ClusterConfig()) -> list[Cluster]:
    """The cluster each complaint joins (in time order); new clusters are appended to `open_clusters` and every
    cluster touched is marked `changed`. Clusters without a centroid get one from their examples.

    A batch costs a handful of sparse products, whatever its size: the batch against every open cluster of its
    departments at once, and the batch against itself, so a complaint can join a cluster an earlier complaint of
    the same batch opened (its similarity to that cluster's centroid is exact: the centroid is the normalised sum
    of the members' vectors). Centroids of clusters that took new examples are recomputed once, at the end."""
    if not complaints:
        return []
    _fill_centroids([c for c in open_clusters if c.centroid is None and c.examples], vectorize)
    departments = {c.department_id or "" for c in complaints}
    pool = [c for c in open_clusters if c.centroid is not None and c.department_id in departments]
    vectors = vectorize([c.text for c in complaints])
    # pool x batch, then transposed: transposing the small batch is cheap, the pool's matrix is not
    to_open = np.asarray((_stack([c.centroid for c in pool], vectors.shape[1]) @ vectors.T).todense()).T \
        if pool else np.zeros((len(complaints), 0))
    within = np.asarray((vectors @ vectors.T).todense())
    pool_department = np.array([c.department_id for c in pool], dtype=object)
    pool_last = np.array([c.last_at for c in pool], dtype="datetime64[us]")
    window = timedelta(hours=config.window_hours)
    fresh: dict[str, list[list]] = {}  # per department: [cluster, members kept (<= max_examples), |sum|^2]
    chosen: list[Cluster | None] = [None] * len(complaints)
    for i in sorted(range(len(complaints)), key=lambda k: complaints[k].at):
        item = complaints[i]
        department = item.department_id or ""
        best, best_sim, best_fresh = None, config.threshold, None
        if pool:
            ok = (pool_department == department) & (np.datetime64(item.at - window, "us") <= pool_last)
            sims = np.where(ok, to_open[i], -1.0)
            j = int(np.argmax(sims))
            if sims[j] >= best_sim:
                best, best_sim = pool[j], sims[j]
        for entry in fresh.get(department, ()):
            cluster, kept, norm2 = entry
            if item.at - cluster.last_at > window:
                continue
            similarity = within[i, kept].sum() / np.sqrt(max(norm2, 1e-12))
            if similarity >= best_sim:
                best, best_sim, best_fresh = cluster, similarity, entry
        if best is None:
            best = Cluster(None, department, 0, item.at, item.at, [], None)
            open_clusters.append(best)
            best_fresh = [best, [], 0.0]
            fresh.setdefault(department, []).append(best_fresh)
        if best_fresh is not None and len(best_fresh[1]) < config.max_examples:
            kept = best_fresh[1]  # |sum + v|^2 = |sum|^2 + 2 v.sum + |v|^2
            best_fresh[2] += 2 * within[i, kept].sum() + within[i, i]
            kept.append(i)
        best.size += 1
        best.last_at = max(best.last_at, item.at)
        if best.examples is not None and len(best.examples) < config.max_examples:
            best.examples.append({"text": item.text, "at": item.at.isoformat(), "ref": item.ref})
            best.centroid = None  # recomputed below, once for every cluster that took examples
        best.changed = True
        chosen[i] = best
    _fill_centroids([c for c in open_clusters if c.changed and c.centroid is None and c.examples], vectorize)
    return chosen  # type: ignore[return-value]


def _fill_centroids(clusters: list[Cluster], vectorize: Vectorizer) -> None:
    """Centroids from the clusters' examples, with one vectorizer call for all of them."""
    if not clusters:
        return
    texts = [e["text"] for c in clusters for e in c.examples]
    groups = [k for k, c in enumerate(clusters) for _ in c.examples]
    rows = centroids(vectorize(texts), groups)
    for k, cluster in enumerate(clusters):
        cluster.centroid = rows[k]


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
