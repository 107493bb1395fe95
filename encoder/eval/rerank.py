"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), written from the paper's formulas.

Over all ``N = Q + G`` items (queries and gallery together), with ``d`` the given distances:

* ``N(p, k)``: the ``k + 1`` nearest items of ``p`` (``p`` itself included, distance 0), in
  ascending distance, ties by index;
* ``R(p, k) = {g in N(p, k) : p in N(g, k)}`` (k-reciprocal neighbours);
* ``R*(p, k)``: ``R(p, k)`` plus ``R(q, round(k/2))`` of every ``q in R(p, k)`` with
  ``|R(p, k) ∩ R(q, k/2)| >= 2/3 |R(q, k/2)|``;
* ``V[p, g] = exp(-d(p, g))`` for ``g in R*(p, k1)``, else 0 (Gaussian kernel, Eq. 7);
* local query expansion: ``V[p] <- mean of V[g] over the k2 nearest g of p`` (self included);
* Jaccard distance ``d_J(p, g) = 1 - Σ_j min(V[p,j], V[g,j]) / Σ_j max(V[p,j], V[g,j])``;
* final ``d*(p, g) = (1 - λ) d_J(p, g) + λ d(p, g)``.

Unlike the authors' released code, ``V`` rows are not normalised to sum 1 and ``d`` is not
rescaled by its column maxima: the Jaccard denominator is computed exactly as
``Σ max = Σ V[p] + Σ V[g] - Σ min``.

``V`` is kept sparse, but the inputs and the stacked ``N x N`` distance matrix are dense:
memory and neighbour search are O((Q+G)^2), so this is meant for moderate sizes
(``max_items``, default 20000 items: about 15 s and 3.3 GB peak RSS on 2 CPU cores).
The kernel uses the distances as given, so pass them on a unit-ish scale (e.g. squared
Euclidean distances of L2-normalised features, in [0, 4], or cosine distances).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from aioreid.encoder.eval.metrics import _as_features

DEFAULT_MAX_ITEMS = 20000


def _as_dist(value: Any, name: str, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_size(nq: int, ng: int, max_items: int) -> None:
    n = nq + ng
    if n > max_items:
        raise ValueError(
            f"re-ranking {nq} queries + {ng} gallery = {n} items exceeds max_items={max_items}: "
            f"it needs O((Q+G)^2) memory (~{n * n * 4 / 2**30:.1f} GiB per float32 matrix); "
            "raise max_items if you have the memory"
        )


def _nearest(dist: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    """``(N, k)`` indices of the k smallest entries per row, ascending, ties by index."""
    n = dist.shape[0]
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, block):
        rows = dist[s : s + block]
        if k < n:
            kth = np.partition(rows, k - 1, axis=1)[:, k - 1 : k]
        else:
            kth = np.full((rows.shape[0], 1), np.inf, dtype=rows.dtype)
        for i, row in enumerate(rows):
            cand = np.flatnonzero(row <= kth[i, 0])
            order = np.argsort(row[cand], kind="stable")  # cand ascends -> ties by index
            out[s + i] = cand[order[:k]]
    return out


def _reciprocal(nn: np.ndarray) -> list[np.ndarray]:
    """R(p, k) for each p, given ``nn = N(·, k)`` (rows of k+1 neighbours)."""
    n = nn.shape[0]
    back = (nn[nn] == np.arange(n)[:, None, None]).any(axis=2)  # p in N(g, k) for g in N(p, k)
    return [nn[p][back[p]] for p in range(n)]


def k_reciprocal_rerank(
    q_g_dist: Any,
    q_q_dist: Any,
    g_g_dist: Any,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> np.ndarray:
    """Re-ranked ``(Q, G)`` float32 distance matrix (lower = better); see the module docstring.

    Raises ``ValueError`` if ``Q + G > max_items`` (memory is O((Q+G)^2)) or on bad input.
    """
    qg = np.asarray(q_g_dist)
    if qg.ndim != 2 or 0 in qg.shape:
        raise ValueError(f"q_g_dist must be a non-empty 2-D (Q, G) array, got {qg.shape}")
    nq, ng = qg.shape
    n = nq + ng
    _check_size(nq, ng, max_items)
    if not (isinstance(k1, (int, np.integer)) and k1 >= 1):
        raise ValueError(f"k1 must be a positive integer, got {k1!r}")
    if not (isinstance(k2, (int, np.integer)) and k2 >= 1):
        raise ValueError(f"k2 must be a positive integer, got {k2!r}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    qg = _as_dist(qg, "q_g_dist", (nq, ng))
    qq = _as_dist(q_q_dist, "q_q_dist", (nq, nq))
    gg = _as_dist(g_g_dist, "g_g_dist", (ng, ng))

    dist = np.empty((n, n), dtype=np.float32)
    dist[:nq, :nq] = qq
    dist[:nq, nq:] = qg
    dist[nq:, :nq] = qg.T
    dist[nq:, nq:] = gg

    k1 = min(int(k1), n - 1)
    half = min(int(np.around(k1 / 2)), n - 1)
    nn = _nearest(dist, k1 + 1)  # N(p, k1), self included
    r_full = _reciprocal(nn)
    r_half = _reciprocal(nn[:, : half + 1])

    # Sparse V rows (R* members with Gaussian weights), then local query expansion.
    v_idx: list[np.ndarray] = []
    v_val: list[np.ndarray] = []
    for p in range(n):
        rp = r_full[p]
        members = [rp]
        for q in rp:
            rq = r_half[q]
            if rq.size and np.intersect1d(rp, rq, assume_unique=True).size >= 2.0 / 3.0 * rq.size:
                members.append(rq)
        star = np.unique(np.concatenate(members))
        v_idx.append(star)
        v_val.append(np.exp(-dist[p, star].astype(np.float64)))

    k2 = min(int(k2), n)
    qe_idx: list[np.ndarray] = []
    qe_val: list[np.ndarray] = []
    for p in range(n):
        nbrs = nn[p, :k2] if k2 <= nn.shape[1] else _nearest(dist[p : p + 1], k2)[0]
        idx = np.concatenate([v_idx[j] for j in nbrs])
        val = np.concatenate([v_val[j] for j in nbrs])
        cols, inv = np.unique(idx, return_inverse=True)
        qe_idx.append(cols)
        qe_val.append(np.bincount(inv.reshape(-1), weights=val) / nbrs.shape[0])
    del dist

    # Inverted index (by column) over the gallery rows of V.
    g_rows = np.concatenate([np.full(qe_idx[nq + g].shape, g, dtype=np.int64) for g in range(ng)])
    g_cols = np.concatenate(qe_idx[nq:])
    g_vals = np.concatenate(qe_val[nq:])
    order = np.argsort(g_cols, kind="stable")
    g_rows, g_cols, g_vals = g_rows[order], g_cols[order], g_vals[order]
    col_ptr = np.searchsorted(g_cols, np.arange(n + 1))
    g_sum = np.array([v.sum() for v in qe_val[nq:]])

    out = np.empty((nq, ng), dtype=np.float32)
    for p in range(nq):
        cols, vals = qe_idx[p], qe_val[p]
        starts, ends = col_ptr[cols], col_ptr[cols + 1]
        lens = ends - starts
        total = int(lens.sum())
        min_sum = np.zeros(ng)
        if total:
            entry = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
            mins = np.minimum(g_vals[entry], np.repeat(vals, lens))
            min_sum = np.bincount(g_rows[entry], weights=mins, minlength=ng)
        max_sum = vals.sum() + g_sum - min_sum
        jac = 1.0 - np.divide(min_sum, max_sum, out=np.zeros(ng), where=max_sum > 0)
        np.clip(jac, 0.0, 1.0, out=jac)  # rounding can leave -1e-16 for identical rows
        out[p] = (1.0 - lambda_value) * jac + lambda_value * qg[p]
    return out


def rerank_features(
    q_feats: Any,
    g_feats: Any,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> np.ndarray:
    """Re-ranked ``(Q, G)`` distances from features: squared Euclidean distances of
    L2-normalised features (``"euclidean"``) or cosine distances ``1 - cos`` (``"cosine"``).
    """
    qf = _as_features(q_feats, "q_feats")
    gf = _as_features(g_feats, "g_feats")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"feature dimensions differ: query {qf.shape[1]} vs gallery {gf.shape[1]}")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    _check_size(qf.shape[0], gf.shape[0], max_items)  # fail before building any matrix
    for name, f in (("q_feats", qf), ("g_feats", gf)):
        if np.any(np.einsum("ij,ij->i", f, f) <= 0):
            raise ValueError(f"{name} has zero-norm rows")
    qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)

    def dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cos = np.clip(a @ b.T, -1.0, 1.0)
        return (2.0 - 2.0 * cos) if metric == "euclidean" else (1.0 - cos)

    return k_reciprocal_rerank(
        dist(qf, gf),
        dist(qf, qf),
        dist(gf, gf),
        k1=k1,
        k2=k2,
        lambda_value=lambda_value,
        max_items=max_items,
    )
