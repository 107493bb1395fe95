"""Vector index backends ("local" qdrant-client, "edge" Qdrant Edge) against numpy brute force."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from aioreid.platform.config import IndexSettings, Settings
from aioreid.platform.index import (
    CollectionNotFound,
    DimensionMismatch,
    IndexClosed,
    IndexLocked,
    IndexPoint,
    PointNotFound,
    SearchFilter,
    VectorIndex,
    build_index,
    collection_name,
    point_id,
)
from aioreid.platform.index.edge_index import EdgeIndex
from aioreid.platform.index.qdrant_client_index import QdrantClientIndex

BACKENDS = ["local", "edge"]
DIM = 32
N = 1500
MODALITIES = ["rgb", "ir", "sketch", "text"]
COLOURS = ["red", "blue", "black"]
#: None: a point written before the payload carried a review state (it counts as unreviewed).
REVIEWS = [None, "confirmed", "rejected", "unreviewed", "unreviewed"]


def open_index(backend: str, folder: Path, persistent: bool = False, **kw: object) -> VectorIndex:
    """Local mode lives in memory unless persistence is under test: on disk it commits every
    point to SQLite separately (~15 ms each here)."""
    if backend == "local":
        return QdrantClientIndex.local(folder / "local" if persistent else None)
    return EdgeIndex(folder / "edge", **kw)  # type: ignore[arg-type]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n: int = N, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Clustered unit vectors (40 identity centres + noise) and sighting payloads."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    labels = rng.integers(0, 40, n)
    vecs = unit(centres[labels] + 0.7 * rng.standard_normal((n, DIM)))
    payloads = [
        {
            "camera": i % 8,
            "time": 1_000.0 + i,
            "modality": MODALITIES[i % 4],
            "media": i // 10,
            "sighting": i,
            "identity": None if i % 5 == 0 else int(labels[i]),
            "attributes": {"upper": COLOURS[i % 3], "bag": "yes" if i % 2 else "no"},
        }
        | ({"review": REVIEWS[i % 5]} if REVIEWS[i % 5] else {})
        for i in range(n)
    ]
    return vecs, payloads


VECS, PAYLOADS = make_data()
IDS = [point_id("sighting", i) for i in range(N)]
POINTS = [IndexPoint(IDS[i], VECS[i], PAYLOADS[i]) for i in range(N)]
QUERIES = unit(VECS[:: N // 12][:12] + 0.3 * np.random.default_rng(1).standard_normal((12, DIM)))


def brute(query: np.ndarray, mask: np.ndarray, k: int) -> list[str]:
    scores = VECS @ unit(query)
    scores[~mask] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [IDS[i] for i in order if mask[i]]


def fill(index: VectorIndex, name: str = "c1", points: list[IndexPoint] = POINTS) -> str:
    index.create_collection(name, DIM)
    index.upsert(name, points)
    return name


@pytest.fixture(scope="module", params=BACKENDS)
def full(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A read-only index holding all N points in collection "c1" behind alias "live"."""
    index = open_index(request.param, tmp_path_factory.mktemp(request.param))
    fill(index)
    index.set_alias("live", "c1")
    yield index
    index.close()


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., VectorIndex]]:
    """Factory of empty indexes in tmp_path (reopenable: same folder every call)."""
    opened: list[VectorIndex] = []

    def make(**kw: object) -> VectorIndex:
        opened.append(open_index(request.param, tmp_path, **kw))
        return opened[-1]

    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for index in opened:
        index.close()


# -- search ------------------------------------------------------------------------------------
def test_search_returns_exact_neighbours_in_order(full: VectorIndex) -> None:
    everything = np.ones(N, bool)
    for q in QUERIES:
        hits = full.search("live", q, limit=10)
        assert [h.id for h in hits] == brute(q, everything, 10)
        expected = np.sort(VECS @ unit(q))[::-1][:10]
        np.testing.assert_allclose([h.score for h in hits], expected, atol=1e-4)
        assert hits[0].payload == PAYLOADS[IDS.index(hits[0].id)]


def test_search_batch_matches_single_searches(full: VectorIndex) -> None:
    batch = full.search_batch("c1", QUERIES, limit=5)
    assert [[h.id for h in hits] for hits in batch] == [
        [h.id for h in full.search("c1", q, limit=5)] for q in QUERIES
    ]


CAM = np.array([p["camera"] for p in PAYLOADS])
TIME = np.array([p["time"] for p in PAYLOADS])
MOD = np.array([p["modality"] for p in PAYLOADS])
MEDIA = np.array([p["media"] for p in PAYLOADS])
IDENT = np.array([-1 if p["identity"] is None else p["identity"] for p in PAYLOADS])
SIGHT = np.arange(N)
UPPER = np.array([p["attributes"]["upper"] for p in PAYLOADS])
BAG = np.array([p["attributes"]["bag"] for p in PAYLOADS])
REVIEW = np.array([p.get("review", "unreviewed") for p in PAYLOADS])

FILTER_CASES = {
    "cameras": (SearchFilter(cameras=[1, 6]), np.isin(CAM, [1, 6])),
    "time_from": (SearchFilter(time_from=2_100.0), TIME >= 2_100),
    "time_to": (SearchFilter(time_to=1_200.5), TIME <= 1_200.5),
    "time_range": (SearchFilter(time_from=1_300, time_to=1_700), (TIME >= 1300) & (TIME <= 1700)),
    "modalities": (SearchFilter(modalities=["ir", "text"]), np.isin(MOD, ["ir", "text"])),
    "identity_ids": (SearchFilter(identity_ids=[3, 17]), np.isin(IDENT, [3, 17])),
    "media_ids": (SearchFilter(media_ids=[0, 7, 99]), np.isin(MEDIA, [0, 7, 99])),
    "sighting_ids": (SearchFilter(sighting_ids=[5, 50, 500]), np.isin(SIGHT, [5, 50, 500])),
    "exclude": (
        SearchFilter(exclude_sighting_ids=list(range(0, N, 3))),
        ~np.isin(SIGHT, range(0, N, 3)),
    ),
    "attributes": (
        SearchFilter(attributes={"upper": "red", "bag": "yes"}),
        (UPPER == "red") & (BAG == "yes"),
    ),
    "combined": (
        SearchFilter(
            cameras=[0, 2, 4], time_from=1_100, modalities=["rgb"], attributes={"bag": "no"}
        ),
        np.isin(CAM, [0, 2, 4]) & (TIME >= 1100) & (MOD == "rgb") & (BAG == "no"),
    ),
    "review_confirmed": (SearchFilter(review="confirmed"), REVIEW == "confirmed"),
    "review_rejected": (SearchFilter(review="rejected"), REVIEW == "rejected"),
    "review_unreviewed_or_missing": (SearchFilter(review="unreviewed"), REVIEW == "unreviewed"),
    "review_and_camera": (
        SearchFilter(review="unreviewed", cameras=[1, 3]),
        (REVIEW == "unreviewed") & np.isin(CAM, [1, 3]),
    ),
    "empty_list_matches_nothing": (SearchFilter(cameras=[]), np.zeros(N, bool)),
    "reversed_time_matches_nothing": (SearchFilter(time_from=5, time_to=1), np.zeros(N, bool)),
}


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_filter_returns_brute_force_restricted_to_filter(full: VectorIndex, case: str) -> None:
    flt, mask = FILTER_CASES[case]
    assert full.count("live", flt) == int(mask.sum())
    for q in QUERIES[:4]:
        hits = full.search("live", q, limit=15, flt=flt)
        assert all(mask[h.payload["sighting"]] for h in hits)
        assert [h.id for h in hits] == brute(q, mask, 15)


def test_score_threshold_keeps_only_close_hits(full: VectorIndex) -> None:
    q = QUERIES[0]
    scores = VECS @ unit(q)
    threshold = float(np.sort(scores)[-7]) - 1e-5  # 7 points at or above
    hits = full.search("live", q, limit=50, score_threshold=threshold)
    assert [h.id for h in hits] == brute(q, scores >= threshold, 50)
    assert len(hits) == 7 and all(h.score >= threshold for h in hits)
    assert full.search("live", q, limit=5, score_threshold=1.01) == []


def test_scroll_yields_every_point_once_with_its_vector(full: VectorIndex) -> None:
    seen = {p.id: p for p in full.scroll("live", batch=128)}
    assert len(seen) == N and set(seen) == set(IDS)
    for i in (0, 777, N - 1):
        np.testing.assert_allclose(seen[IDS[i]].vector, VECS[i], atol=1e-6)
        assert seen[IDS[i]].payload == PAYLOADS[i]
    cams = list(full.scroll("live", batch=50, flt=SearchFilter(cameras=[3])))
    assert sorted(p.payload["sighting"] for p in cams) == list(np.flatnonzero(CAM == 3))


def test_retrieve_keeps_requested_order_and_skips_missing(full: VectorIndex) -> None:
    wanted = [IDS[9], point_id("never stored"), IDS[2]]
    got = full.retrieve("live", wanted, with_vectors=True)
    assert [p.id for p in got] == [IDS[9], IDS[2]]
    np.testing.assert_allclose(got[0].vector, VECS[9], atol=1e-6)
    assert full.retrieve("live", [IDS[9]])[0].vector is None


# -- writes ------------------------------------------------------------------------------------
def test_reupserting_the_same_points_is_idempotent(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh()
    fill(index, points=POINTS[:300])
    moved = [IndexPoint(p.id, p.vector, {**p.payload, "camera": 7}) for p in POINTS[:300]]
    index.upsert("c1", moved)
    assert index.count("c1") == 300
    assert index.count("c1", SearchFilter(cameras=[7])) == 300


def test_alias_swap_switches_what_searches_see(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh()
    old, new = POINTS[:400], POINTS[400:800]
    fill(index, "v1", old)
    fill(index, "v2", new)
    index.set_alias("live", "v1")
    q = QUERIES[3]
    before = {h.id for h in index.search("live", q, limit=20)}
    assert before <= {p.id for p in old}
    index.set_alias("live", "v2")
    after = {h.id for h in index.search("live", q, limit=20)}
    assert after <= {p.id for p in new}
    # A reader searching while the alias flips back and forth sees one side, never a mix.
    sides = [{p.id for p in old}, {p.id for p in new}]
    seen: list[set[str]] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append({h.id for h in index.search("live", q, limit=20)})

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(10):
        index.set_alias("live", ["v1", "v2"][i % 2])
    stop.set()
    thread.join()
    assert seen and all(s <= sides[0] or s <= sides[1] for s in seen)
    assert index.resolve_alias("live") == "v2" and index.count("live") == 400
    assert index.list_aliases() == {"live": "v2"}
    with pytest.raises(ValueError, match="collection name"):
        index.set_alias("v1", "v2")
    with pytest.raises(CollectionNotFound, match="nope"):
        index.set_alias("live", "nope")
    assert index.resolve_alias("live") == "v2"
    index.drop_collection("v2")
    assert index.resolve_alias("live") is None and index.list_collections() == ["v1"]
    with pytest.raises(CollectionNotFound, match="'live'"):
        index.search("live", q)


def test_delete_and_delete_by_filter(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh()
    fill(index, points=POINTS[:400])
    index.delete("c1", [IDS[0], IDS[1], point_id("absent")])
    assert index.count("c1") == 398 and index.retrieve("c1", [IDS[0], IDS[1]]) == []
    flt = SearchFilter(cameras=[2], time_to=1_200.0)
    expected = sum(1 for p in PAYLOADS[2:400] if p["camera"] == 2 and p["time"] <= 1200)
    assert index.delete_by_filter("c1", flt) == expected
    assert index.count("c1") == 398 - expected and index.count("c1", flt) == 0
    with pytest.raises(ValueError, match="non-empty filter"):
        index.delete_by_filter("c1", SearchFilter())
    assert index.count("c1") == 398 - expected


def test_set_payload_changes_identity_filter(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh()
    fill(index, points=POINTS[:200])
    ids = [IDS[10], IDS[11]]
    index.set_payload("c1", ids, {"identity": 9_999})
    hits = index.search("c1", VECS[10], limit=5, flt=SearchFilter(identity_ids=[9_999]))
    assert sorted(h.id for h in hits) == sorted(ids)
    assert index.retrieve("c1", [IDS[10]])[0].payload["camera"] == PAYLOADS[10]["camera"]
    with pytest.raises(PointNotFound, match=point_id("ghost")):
        index.set_payload("c1", [IDS[12], point_id("ghost")], {"identity": 1})
    assert index.retrieve("c1", [IDS[12]])[0].payload == PAYLOADS[12]  # nothing half-applied


def test_set_payloads_gives_each_point_its_own(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh()
    fill(index, points=POINTS[:50])
    index.set_payloads(
        "c1",
        {
            IDS[0]: {"identity": 7, "review": "confirmed"},
            IDS[1]: {"identity": 7, "review": "confirmed"},
            IDS[2]: {"identity": None, "review": "rejected"},
        },
    )
    got = {p.id: p.payload for p in index.retrieve("c1", IDS[:3])}
    # (local mode drops a key set to None; the edge keeps it as null)
    assert [(got[i].get("identity"), got[i]["review"]) for i in IDS[:3]] == [
        (7, "confirmed"),
        (7, "confirmed"),
        (None, "rejected"),
    ]
    assert got[IDS[0]]["camera"] == PAYLOADS[0]["camera"]
    assert index.count("c1", SearchFilter(review="confirmed", identity_ids=[7])) == 2
    with pytest.raises(PointNotFound):
        index.set_payloads("c1", {point_id("ghost"): {"review": "confirmed"}})


def test_edge_adds_payload_indexes_an_older_collection_lacks(tmp_path: Path) -> None:
    import qdrant_edge as qe

    index = EdgeIndex(tmp_path / "edge")
    fill(index, points=POINTS[:100])
    _, shard, _ = index._open("c1")
    shard.update(qe.UpdateOperation.delete_field_index("review"))  # as made before `review`
    assert "review" not in shard.info().payload_schema
    index.create_collection("c1", DIM)  # exists: only the missing index is added
    assert "review" in shard.info().payload_schema and index.count("c1") == 100
    assert index.count("c1", SearchFilter(review="rejected")) == 20
    with pytest.raises(ValueError, match="review must be"):
        SearchFilter(review="maybe")
    index.close()


def test_reopening_the_folder_gives_the_same_results(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh(persistent=True)
    fill(index, points=POINTS[:150])
    index.set_alias("live", "c1")
    index.set_payload("c1", [IDS[3]], {"identity": 4242})
    before = [[(h.id, round(h.score, 5)) for h in index.search("live", q)] for q in QUERIES]
    index.close()
    index.close()  # closing twice is fine
    with pytest.raises(IndexClosed):
        index.count("c1")
    again = fresh(persistent=True)
    assert again.resolve_alias("live") == "c1" and again.count("live") == 150
    assert again.count("live", SearchFilter(identity_ids=[4242])) == 1
    after = [[(h.id, round(h.score, 5)) for h in again.search("live", q)] for q in QUERIES]
    assert after == before


def test_quantized_collection_finds_the_right_top1(fresh: Callable[..., VectorIndex]) -> None:
    index = fresh(indexing_threshold_kb=1)  # edge: optimize() builds HNSW + int8 codes
    index.create_collection("q8", DIM, quantization=True)
    index.upsert("q8", POINTS)
    # qdrant-client local mode drops quantization configs; the edge shard keeps it.
    assert index.info("q8").quantization == (fresh.backend == "edge")  # type: ignore[attr-defined]
    index.optimize("q8")
    rng = np.random.default_rng(5)
    picks = rng.choice(N, 30, replace=False)
    for i in picks:
        q = unit(VECS[i] + 0.05 * rng.standard_normal(DIM))
        assert index.search("q8", q, limit=1)[0].id == IDS[i]


def test_edge_hnsw_after_optimize_keeps_recall(tmp_path: Path) -> None:
    with EdgeIndex(tmp_path, indexing_threshold_kb=1, hnsw_ef=64) as index:
        fill(index)
        index.optimize("c1")
        recall = np.mean(
            [
                len({h.id for h in index.search("c1", q)} & set(brute(q, np.ones(N, bool), 10)))
                / 10
                for q in QUERIES
            ]
        )
        assert recall >= 0.95
        assert index.count("c1") == N


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input_raises_documented_errors_and_keeps_data(
    fresh: Callable[..., VectorIndex],
) -> None:
    index = fresh()
    fill(index, points=POINTS[:100])
    good = IndexPoint(point_id("new"), VECS[200], PAYLOADS[200])

    def unchanged() -> None:
        assert index.count("c1") == 100 and index.retrieve("c1", [good.id]) == []

    with pytest.raises(DimensionMismatch, match=r"has 32, got 16") as err:
        index.upsert("c1", [good, IndexPoint(point_id("x"), np.ones(16), {})])
    assert (err.value.expected, err.value.got) == (32, 16)
    unchanged()
    for bad in (np.full(DIM, np.nan), np.r_[np.ones(DIM - 1), np.inf], np.zeros(DIM)):
        with pytest.raises(ValueError):
            index.upsert("c1", [good, IndexPoint(point_id("y"), bad, {})])
        unchanged()
        with pytest.raises(ValueError):
            index.search("c1", bad)
    with pytest.raises(ValueError, match="not a UUID"):
        index.upsert("c1", [good, IndexPoint("sighting-7", VECS[0], {})])
    with pytest.raises(TypeError, match="camera"):
        index.upsert("c1", [good, IndexPoint(point_id("z"), VECS[0], {"camera": "3"})])
    with pytest.raises(ValueError, match="finite"):
        index.upsert("c1", [IndexPoint(point_id("z"), VECS[0], {"time": float("nan")})])
    for bad_payload in ({"identity": ["3"]}, {"identity": "3"}, {"review": True}):
        with pytest.raises(TypeError, match=next(iter(bad_payload))):
            index.upsert("c1", [good, IndexPoint(point_id("z"), VECS[0], bad_payload)])
    unchanged()
    with pytest.raises(DimensionMismatch, match="16"):
        index.search("c1", np.ones(16))
    with pytest.raises(DimensionMismatch):
        index.create_collection("c1", 64)
    index.create_collection("c1", DIM)  # idempotent
    with pytest.raises(CollectionNotFound, match="'missing'"):
        index.search("missing", VECS[0])
    with pytest.raises(CollectionNotFound, match="'missing'"):
        index.upsert("missing", [good])
    with pytest.raises(CollectionNotFound):
        index.count("../collections/c1")
    with pytest.raises(ValueError, match="limit"):
        index.search("c1", VECS[0], limit=0)
    with pytest.raises(ValueError, match="invalid collection name"):
        index.create_collection("../escape", DIM)
    with pytest.raises(TypeError):
        SearchFilter(cameras=["1"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        SearchFilter(attributes={"a.b": "x"})
    unchanged()


def test_edge_folder_is_single_process(tmp_path: Path) -> None:
    with EdgeIndex(tmp_path), pytest.raises(IndexLocked, match=str(tmp_path)):
        EdgeIndex(tmp_path)
    EdgeIndex(tmp_path).close()  # released on close


def test_edge_recovers_from_interrupted_create_and_drop(tmp_path: Path) -> None:
    (tmp_path / "collections" / "half").mkdir(parents=True)  # create died before its meta
    (tmp_path / "collections" / "half" / "junk").write_text("x")
    (tmp_path / ".trash-0123").mkdir()  # drop died after its rename
    with EdgeIndex(tmp_path) as index:
        assert index.list_collections() == [] and not (tmp_path / ".trash-0123").exists()
        with pytest.raises(CollectionNotFound, match="half"):
            index.drop_collection("half")
        index.drop_collection("half", missing_ok=True)
        fill(index, "half", POINTS[:5])
        assert index.list_collections() == ["half"] and index.count("half") == 5


# -- ids, names, factory -----------------------------------------------------------------------
def test_point_id_is_deterministic_and_unambiguous() -> None:
    assert point_id("media", 3, "crop", 0) == point_id("media", 3, "crop", 0)
    assert point_id("media", 3) == point_id("media", "3")
    assert point_id("a/b", "c") != point_id("a", "b/c")
    with pytest.raises(ValueError):
        point_id()


def test_collection_names_are_safe_and_distinct() -> None:
    name = collection_name("aioreid", "minilm-l6@1a2b3c4d+9f8e7d6c5b4a")
    assert name.startswith("aioreid-minilm-l6_1a2b3c4d_9f8e7d6c5b4a-")
    assert collection_name("aioreid", "a@b") != collection_name("aioreid", "a+b")
    assert "/" not in collection_name("aioreid", "../../etc")
    with pytest.raises(ValueError):
        collection_name("aioreid", " ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_factory_builds_the_configured_backend(tmp_path: Path, backend: str) -> None:
    settings = Settings(home=tmp_path, index=IndexSettings(backend=backend, collection_prefix="t"))
    with build_index(settings) as index:
        assert isinstance(index, EdgeIndex if backend == "edge" else QdrantClientIndex)
        name = index.collection_for_version("enc@1")
        fill(index, name, POINTS[:10])
        assert index.list_collections() == [name]
    assert (tmp_path / "index" / ("collections" if backend == "edge" else "local")).is_dir()
