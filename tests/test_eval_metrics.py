"""Tests for aioreid.encoder.eval.metrics: hand-computed cases, rules, ties, chunking."""

from __future__ import annotations

import numpy as np
import pytest

from aioreid.encoder.eval.metrics import (
    NoValidQueryError,
    RankResult,
    average_results,
    rank_metrics,
    rank_metrics_from_distmat,
    rank_metrics_from_scores,
)


def scores1(*values: float) -> np.ndarray:
    """One query's score row as a (1, G) matrix."""
    return np.array([values], dtype=np.float64)


# --------------------------------------------------------------------------- hand-computed


def test_ap_minp_cmc_positives_at_ranks_1_and_3() -> None:
    # ranking by score: g0(pid1, +) g1(pid2, -) g2(pid1, +) g3(pid3, -) g4(pid4, -)
    # positives at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2 ; mINP = 2 / 3 ; CMC all ones
    r = rank_metrics_from_scores(
        scores1(0.9, 0.8, 0.7, 0.6, 0.5), [1], [1, 2, 1, 3, 4], [1], [2, 2, 2, 2, 2], max_rank=5
    )
    assert r.mAP == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert r.mINP == pytest.approx(2 / 3)
    np.testing.assert_allclose(r.cmc, [1, 1, 1, 1, 1])
    assert (r.rank1, r.rank5, r.rank10) == (1.0, 1.0, 1.0)
    assert (r.num_valid_queries, r.num_skipped_queries) == (1, 0)


def test_two_queries_cmc_and_means() -> None:
    # q0 (pid 1): ranking g0(1,+) g1(2) g2(1,+) g3(3)  -> ranks 1,3: AP=(1+2/3)/2, INP=2/3
    # q1 (pid 2): ranking g0(1) g1(2,+) g2(1) g3(3)    -> rank 2:    AP=1/2,       INP=1/2
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]])
    r = rank_metrics_from_scores(scores, [1, 2], [1, 2, 1, 3], max_rank=4)
    # CMC: rank1 -> only q0 (1/2); rank >= 2 -> both (1)
    np.testing.assert_allclose(r.cmc, [0.5, 1.0, 1.0, 1.0])
    assert r.mAP == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)
    assert r.mINP == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_same_pid_same_camera_exclusion() -> None:
    # gallery: g0 pid1 cam1 (same pid & cam as query -> excluded), g1 pid2 cam1 (same cam,
    # other pid -> stays), g2 pid1 cam2 (+), g3 pid3 cam2
    scores = scores1(0.9, 0.8, 0.7, 0.6)
    pids, cams = [1, 2, 1, 3], [1, 1, 2, 2]
    r = rank_metrics_from_scores(scores, [1], pids, [1], cams)
    # after exclusion: g1(-) g2(+) g3(-): positive at rank 2 -> AP 1/2, R1 0, mINP 1/2
    assert (r.mAP, r.rank1, r.mINP) == (pytest.approx(0.5), 0.0, pytest.approx(0.5))
    assert r.cmc[1] == 1.0
    # without the rule: g0(+) g1(-) g2(+) -> ranks 1, 3 -> AP (1 + 2/3)/2, mINP 2/3, R1 1
    r2 = rank_metrics_from_scores(scores, [1], pids, [1], cams, exclude_same_camera=False)
    assert (r2.mAP, r2.rank1, r2.mINP) == (pytest.approx(5 / 6), 1.0, pytest.approx(2 / 3))
    # without camera ids nothing can be excluded either
    r3 = rank_metrics_from_scores(scores, [1], pids)
    assert r3.mAP == pytest.approx(5 / 6)


def test_junk_excluded_and_distractor_counted() -> None:
    # junk g0 (pid -1) is removed: the positive is at rank 1 -> AP 1
    r = rank_metrics_from_scores(scores1(0.9, 0.8), [1], [-1, 1])
    assert (r.mAP, r.rank1, r.mINP) == (1.0, 1.0, 1.0)
    # distractor g0 (pid 0) stays as a negative: the positive is at rank 2 -> AP 1/2
    r = rank_metrics_from_scores(scores1(0.9, 0.8), [1], [0, 1])
    assert (r.mAP, r.rank1, r.mINP) == (0.5, 0.0, 0.5)


def test_ties_are_broken_by_gallery_index() -> None:
    # equal scores: the lower gallery index ranks first (stable argsort of -scores)
    # negative first (g0 pid2, g1 pid1): positive at rank 2 -> AP 1/2, R1 0
    r = rank_metrics_from_scores(scores1(0.5, 0.5), [1], [2, 1])
    assert (r.mAP, r.rank1) == (0.5, 0.0)
    # positive first (g0 pid1, g1 pid2): positive at rank 1 -> AP 1, R1 1
    r = rank_metrics_from_scores(scores1(0.5, 0.5), [1], [1, 2])
    assert (r.mAP, r.rank1) == (1.0, 1.0)
    # the same policy for distances (stable argsort of distmat)
    r = rank_metrics_from_distmat(np.array([[0.3, 0.3]]), [1], [2, 1])
    assert (r.mAP, r.rank1) == (0.5, 0.0)
    # and for features: identical gallery vectors give identical scores
    g = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    assert rank_metrics(q, g, [1], [2, 1, 3]).mAP == 0.5
    assert rank_metrics(q, g, [1], [1, 2, 3]).mAP == 1.0


def test_tie_among_several_items_ordered_by_index() -> None:
    # scores g0..g4 = 0.2 0.5 0.5 0.5 0.9 ; pids 1 3 1 2 4 ; query pid 1
    # order: g4(0.9,-) g1(0.5,-) g2(0.5,+) g3(0.5,-) g0(0.2,+) -> positives at ranks 3 and 5
    # AP = (1/3 + 2/5) / 2 ; mINP = 2/5 ; first positive at rank 3
    r = rank_metrics_from_scores(scores1(0.2, 0.5, 0.5, 0.5, 0.9), [1], [1, 3, 1, 2, 4])
    assert r.mAP == pytest.approx((1 / 3 + 2 / 5) / 2)
    assert r.mINP == pytest.approx(2 / 5)
    np.testing.assert_allclose(r.cmc[:4], [0, 0, 1, 1])


def test_float64_scores_are_not_downcast() -> None:
    # a 1e-12 difference decides the order; float32 would turn it into a tie (negative first)
    r = rank_metrics_from_scores(scores1(0.5, 0.5 + 1e-12), [1], [2, 1])
    assert r.rank1 == 1.0


def test_skipped_queries_are_counted() -> None:
    scores = np.array([[0.9, 0.8], [0.9, 0.8], [0.9, 0.8], [0.9, 0.8]])
    # q0 pid1: positive g1 at rank 2 (valid); q1 pid7: not in gallery; q2 pid -1: junk query;
    # q3 pid1 cam2: its only match g1 is pid1 cam2 -> excluded by the same-camera rule
    r = rank_metrics_from_scores(scores, [1, 7, -1, 1], [2, 1], [1, 1, 1, 2], [1, 2])
    assert (r.num_valid_queries, r.num_skipped_queries) == (1, 3)
    assert (r.mAP, r.rank1) == (0.5, 0.0)  # = q0 alone


def test_all_queries_skipped_raises() -> None:
    with pytest.raises(NoValidQueryError, match="no valid query"):
        rank_metrics_from_scores(scores1(0.9, 0.8), [5], [1, 2])
    assert issubclass(NoValidQueryError, ValueError)


def test_max_rank_shorter_than_ten() -> None:
    # first positive at rank 4: cmc (3 entries) all 0, rank5 and rank10 still 1
    r = rank_metrics_from_scores(scores1(0.9, 0.8, 0.7, 0.6), [1], [2, 3, 4, 1], max_rank=3)
    assert r.cmc.shape == (3,)
    np.testing.assert_allclose(r.cmc, [0, 0, 0])
    assert (r.rank1, r.rank5, r.rank10) == (0.0, 1.0, 1.0)


def test_identity_cmc_mode_counts_distinct_identities() -> None:
    # order: g0 pid2, g1 pid2, g2 pid3, g3 pid1(+): image rank 4, identity rank 3
    s = scores1(0.9, 0.8, 0.7, 0.6)
    img = rank_metrics_from_scores(s, [1], [2, 2, 3, 1], max_rank=5)
    ids = rank_metrics_from_scores(s, [1], [2, 2, 3, 1], max_rank=5, cmc_mode="identity")
    np.testing.assert_allclose(img.cmc, [0, 0, 0, 1, 1])
    np.testing.assert_allclose(ids.cmc, [0, 0, 1, 1, 1])
    assert img.mAP == ids.mAP == 0.25  # AP and mINP stay image-based


def test_ignore_camera_pairs() -> None:
    # queries cam 3 ignore gallery cam 2: the pid-2 item in cam 2 no longer outranks the match
    s = np.array([[0.9, 0.8], [0.9, 0.8]])
    r = rank_metrics_from_scores(
        s, [1, 1], [2, 1], [3, 6], [2, 1], exclude_same_camera=False, ignore_camera_pairs=[(3, 2)]
    )
    # q0 (cam 3): rank 1 ; q1 (cam 6): rank 2
    np.testing.assert_allclose(r.cmc[:2], [0.5, 1.0])
    assert r.mAP == pytest.approx((1 + 0.5) / 2)


def test_as_dict_percent_and_average() -> None:
    a = rank_metrics_from_scores(scores1(0.9, 0.8), [1], [1, 2])  # AP 1
    b = rank_metrics_from_scores(scores1(0.9, 0.8), [1], [2, 1])  # AP 1/2
    d = b.as_dict(include_cmc=True)
    assert d["R1"] == 0.0 and d["mAP"] == 50.0 and d["mINP"] == 50.0 and d["R5"] == 100.0
    assert d["cmc"][:2] == [0.0, 100.0]
    m = average_results([a, b])
    assert isinstance(m, RankResult)
    assert (m.mAP, m.rank1, m.num_valid_queries) == (0.75, 0.5, 2)


def test_cosine_is_scale_invariant_and_euclidean_matches_distmat() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((6, 8)).astype(np.float32)
    g = rng.standard_normal((30, 8)).astype(np.float32)
    qp, gp = rng.integers(0, 4, 6), rng.integers(0, 4, 30)
    base = rank_metrics(q, g, qp, gp)
    scaled = rank_metrics(q * 3.0, g * rng.uniform(0.5, 4, (30, 1)).astype(np.float32), qp, gp)
    assert scaled.mAP == pytest.approx(base.mAP, abs=1e-12)
    np.testing.assert_allclose(scaled.cmc, base.cmc)
    eu = rank_metrics(q, g, qp, gp, metric="euclidean")
    dist = ((q[:, None, :].astype(np.float64) - g[None, :, :]) ** 2).sum(-1)
    ref = rank_metrics_from_distmat(dist, qp, gp)
    assert eu.mAP == pytest.approx(ref.mAP) and eu.mINP == pytest.approx(ref.mINP)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gallery_feats": np.ones((3, 5))}, "feature dimensions differ"),
        ({"q_pids": [1, 2, 3]}, "q_pids has 3 entries"),
        ({"g_pids": [1]}, "g_pids has 1 entries"),
        ({"gallery_feats": np.ones((0, 4)), "g_pids": []}, "gallery_feats is empty"),
        ({"query_feats": np.array([[np.nan, 1, 1, 1], [1, 1, 1, 1]])}, "NaN or infinite"),
        ({"gallery_feats": np.array([[np.inf, 1, 1, 1]] * 3)}, "NaN or infinite"),
        ({"q_camids": [1, 1]}, "both q_camids and g_camids"),
        ({"metric": "manhattan"}, "metric must be"),
        ({"max_rank": 0}, "max_rank"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"query_feats": np.ones(4)}, "2-D"),
        ({"q_pids": ["a", "b"]}, "integers"),
        ({"gallery_feats": np.zeros((3, 4))}, "zero-norm"),
        ({"cmc_mode": "foo"}, "cmc_mode"),
    ],
)
def test_rank_metrics_validation(kwargs: dict, message: str) -> None:
    args = {
        "query_feats": np.ones((2, 4)),
        "gallery_feats": np.ones((3, 4)),
        "q_pids": [1, 2],
        "g_pids": [1, 2, 3],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        rank_metrics(**args)


def test_scores_validation() -> None:
    with pytest.raises(ValueError, match="NaN"):
        rank_metrics_from_scores(np.array([[np.nan, 1.0]]), [1], [1, 2])
    with pytest.raises(ValueError, match="2-D"):
        rank_metrics_from_scores(np.array([1.0, 2.0]), [1], [1, 2])
    with pytest.raises(ValueError, match="gallery is empty"):
        rank_metrics_from_scores(np.zeros((1, 0)), [1], [])
    with pytest.raises(ValueError, match="ignore_camera_pairs needs"):
        rank_metrics_from_scores(scores1(1.0, 0.0), [1], [1, 2], ignore_camera_pairs=[(3, 2)])


# --------------------------------------------------------------------------- reference check


def naive_reference(
    scores: np.ndarray,
    qp: np.ndarray,
    gp: np.ndarray,
    qc: np.ndarray | None,
    gc: np.ndarray | None,
    *,
    max_rank: int,
    same_cam: bool = True,
    ignore_pairs: tuple[tuple[int, int], ...] = (),
    identity: bool = False,
) -> tuple[np.ndarray, float, float, int, int]:
    """torchreid-style evaluation: full stable argsort per query, then masks."""
    cmcs, aps, inps, skipped = [], [], [], 0
    for i in range(scores.shape[0]):
        order = np.argsort(-scores[i], kind="stable")
        keep = gp[order] != -1
        if qc is not None and same_cam:
            keep &= ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        for a, b in ignore_pairs:
            if qc[i] == a:
                keep &= gc[order] != b
        ranked = order[keep]
        match = (gp[ranked] == qp[i]) & (qp[i] != -1)
        if not match.any():
            skipped += 1
            continue
        positions = np.flatnonzero(match) + 1
        if identity:
            labels = gp[ranked]
            _, first_idx = np.unique(labels, return_index=True)
            first = int(np.argmax(labels[np.sort(first_idx)] == qp[i])) + 1
        else:
            first = int(positions[0])
        cmc = np.zeros(max_rank)
        cmc[first - 1 :] = 1
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, positions.size + 1) / positions))
        inps.append(positions.size / positions[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps), skipped


def assert_matches(r: RankResult, ref: tuple) -> None:
    cmc, m_ap, m_inp, n_valid, n_skip = ref
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
    assert r.mAP == pytest.approx(m_ap, abs=1e-12)
    assert r.mINP == pytest.approx(m_inp, abs=1e-12)
    assert (r.num_valid_queries, r.num_skipped_queries) == (n_valid, n_skip)


@pytest.mark.parametrize("seed", range(4))
def test_chunking_invariance_and_reference_with_many_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nq, ng, dim = 37, 150, 3
    num_ids = 4 if seed % 2 else 12  # few ids -> > 16 positives per query (sort path)
    # small integer features: float32 scores are exact integers, with many ties
    qf = rng.integers(-2, 3, (nq, dim)).astype(np.float32)
    gf = rng.integers(-2, 3, (ng, dim)).astype(np.float32)
    qp = rng.integers(-1, num_ids + 2, nq)
    gp = rng.integers(-1, num_ids, ng)
    qc, gc = rng.integers(1, 4, nq), rng.integers(1, 4, ng)
    d = qf.astype(np.float64)[:, None, :] - gf.astype(np.float64)[None, :, :]
    ref_scores = -(d**2).sum(-1)  # rank_metrics "euclidean" = minus squared distance
    ref = naive_reference(ref_scores, qp, gp, qc, gc, max_rank=20)
    results = [
        rank_metrics(qf, gf, qp, gp, qc, gc, metric="euclidean", max_rank=20, chunk_size=c)
        for c in (1, 7, None)
    ]
    for r in results:
        assert_matches(r, ref)
    # identical across chunk sizes, not just close
    for r in results[1:]:
        assert r.mAP == results[0].mAP and r.mINP == results[0].mINP
        np.testing.assert_array_equal(r.cmc, results[0].cmc)


@pytest.mark.parametrize("seed", range(3))
def test_scores_path_matches_reference_all_options(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    nq, ng = 25, 90
    scores = rng.integers(0, 6, (nq, ng)).astype(np.float64)  # heavy ties
    scores[rng.random((nq, ng)) < 0.05] = -np.inf
    scores[rng.random((nq, ng)) < 0.02] = np.inf
    qp, gp = rng.integers(-1, 8, nq), rng.integers(-1, 6, ng)
    qc, gc = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
    for same_cam in (True, False):
        for pairs in ((), ((3, 2), (1, 5))):
            for identity in (False, True):
                ref = naive_reference(
                    scores,
                    qp,
                    gp,
                    qc,
                    gc,
                    max_rank=15,
                    same_cam=same_cam,
                    ignore_pairs=pairs,
                    identity=identity,
                )
                for chunk in (1, 4, None):
                    r = rank_metrics_from_scores(
                        scores,
                        qp,
                        gp,
                        qc,
                        gc,
                        max_rank=15,
                        exclude_same_camera=same_cam,
                        chunk_size=chunk,
                        ignore_camera_pairs=pairs,
                        cmc_mode="identity" if identity else "image",
                    )
                    assert_matches(r, ref)
    # distmat path = scores path on the negated matrix
    r1 = rank_metrics_from_distmat(-scores, qp, gp, qc, gc, chunk_size=3)
    r2 = rank_metrics_from_scores(scores, qp, gp, qc, gc)
    assert r1.mAP == r2.mAP and r1.mINP == r2.mINP


def test_float_features_match_reference_on_clustered_data() -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((20, 16))
    gp = rng.integers(0, 20, 400)
    qp = rng.integers(0, 20, 60)
    gf = (centres[gp] + 0.9 * rng.standard_normal((400, 16))).astype(np.float32)
    qf = (centres[qp] + 0.9 * rng.standard_normal((60, 16))).astype(np.float32)
    gf /= np.linalg.norm(gf, axis=1, keepdims=True)
    qf /= np.linalg.norm(qf, axis=1, keepdims=True)
    qc, gc = rng.integers(1, 5, 60), rng.integers(1, 5, 400)
    r = rank_metrics(qf, gf, qp, gp, qc, gc, chunk_size=9)
    scores = qf.astype(np.float64) @ gf.T.astype(np.float64)
    ref = naive_reference(scores, qp, gp, qc, gc, max_rank=50)
    # float32 vs float64 scores: compare metrics loosely (near-ties may flip)
    assert r.mAP == pytest.approx(ref[1], abs=1e-3)
    assert 0.0 < r.mAP < 1.0 and r.num_valid_queries == ref[3]
