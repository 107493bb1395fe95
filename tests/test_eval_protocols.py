"""Tests for aioreid.encoder.eval.protocols and aioreid.encoder.eval.rerank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.eval.metrics import rank_metrics, rank_metrics_from_distmat
from aioreid.encoder.eval.protocols import (
    RegdbSplit,
    evaluate_market,
    evaluate_regdb,
    evaluate_regdb_splits,
    evaluate_sysu,
    evaluate_text_to_image,
    format_table,
    labels_from_records,
    results_to_json,
    sample_gallery,
)
from aioreid.encoder.eval.rerank import k_reciprocal_rerank, rerank_features

DIM = 8


def e(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


GOOD = {i: unit(e(i) + 0.5 * e(7)) for i in range(7)}  # cosine with e(i): 2/sqrt(5) ~ 0.894


# --------------------------------------------------------------------------- Market


def test_evaluate_market_applies_market_rules() -> None:
    q = np.stack([e(1)])
    # g0 junk (-1) identical to the query; g1 same pid+cam identical; g2 distractor (0) 0.894;
    # g3 the valid positive (other camera) at 0.894 but after g2 by index -> rank 2
    g = np.stack([e(1), e(1), GOOD[1], GOOD[1]])
    r = evaluate_market(q, [1], [1], g, [-1, 1, 0, 1], [2, 1, 2, 2])
    assert (r.rank1, r.mAP, r.num_valid_queries) == (0.0, 0.5, 1)


# --------------------------------------------------------------------------- SYSU


def sysu_setup() -> tuple[np.ndarray, ...]:
    """Queries pid 1, 2 in cams 3 and 6 (features e1, e2). Gallery (2 identical images per
    (pid, cam)): pid 1, 2 in cams 1, 2, 4, 5 with 0.894-score features; confuser pid 9 in cam 4
    looks exactly like pid 1; confuser pid 8 in cam 2 looks exactly like pid 2."""
    qf = np.stack([e(1), e(1), e(2), e(2)])
    qp, qc = np.array([1, 1, 2, 2]), np.array([3, 6, 3, 6])
    gf, gp, gc = [], [], []
    for pid in (1, 2):
        for cam in (1, 2, 4, 5):
            for _ in range(2):
                gf.append(GOOD[pid])
                gp.append(pid)
                gc.append(cam)
    for pid, cam, feat in ((9, 4, e(1)), (8, 2, e(2))):
        gf.append(feat)
        gp.append(pid)
        gc.append(cam)
    return qf, qp, qc, np.stack(gf), np.array(gp), np.array(gc)


def test_sysu_perfect_features_give_100() -> None:
    qf, qp, qc, gf, gp, gc = sysu_setup()
    keep = gp <= 2  # drop the confusers
    for mode in ("all", "indoor"):
        r = evaluate_sysu(qf, qp, qc, gf[keep], gp[keep], gc[keep], mode=mode, trials=3)
        assert (r.mean.rank1, r.mean.mAP, r.mean.mINP) == (1.0, 1.0, 1.0)
        assert len(r.trials) == 3
        # single-shot: one image per (identity, camera)
        assert r.gallery_sizes == [2 * (4 if mode == "all" else 2)] * 3


def test_sysu_indoor_excludes_cams_4_5_and_cam3_ignores_cam2() -> None:
    qf, qp, qc, gf, gp, gc = sysu_setup()
    # indoor (cams 1, 2): the cam-4 confuser is out. The cam-2 confuser (looks like pid 2)
    # is ignored by the cam-3 query of pid 2 but beats the positives of its cam-6 query.
    # q(1,3): rank 1, AP 1 | q(1,6): AP 1 | q(2,3): AP 1 | q(2,6): positives at ranks 2, 3
    # -> R1 = 3/4, mAP = (3 + (1/2 + 2/3)/2) / 4, mINP = (3 + 2/3) / 4
    r = evaluate_sysu(qf, qp, qc, gf, gp, gc, mode="indoor", trials=2).mean
    assert r.rank1 == pytest.approx(0.75)
    assert r.mAP == pytest.approx((3 + (1 / 2 + 2 / 3) / 2) / 4)
    assert r.mINP == pytest.approx((3 + 2 / 3) / 4)
    # all-search: the cam-4 confuser (looks like pid 1) now beats both pid-1 queries
    r_all = evaluate_sysu(qf, qp, qc, gf, gp, gc, mode="all", trials=2).mean
    assert r_all.rank1 == pytest.approx(0.25)


def test_sysu_drops_non_ir_queries_and_checks_inputs() -> None:
    qf, qp, qc, gf, gp, gc = sysu_setup()
    qc2 = qc.copy()
    qc2[0] = 1  # an RGB-camera item passed as query is not a SYSU query
    r = evaluate_sysu(qf, qp, qc2, gf, gp, gc, mode="indoor", trials=1)
    assert r.num_queries == 3
    with pytest.raises(ValueError, match="cameras 3 or 6"):
        evaluate_sysu(qf, qp, np.ones(4, int), gf, gp, gc)
    with pytest.raises(ValueError, match="mode"):
        evaluate_sysu(qf, qp, qc, gf, gp, gc, mode="outdoor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty SYSU-MM01 gallery"):
        evaluate_sysu(qf, qp, qc, gf, gp, np.full(gc.shape, 4), mode="indoor")


def random_gallery_setup() -> tuple[np.ndarray, ...]:
    """Query pid 1 (cam 3, feature e1). Gallery cam 1: pid 1 has a good image (e1, score 1)
    and a bad one (e3, score 0); pid 2 has one image at score 0.707. Single-shot picks the good
    image (AP 1) or the bad one (positive at rank 2: AP 1/2) at random."""
    qf = np.stack([e(1)])
    gf = np.stack([e(1), e(3), unit(e(1) + e(2))])
    return qf, np.array([1]), np.array([3]), gf, np.array([1, 1, 2]), np.array([1, 1, 1])


def test_sysu_trials_average_and_seed_determinism() -> None:
    args = random_gallery_setup()
    r = evaluate_sysu(*args, mode="indoor", trials=20, seed=5)
    per_trial = [t.mAP for t in r.trials]
    assert set(per_trial) == {0.5, 1.0}  # both draws occur over 20 trials
    assert r.mean.mAP == pytest.approx(np.mean(per_trial))
    assert r.mean.rank1 == pytest.approx(np.mean([t.rank1 for t in r.trials]))
    assert r.mean.num_valid_queries == 20  # summed over trials
    again = evaluate_sysu(*args, mode="indoor", trials=20, seed=5)
    assert [t.mAP for t in again.trials] == per_trial
    other = evaluate_sysu(*args, mode="indoor", trials=20, seed=6)
    assert [t.mAP for t in other.trials] != per_trial
    # trial t does not depend on how many trials are run
    first5 = evaluate_sysu(*args, mode="indoor", trials=5, seed=5)
    assert [t.mAP for t in first5.trials] == per_trial[:5]


def test_sysu_identity_cmc_default() -> None:
    # query pid 1 cam 6; gallery one image per (pid, cam): pid 2 cams 1 and 4 look exactly
    # like the query, pid 1 cam 5 scores 0.894 -> image rank 3, identity rank 2
    qf = np.stack([e(1)])
    gf = np.stack([e(1), e(1), GOOD[1]])
    args = (qf, [1], [6], gf, [2, 2, 1], [1, 4, 5])
    ident = evaluate_sysu(*args, trials=1, max_rank=3).mean
    image = evaluate_sysu(*args, trials=1, max_rank=3, cmc_mode="image").mean
    np.testing.assert_allclose(ident.cmc, [0, 1, 1])
    np.testing.assert_allclose(image.cmc, [0, 0, 1])
    assert ident.mAP == image.mAP == pytest.approx(1 / 3)


def test_sample_gallery_one_per_identity_camera() -> None:
    pids = np.array([1, 1, 1, 2, 2, 1, 3])
    cams = np.array([1, 1, 2, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    pick = sample_gallery(pids, cams, rng)
    groups = sorted(zip(pids[pick].tolist(), cams[pick].tolist(), strict=True))
    assert groups == [(1, 1), (1, 2), (2, 1), (3, 1)]
    pick2 = sample_gallery(pids, cams, rng, num_shots=2)
    # (1,1) has 3 images -> 2 picked; (2,1) has 2 -> both; singletons -> 1
    assert len(pick2) == 2 + 1 + 2 + 1 and len(set(pick2.tolist())) == len(pick2)
    assert np.all(np.diff(pick2) > 0)


# --------------------------------------------------------------------------- RegDB


def regdb_split() -> RegdbSplit:
    # visible A(pid 1)=e1, B(pid 2)=e2 ; thermal C(pid 1)=e1, D(pid 2)=unit(e1 + 0.5 e2)
    # V->T: A: C 1.0 > D 0.894 ok ; B: D 0.447 > C 0 ok -> R1 1, mAP 1
    # T->V: C: A 1.0 ok ; D: A 0.894 > B 0.447 -> positive at rank 2 -> R1 1/2, mAP 3/4
    vis = np.stack([e(1), e(2)])
    th = np.stack([e(1), unit(e(1) + 0.5 * e(2))])
    return RegdbSplit(vis, np.array([1, 2]), th, np.array([1, 2]))


def test_regdb_both_directions() -> None:
    r = evaluate_regdb(*regdb_split())
    assert (r.visible_to_thermal.rank1, r.visible_to_thermal.mAP) == (1.0, 1.0)
    assert (r.thermal_to_visible.rank1, r.thermal_to_visible.mAP) == (0.5, 0.75)
    d = r.as_dict()
    assert d["thermal_to_visible"]["mAP"] == 75.0


def test_regdb_splits_list_and_callable() -> None:
    good = regdb_split()
    swapped = RegdbSplit(
        good.thermal_feats, good.thermal_pids, good.visible_feats, good.visible_pids
    )  # directions swap: V->T 1/2, T->V 1
    r = evaluate_regdb_splits([good, swapped])
    assert r.visible_to_thermal.rank1 == pytest.approx(0.75)
    assert r.thermal_to_visible.rank1 == pytest.approx(0.75)
    assert r.visible_to_thermal.mAP == pytest.approx((1.0 + 0.75) / 2)
    assert len(r.per_split) == 2
    calls: list[int] = []

    def load(k: int) -> RegdbSplit:
        calls.append(k)
        return good if k % 2 else swapped

    rc = evaluate_regdb_splits(load, num_splits=3)
    assert calls == [1, 2, 3]
    assert rc.visible_to_thermal.rank1 == pytest.approx((1 + 0.5 + 1) / 3)
    with pytest.raises(ValueError, match="no RegDB split"):
        evaluate_regdb_splits([])


# --------------------------------------------------------------------------- text -> image


def test_text_to_image() -> None:
    # captions: t0 (pid 1) = e1, t1 (pid 1) = e2, t2 (pid 2) = e2
    # images: I0 (pid 1) = e1, I1 (pid 2) = unit(e1 + e2), I2 (pid 2) = e2
    # t0: I0 1.0 (+) -> AP 1 | t1: I2 1.0, I1 0.707, I0 0 (+) -> rank 3: AP 1/3, INP 1/3
    # t2: I2 (+), I1 (+) -> AP 1 ; mAP = mINP = (1 + 1/3 + 1)/3 = 7/9, R1 = 2/3
    text = np.stack([e(1), e(2), e(2)]) * 3.0  # cosine: scale does not matter
    img = np.stack([e(1), unit(e(1) + e(2)), e(2)])
    r = evaluate_text_to_image(text, [1, 1, 2], img, [1, 2, 2])
    assert r.mAP == pytest.approx(7 / 9)
    assert r.mINP == pytest.approx(7 / 9)
    assert r.rank1 == pytest.approx(2 / 3)
    assert r.num_valid_queries == 3


# --------------------------------------------------------------------------- reporting


def test_format_table_and_json(tmp_path: Path) -> None:
    a = rank_metrics_from_distmat(np.array([[0.1, 0.2, 0.3]]), [1], [1, 2, 1])  # AP 5/6
    rows = {"Market-1501": a, "custom": {"R1": 12.345, "mAP": 50}}
    table = format_table(rows, name_header="dataset")
    lines = table.splitlines()
    assert lines[0].split() == ["dataset", "R1", "R5", "R10", "mAP", "mINP"]
    assert len({len(line) for line in lines}) == 1  # fixed width
    assert lines[2].split() == ["Market-1501", "100.0", "100.0", "100.0", "83.3", "66.7"]
    assert lines[3].split() == ["custom", "12.3", "-", "-", "50.0", "-"]
    out = tmp_path / "res" / "eval.json"
    text = results_to_json({"market": a}, out)
    data = json.loads(out.read_text())
    assert data == json.loads(text)
    assert data["market"]["mAP"] == pytest.approx(500 / 6)
    assert data["market"]["cmc"][:2] == [100.0, 100.0]
    sysu = evaluate_sysu(*random_gallery_setup(), mode="indoor", trials=2)
    assert "mode" in json.loads(results_to_json(sysu)) and "R1" in format_table({"s": sysu})
    with pytest.raises(TypeError):
        format_table({"x": 3})


def test_labels_from_records() -> None:
    recs = [
        Record(Path(f"{i}.jpg"), pid, cam, Modality.RGB)
        for i, (pid, cam) in enumerate([(1, 2), (-1, 3), (0, 1)])
    ]
    pids, cams = labels_from_records(recs)
    assert pids.tolist() == [1, -1, 0] and cams.tolist() == [2, 3, 1]
    assert pids.dtype == np.int64


# --------------------------------------------------------------------------- re-ranking


def clustered(seed: int = 0, noise: float = 0.8) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, 32))
    gp, qp = np.repeat(np.arange(20), 8), np.repeat(np.arange(20), 2)
    gf = centres[gp] + noise * rng.standard_normal((gp.size, 32))
    qf = centres[qp] + noise * rng.standard_normal((qp.size, 32))
    return qf, gf, qp, gp


def test_rerank_valid_and_not_worse() -> None:
    qf, gf, qp, gp = clustered()
    d = rerank_features(qf, gf)
    assert d.shape == (qf.shape[0], gf.shape[0]) and d.dtype == np.float32
    assert np.all(np.isfinite(d)) and np.all(d >= 0)
    before = rank_metrics(qf, gf, qp, gp, metric="euclidean")
    after = rank_metrics_from_distmat(d, qp, gp)
    assert after.mAP >= before.mAP
    assert after.rank1 >= before.rank1


def test_rerank_lambda_limits_and_errors() -> None:
    qf, gf, _, _ = clustered(1)
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    qg, qq, gg = 2 - 2 * qn @ gn.T, 2 - 2 * qn @ qn.T, 2 - 2 * gn @ gn.T
    # lambda = 1: only the original distance remains
    np.testing.assert_allclose(k_reciprocal_rerank(qg, qq, gg, lambda_value=1.0), qg, atol=1e-6)
    # lambda = 0: pure Jaccard distance, in [0, 1]
    jac = k_reciprocal_rerank(qg, qq, gg, lambda_value=0.0)
    assert jac.min() >= 0.0 and jac.max() <= 1.0 + 1e-6
    assert np.any(jac < 1.0) and np.any(jac == 1.0)  # sparse overlap: far pairs share nothing
    with pytest.raises(ValueError, match="max_items=100"):
        rerank_features(qf, gf, max_items=100)  # 40 + 160 items
    with pytest.raises(ValueError, match="max_items"):
        k_reciprocal_rerank(qg, qq, gg, max_items=199)
    with pytest.raises(ValueError, match="q_q_dist must have shape"):
        k_reciprocal_rerank(qg, gg, gg)
    with pytest.raises(ValueError, match="lambda_value"):
        k_reciprocal_rerank(qg, qq, gg, lambda_value=1.5)
    with pytest.raises(ValueError, match="NaN"):
        k_reciprocal_rerank(np.full_like(qg, np.nan), qq, gg)
