"""Ranking metrics for ReID retrieval: CMC, mAP and mINP, chunked over queries.

Conventions (Market-1501 / torchreid style, see docs/aio-paper.md, "Evaluation protocols"):

* Gallery items are ranked by **descending score** (``scores``) or **ascending distance**
  (``distmat``). **Ties** are broken deterministically by **ascending gallery index**, i.e. the
  order a stable ``argsort`` of ``-scores`` (or of ``distmat``) gives.
* Excluded gallery items are removed before ranking (they occupy no rank position):
  gallery pid ``-1`` (junk) always; with ``exclude_same_camera`` and camera ids given, gallery
  items with the query's pid **and** camera; and gallery cameras listed for the query's camera in
  ``ignore_camera_pairs`` (e.g. SYSU-MM01: ``(3, 2)``). Pid ``0`` (distractors) stays as negative.
* A query with no valid match (or with pid ``-1``) is **skipped** and counted in
  ``num_skipped_queries``. If every query is skipped, :class:`NoValidQueryError` is raised.
* AP = mean over the positives of ``(#positives up to it) / (its rank)``; mINP per query
  (Ye et al.) = ``#positives / rank of the last positive``; CMC[k] = fraction of valid queries
  whose first positive is within rank ``k + 1``. ``cmc_mode="identity"`` instead ranks the first
  positive among *distinct identities* (the SYSU-MM01 released evaluation code's CMC);
  AP and mINP are always image-based.

Memory: scores are computed in blocks of ``chunk_size`` queries; the only large temporary is
one ``chunk_size x G`` score block (float32 for features; the input dtype for scores/distmat)
plus a few ``G``-sized row buffers. No ``Q x G`` matrix and no full argsort are built: per query,
the rank of each positive is the number of valid gallery items scoring strictly higher plus the
tied ones with lower index, counted only over items scoring at least the lowest positive.
With the default chunk size the block is about 128 MiB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Metric = Literal["cosine", "euclidean"]
CmcMode = Literal["image", "identity"]

#: Target size of one score block when ``chunk_size`` is not given (bytes).
DEFAULT_BLOCK_BYTES = 128 * 1024 * 1024
#: Above this many positives per query, counting uses a sort instead of K comparison passes.
_COMPARE_MAX_POSITIVES = 16
#: Budget (elements) for the ``K x n`` comparison temporaries of the exact tie-aware path.
_EXACT_BLOCK_ELEMS = 1 << 22
_NORM_TOL = 1e-4


class NoValidQueryError(ValueError):
    """Raised when no query has a valid match in the gallery (all queries skipped)."""


@dataclass
class RankResult:
    """Retrieval metrics; all rates are fractions in ``[0, 1]`` (``as_dict`` gives percent).

    ``cmc`` has length ``max_rank``. For results averaged over trials/splits
    (:func:`average_results`), ``num_valid_queries`` / ``num_skipped_queries`` are sums.
    """

    cmc: np.ndarray
    rank1: float
    rank5: float
    rank10: float
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int

    def as_dict(self, include_cmc: bool = False) -> dict[str, Any]:
        """Metrics in percent (``R1``, ``R5``, ``R10``, ``mAP``, ``mINP``) plus query counts."""
        out: dict[str, Any] = {
            "R1": 100.0 * self.rank1,
            "R5": 100.0 * self.rank5,
            "R10": 100.0 * self.rank10,
            "mAP": 100.0 * self.mAP,
            "mINP": 100.0 * self.mINP,
            "num_valid_queries": int(self.num_valid_queries),
            "num_skipped_queries": int(self.num_skipped_queries),
        }
        if include_cmc:
            out["cmc"] = [100.0 * float(v) for v in self.cmc]
        return out


def average_results(results: Sequence[RankResult]) -> RankResult:
    """Mean of several results (trials, splits): CMC, mAP and mINP averaged, counts summed."""
    if not results:
        raise ValueError("average_results needs at least one result")
    n = min(len(r.cmc) for r in results)
    cmc = np.mean([np.asarray(r.cmc[:n], dtype=np.float64) for r in results], axis=0)
    return RankResult(
        cmc=cmc,
        rank1=float(np.mean([r.rank1 for r in results])),
        rank5=float(np.mean([r.rank5 for r in results])),
        rank10=float(np.mean([r.rank10 for r in results])),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        num_valid_queries=int(sum(r.num_valid_queries for r in results)),
        num_skipped_queries=int(sum(r.num_skipped_queries for r in results)),
    )


# --------------------------------------------------------------------------- validation


def _as_labels(values: Any, name: str, length: int | None = None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integers")
    elif arr.dtype.kind not in "iub" and arr.size:
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but there are {length} items")
    return arr.astype(np.int64, copy=False)


def _as_features(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 rows)")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has feature dimension 0")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = _count_nonfinite_rows(arr)
    if bad:
        raise ValueError(f"{name} contains NaN or infinite values in {bad} row(s)")
    return arr


def _count_nonfinite_rows(arr: np.ndarray, block: int = 8192) -> int:
    bad = 0
    for s in range(0, arr.shape[0], block):
        part = arr[s : s + block]
        bad += int(np.count_nonzero(~np.isfinite(part).all(axis=1)))
    return bad


def _validate_common(
    num_q: int,
    num_g: int,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    max_rank: int,
    chunk_size: int | None,
    cmc_mode: str,
    ignore_camera_pairs: Iterable[tuple[int, int]] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, list[tuple[int, int]]]:
    if num_g == 0:
        raise ValueError("the gallery is empty")
    if num_q == 0:
        raise ValueError("there are no queries")
    qp = _as_labels(q_pids, "q_pids", num_q)
    gp = _as_labels(g_pids, "g_pids", num_g)
    if (q_camids is None) != (g_camids is None):
        raise ValueError("give both q_camids and g_camids, or neither")
    qc = gc = None
    if q_camids is not None:
        qc = _as_labels(q_camids, "q_camids", num_q)
        gc = _as_labels(g_camids, "g_camids", num_g)
    pairs = [(int(a), int(b)) for a, b in (ignore_camera_pairs or ())]
    if pairs and qc is None:
        raise ValueError("ignore_camera_pairs needs q_camids and g_camids")
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if cmc_mode not in ("image", "identity"):
        raise ValueError(f"cmc_mode must be 'image' or 'identity', got {cmc_mode!r}")
    return qp, gp, qc, gc, pairs


def _auto_chunk(num_q: int, num_g: int, itemsize: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        chunk_size = max(1, DEFAULT_BLOCK_BYTES // max(1, num_g * itemsize))
    return int(min(chunk_size, num_q))


# --------------------------------------------------------------------------- core


class _RankAccumulator:
    """Consumes score blocks (rows = queries, higher = better) and accumulates the metrics."""

    def __init__(
        self,
        q_pids: np.ndarray,
        g_pids: np.ndarray,
        q_camids: np.ndarray | None,
        g_camids: np.ndarray | None,
        *,
        max_rank: int,
        exclude_same_camera: bool,
        ignore_camera_pairs: list[tuple[int, int]],
        cmc_mode: str,
    ) -> None:
        self.q_pids, self.g_pids = q_pids, g_pids
        self.q_camids, self.g_camids = q_camids, g_camids
        self.max_rank = int(max_rank)
        self.cmc_len = max(self.max_rank, 10)
        self.same_cam = bool(exclude_same_camera) and q_camids is not None
        self.identity = cmc_mode == "identity"
        num_g = g_pids.shape[0]

        # Columns invalid for every query (junk), and per query camera (ignored camera pairs).
        self.base_invalid = g_pids == -1
        self.base_cols = np.flatnonzero(self.base_invalid)
        self.cam_invalid: dict[int | None, np.ndarray] = {}
        self.cam_extra_cols: dict[int, np.ndarray] = {}
        for qcam in sorted({a for a, _ in ignore_camera_pairs}):
            banned = [b for a, b in ignore_camera_pairs if a == qcam]
            extra = np.isin(g_camids, banned) & ~self.base_invalid
            self.cam_invalid[qcam] = self.base_invalid | extra
            self.cam_extra_cols[qcam] = np.flatnonzero(extra)

        # Gallery grouped by pid (stable, so each group's indices ascend) -> positives lookup.
        self.g_order = np.argsort(g_pids, kind="stable")
        sorted_p = g_pids[self.g_order]
        uniq, starts = np.unique(sorted_p, return_index=True)
        ends = np.append(starts[1:], num_g)
        loc = np.searchsorted(uniq, q_pids)
        loc_c = np.minimum(loc, max(len(uniq) - 1, 0))
        found = (loc < len(uniq)) & (uniq[loc_c] == q_pids) & (q_pids != -1)
        self.grp_start = np.where(found, starts[loc_c], 0)
        self.grp_end = np.where(found, ends[loc_c], 0)

        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.num_skipped = 0
        self.first_hist = np.zeros(self.cmc_len + 1, dtype=np.int64)

    # -- per block ---------------------------------------------------------------------

    def add_block(self, scores: np.ndarray, q_start: int) -> None:
        """Process a writable score block for queries ``q_start .. q_start + len(scores)``.

        The block is modified in place (excluded items are set to ``-inf``).
        """
        num_rows = scores.shape[0]
        neg_inf = scores.dtype.type(-np.inf)
        if self.base_cols.size:
            scores[:, self.base_cols] = neg_inf
        if self.cam_extra_cols:
            qcams = self.q_camids[q_start : q_start + num_rows]
            for qcam, cols in self.cam_extra_cols.items():
                rows = np.flatnonzero(qcams == qcam)
                if rows.size and cols.size:
                    scores[np.ix_(rows, cols)] = neg_inf
        for r in range(num_rows):
            self._add_row(scores[r], q_start + r)

    def _add_row(self, row: np.ndarray, qi: int) -> None:
        cols = self.g_order[self.grp_start[qi] : self.grp_end[qi]]
        if cols.size == 0:
            self.num_skipped += 1
            return
        qcam = int(self.q_camids[qi]) if self.q_camids is not None else None
        invalid = self.cam_invalid.get(qcam, self.base_invalid)
        keep = ~invalid[cols]
        excl = cols[:0]
        if self.same_cam:
            same = self.g_camids[cols] == qcam
            excl = cols[keep & same]
            keep &= ~same
        pos = cols[keep]
        if pos.size == 0:
            self.num_skipped += 1
            return

        pos_scores = row[pos]
        order = np.argsort(-pos_scores, kind="stable")  # score desc, gallery index asc
        t = pos_scores[order]
        p = pos[order]
        # Positives and same-camera exclusions leave the row: only valid negatives remain
        # above -inf, so counts below are "negatives ranked before each positive".
        row[pos] = -np.inf
        if excl.size:
            row[excl] = -np.inf
        k = t.shape[0]
        tmin = t[-1]

        before = None
        n_ids = 0
        if not self.identity and tmin > -np.inf:
            before = self._fast_counts(row, t, tmin)
        if before is None:
            before, n_ids = self._exact_counts(row, invalid, pos, excl, t, p, tmin)
        ranks = before + np.arange(1, k + 1)
        first = int(n_ids + 1) if self.identity else int(ranks[0])

        self.ap_sum += float(np.mean(np.arange(1, k + 1) / ranks))
        self.inp_sum += k / float(ranks[-1])
        self.num_valid += 1
        self.first_hist[min(first, self.cmc_len + 1) - 1] += 1

    @staticmethod
    def _fast_counts(row: np.ndarray, t: np.ndarray, tmin: Any) -> np.ndarray | None:
        """Negatives strictly above each positive; ``None`` if a negative ties a positive."""
        cand = row[row >= tmin]
        n = cand.shape[0]
        if n == 0:
            return np.zeros(t.shape[0], dtype=np.int64)
        if t.shape[0] <= _COMPARE_MAX_POSITIVES:
            if (cand[None, :] == t[:, None]).any():
                return None
            return np.count_nonzero(cand[None, :] > t[:, None], axis=1).astype(np.int64)
        cand.sort()
        right = np.searchsorted(cand, t, side="right")
        left = np.searchsorted(cand, t, side="left")
        if np.any(left != right):
            return None
        return (n - right).astype(np.int64)

    def _exact_counts(
        self,
        row: np.ndarray,
        invalid: np.ndarray,
        pos: np.ndarray,
        excl: np.ndarray,
        t: np.ndarray,
        p: np.ndarray,
        tmin: Any,
    ) -> tuple[np.ndarray, int]:
        """Tie-aware count of valid negatives ranked before each positive (+ identity count)."""
        valid = ~invalid
        valid[pos] = False
        if excl.size:
            valid[excl] = False
        if tmin > -np.inf:
            valid &= row >= tmin
        ncols = np.flatnonzero(valid)
        nvals = row[ncols]
        k = t.shape[0]
        before = np.empty(k, dtype=np.int64)
        step = max(1, _EXACT_BLOCK_ELEMS // max(1, ncols.shape[0]))
        for s in range(0, k, step):
            tt = t[s : s + step, None]
            pp = p[s : s + step, None]
            ahead = (nvals[None, :] > tt) | ((nvals[None, :] == tt) & (ncols[None, :] < pp))
            before[s : s + step] = np.count_nonzero(ahead, axis=1)
        n_ids = 0
        if self.identity:
            ahead0 = (nvals > t[0]) | ((nvals == t[0]) & (ncols < p[0]))
            n_ids = int(np.unique(self.g_pids[ncols[ahead0]]).shape[0])
        return before, n_ids

    # -- result ------------------------------------------------------------------------

    def result(self) -> RankResult:
        if self.num_valid == 0:
            raise NoValidQueryError(
                f"no valid query: all {self.num_skipped} queries lack a valid match in the "
                "gallery (check pids, junk -1 and camera exclusion)"
            )
        cmc_full = np.cumsum(self.first_hist[: self.cmc_len]) / self.num_valid
        return RankResult(
            cmc=cmc_full[: self.max_rank].copy(),
            rank1=float(cmc_full[0]),
            rank5=float(cmc_full[4]),
            rank10=float(cmc_full[9]),
            mAP=self.ap_sum / self.num_valid,
            mINP=self.inp_sum / self.num_valid,
            num_valid_queries=self.num_valid,
            num_skipped_queries=self.num_skipped,
        )


def _run_blocks(
    block_fn: Callable[[int, int], np.ndarray], num_q: int, chunk: int, acc: _RankAccumulator
) -> RankResult:
    for s in range(0, num_q, chunk):
        e = min(num_q, s + chunk)
        acc.add_block(block_fn(s, e), s)
    return acc.result()


# --------------------------------------------------------------------------- public API


def _accumulator(
    num_q: int,
    num_g: int,
    labels: tuple[Any, Any, Any, Any],
    *,
    max_rank: int,
    chunk_size: int | None,
    cmc_mode: str,
    ignore_camera_pairs: Iterable[tuple[int, int]] | None,
    exclude_same_camera: bool,
) -> _RankAccumulator:
    """Validate (q_pids, g_pids, q_camids, g_camids) and the options; build the accumulator."""
    qp, gp, qc, gc, pairs = _validate_common(
        num_q, num_g, *labels, max_rank, chunk_size, cmc_mode, ignore_camera_pairs
    )
    return _RankAccumulator(
        qp,
        gp,
        qc,
        gc,
        max_rank=max_rank,
        exclude_same_camera=exclude_same_camera,
        ignore_camera_pairs=pairs,
        cmc_mode=cmc_mode,
    )


def rank_metrics(
    query_feats: Any,
    gallery_feats: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any = None,
    g_camids: Any = None,
    *,
    max_rank: int = 50,
    exclude_same_camera: bool = True,
    metric: Metric = "cosine",
    chunk_size: int | None = None,
    cmc_mode: CmcMode = "image",
    ignore_camera_pairs: Iterable[tuple[int, int]] | None = None,
) -> RankResult:
    """CMC / mAP / mINP of ``query_feats`` against ``gallery_feats`` (see module docstring).

    ``metric="cosine"`` ranks by cosine similarity (features are L2-normalised; a normalised
    float32 copy of the gallery is made only if it is not unit-norm already);
    ``"euclidean"`` by ascending squared Euclidean distance. Scores are float32, computed with
    ``torch`` on CPU in blocks of ``chunk_size`` queries (default: ~128 MiB per block), so peak
    extra memory is about ``chunk_size * G * 4`` bytes plus the float32 inputs.
    Ties: equal scores are ordered by ascending gallery index.
    ``ignore_camera_pairs``: ``(query_cam, gallery_cam)`` pairs whose gallery items are ignored.
    Raises :class:`NoValidQueryError` (a ``ValueError``) if every query is skipped.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    qf = _as_features(query_feats, "query_feats")
    gf = _as_features(gallery_feats, "gallery_feats")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"feature dimensions differ: query {qf.shape[1]} vs gallery {gf.shape[1]}")
    num_q, num_g = qf.shape[0], gf.shape[0]
    acc = _accumulator(
        num_q,
        num_g,
        (q_pids, g_pids, q_camids, g_camids),
        max_rank=max_rank,
        chunk_size=chunk_size,
        cmc_mode=cmc_mode,
        ignore_camera_pairs=ignore_camera_pairs,
        exclude_same_camera=exclude_same_camera,
    )
    g_sq = np.einsum("ij,ij->i", gf, gf)
    if metric == "cosine":
        if np.any(g_sq <= 0):
            raise ValueError("gallery_feats has zero-norm rows; cosine similarity is undefined")
        if np.max(np.abs(g_sq - 1.0)) > _NORM_TOL:
            gf = gf / np.sqrt(g_sq)[:, None]
        q_sq = np.einsum("ij,ij->i", qf, qf)
        if np.any(q_sq <= 0):
            raise ValueError("query_feats has zero-norm rows; cosine similarity is undefined")
    import torch  # deferred: importing this package stays light

    chunk = _auto_chunk(num_q, num_g, 4, chunk_size)
    g_t = torch.from_numpy(gf)
    buf = torch.empty((chunk, num_g), dtype=torch.float32)
    neg_g_sq = torch.from_numpy(-g_sq)[None, :]

    def block(s: int, e: int) -> np.ndarray:
        q = qf[s:e]
        out = buf[: e - s]
        if metric == "cosine":
            q_n = q / np.sqrt(np.einsum("ij,ij->i", q, q))[:, None]
            torch.mm(torch.from_numpy(np.ascontiguousarray(q_n)), g_t.t(), out=out)
        else:
            # score = -(|q|^2 + |g|^2 - 2 q.g), i.e. minus the squared distance
            torch.addmm(neg_g_sq, torch.from_numpy(q), g_t.t(), beta=1.0, alpha=2.0, out=out)
            out.sub_(torch.from_numpy(np.einsum("ij,ij->i", q, q))[:, None])
        return out.numpy()

    return _run_blocks(block, num_q, chunk, acc)


def _scores_common(
    matrix: Any,
    name: str,
    sign: float,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    *,
    max_rank: int,
    exclude_same_camera: bool,
    chunk_size: int | None,
    cmc_mode: str,
    ignore_camera_pairs: Iterable[tuple[int, int]] | None,
) -> RankResult:
    mat = matrix if isinstance(matrix, np.ndarray) else np.asarray(matrix)  # memmap is kept
    if len(mat.shape) != 2:
        raise ValueError(f"{name} must be a 2-D (Q, G) array, got shape {tuple(mat.shape)}")
    if mat.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {mat.dtype}")
    num_q, num_g = int(mat.shape[0]), int(mat.shape[1])
    acc = _accumulator(
        num_q,
        num_g,
        (q_pids, g_pids, q_camids, g_camids),
        max_rank=max_rank,
        chunk_size=chunk_size,
        cmc_mode=cmc_mode,
        ignore_camera_pairs=ignore_camera_pairs,
        exclude_same_camera=exclude_same_camera,
    )
    dtype = mat.dtype if mat.dtype.kind == "f" else np.dtype(np.float64)
    chunk = _auto_chunk(num_q, num_g, dtype.itemsize, chunk_size)

    def block(s: int, e: int) -> np.ndarray:
        out = np.array(mat[s:e], dtype=dtype, copy=True)
        if np.isnan(out).any():
            raise ValueError(f"{name} contains NaN (rows {s}..{e - 1})")
        if sign < 0:
            np.negative(out, out=out)
        return out

    return _run_blocks(block, num_q, chunk, acc)


def rank_metrics_from_scores(
    scores: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any = None,
    g_camids: Any = None,
    *,
    max_rank: int = 50,
    exclude_same_camera: bool = True,
    chunk_size: int | None = None,
    cmc_mode: CmcMode = "image",
    ignore_camera_pairs: Iterable[tuple[int, int]] | None = None,
) -> RankResult:
    """Metrics from a ``(Q, G)`` similarity matrix (higher = better; may be a memmap).

    Rows are copied chunk by chunk (input dtype kept, integers become float64). ``NaN`` is
    rejected, ``±inf`` is allowed. Ties: ascending gallery index. Other rules as
    :func:`rank_metrics`.
    """
    return _scores_common(
        scores,
        "scores",
        1.0,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        exclude_same_camera=exclude_same_camera,
        chunk_size=chunk_size,
        cmc_mode=cmc_mode,
        ignore_camera_pairs=ignore_camera_pairs,
    )


def rank_metrics_from_distmat(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any = None,
    g_camids: Any = None,
    *,
    max_rank: int = 50,
    exclude_same_camera: bool = True,
    chunk_size: int | None = None,
    cmc_mode: CmcMode = "image",
    ignore_camera_pairs: Iterable[tuple[int, int]] | None = None,
) -> RankResult:
    """Metrics from a ``(Q, G)`` distance matrix (lower = better), e.g. after re-ranking.

    Equivalent to :func:`rank_metrics_from_scores` on ``-distmat`` (ties: ascending gallery
    index, as a stable ``argsort(distmat)``).
    """
    return _scores_common(
        distmat,
        "distmat",
        -1.0,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        exclude_same_camera=exclude_same_camera,
        chunk_size=chunk_size,
        cmc_mode=cmc_mode,
        ignore_camera_pairs=ignore_camera_pairs,
    )
