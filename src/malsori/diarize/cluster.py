"""Agglomerative clustering of speaker embeddings: cosine distance, average linkage (UPGMA),
in numpy (neither scipy nor scikit-learn is a dependency).

The nearest-neighbour-chain algorithm merges in O(n^2) time and memory: a few hundred
embeddings (a one-hour meeting at a 5 s window step) cluster in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _normalize(x: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: FloatArray = arr / np.maximum(norms, 1e-12)
    return out


def linkage(
    embeddings: npt.ArrayLike,
    apart: Iterable[tuple[int, int]] = (),
    penalty: float = 0.0,
) -> FloatArray:
    """The merge list, (n - 1, 3) rows of (cluster a, cluster b, distance) in the order they
    were made; row r makes cluster n + r (the numbering of scipy's ``linkage``).

    ``apart``: pairs of embeddings (i, j) whose cosine distance gets ``penalty`` added (a
    soft cannot-link). Average linkage stays monotone for any dissimilarity, so :func:`cut`
    works the same; two clusters then carry the penalty times the share of their member
    pairs that are marked apart."""
    x = _normalize(embeddings)
    n = len(x)
    if n < 2:
        return np.zeros((0, 3))
    dist = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    pairs = np.array(list(apart), dtype=np.int64).reshape(-1, 2)
    if penalty and len(pairs):
        dist[pairs[:, 0], pairs[:, 1]] += penalty
        dist[pairs[:, 1], pairs[:, 0]] += penalty
    np.fill_diagonal(dist, np.inf)
    size = np.ones(n)
    label = np.arange(n)  # the merge-list id of the cluster living in each row
    alive = np.ones(n, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    chain: list[int] = []
    next_id = n
    while len(merges) < n - 1:
        if not chain:
            chain.append(int(np.flatnonzero(alive)[0]))
        a = chain[-1]
        row = np.where(alive, dist[a], np.inf)
        row[a] = np.inf
        b = int(np.argmin(row))
        if len(chain) > 1 and row[chain[-2]] <= row[b]:
            b = chain[-2]
        if len(chain) > 1 and b == chain[-2]:
            chain.pop()
            chain.pop()
            d = float(dist[a, b])
            merges.append((int(label[a]), int(label[b]), d))
            # Lance-Williams for average linkage; the merged cluster lives in row a.
            new = (size[a] * dist[a] + size[b] * dist[b]) / (size[a] + size[b])
            dist[a] = new
            dist[:, a] = new
            dist[a, a] = np.inf
            alive[b] = False
            dist[b] = np.inf
            dist[:, b] = np.inf
            size[a] += size[b]
            label[a] = next_id
            next_id += 1
        else:
            chain.append(b)
    return np.array(merges, dtype=np.float64)


def cut(
    merges: FloatArray, n: int, *, threshold: float | None = None, num_clusters: int | None = None
) -> IntArray:
    """Flat cluster labels 0..k-1 (numbered by first member) from a merge list: every merge
    closer than ``threshold``, or exactly as many merges as leave ``num_clusters``."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    parent = list(range(2 * n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Average linkage is monotone (a merge is never closer than the merges below it), so the
    # closest merges always form complete subtrees.
    order = np.argsort(merges[:, 2], kind="stable") if len(merges) else np.zeros(0, np.int64)
    if num_clusters is not None:
        chosen = order[: max(0, min(n - 1, n - num_clusters))]
    else:
        limit = np.inf if threshold is None else threshold
        chosen = order[merges[order, 2] < limit]
    for row in sorted(int(r) for r in chosen):
        a, b = int(merges[row, 0]), int(merges[row, 1])
        parent[find(a)] = n + row
        parent[find(b)] = n + row
    roots = [find(i) for i in range(n)]
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(r, len(numbering)) for r in roots], dtype=np.int64)


def centroids(embeddings: npt.ArrayLike, labels: IntArray) -> FloatArray:
    """(k, dim) L2-normalised mean of each cluster's normalised embeddings."""
    x = _normalize(embeddings)
    k = int(labels.max()) + 1 if len(labels) else 0
    return _normalize(np.stack([x[labels == c].mean(axis=0) for c in range(k)]))


__all__ = ["centroids", "cut", "linkage"]
