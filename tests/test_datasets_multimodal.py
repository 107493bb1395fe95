"""Market-Sketch-1K and ORBench loaders on tiny trees in their published layouts.

The generic checks (registry, root or parent, a missing part named) run over every loader in
test_datasets.py; this file checks what is particular to these two.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_datasets import ORBENCH_CAPTIONS, build_market_sketch_1k, build_orbench
from typer.testing import CliRunner

from aioreid.encoder.data.datasets import (
    DatasetLayoutError,
    ORBench,
    get_loader,
    load_dataset,
)
from aioreid.encoder.data.records import Modality, Record
from aioreid.platform.cli import app


def _by(records: list[Record], attr: str) -> Counter:
    return Counter(getattr(r, attr) for r in records)


def _sources(records: list[Record]) -> Counter:
    return Counter((r.attributes or {}).get("source_modality") for r in records)


def _paths(records: list[Record]) -> set[Path]:
    return {r.path for r in records if r.path is not None}


# -- Market-Sketch-1K ---------------------------------------------------------------------------
def test_market_sketch_1k_splits_modalities_and_styles(tmp_path: Path) -> None:
    root = build_market_sketch_1k(tmp_path)
    ds = load_dataset("Market-Sketch-1K", tmp_path)
    assert ds.name == "market_sketch_1k" and ds.root == root
    # train: 4 photos + 7 sketches of pids 2 and 7
    assert _by(ds.train, "modality") == {Modality.RGB: 4, Modality.SKETCH: 7}
    assert _by(ds.train, "pid") == {2: 6, 7: 5}
    assert sorted(r.camid for r in ds.train if r.modality is Modality.RGB) == [1, 2, 3, 6]
    # query: sketches only, camid 0, artist kept as the style attribute
    assert len(ds.query) == 7
    assert {(r.modality, r.camid) for r in ds.query} == {(Modality.SKETCH, 0)}
    assert _by(ds.query, "pid") == {1: 3, 3: 4}
    assert Counter((r.attributes or {})["style"] for r in ds.query) == {
        "A": 2,
        "B": 1,
        "C": 1,
        "D": 1,
        "E": 1,
        "F": 1,
    }
    for r in ds.query:  # sketch/<style>/query/<file>
        assert r.path is not None and r.path.parts[-3] == (r.attributes or {}).get("style")
    # gallery: Market photos of the test split; junk dropped, distractor kept
    assert {r.modality for r in ds.gallery} == {Modality.RGB}
    assert _by(ds.gallery, "pid") == {0: 1, 1: 2, 3: 2}
    assert _by(ds.gallery, "camid") == {1: 2, 2: 1, 4: 1, 5: 1}
    assert all(r.attributes is None for r in ds.gallery)
    # the splits do not mix
    assert not _paths(ds.query) & _paths(ds.gallery)
    assert not _paths(ds.train) & _paths(ds.query + ds.gallery)
    assert not {r.pid for r in ds.train} & {r.pid for r in ds.query + ds.gallery}


def test_market_sketch_1k_style_options(tmp_path: Path) -> None:
    build_market_sketch_1k(tmp_path)
    ds = load_dataset("market_sketch_1k", tmp_path, train_styles="A", query_styles="cb")
    assert _by(ds.train, "modality") == {Modality.RGB: 4, Modality.SKETCH: 2}
    assert {(r.attributes or {}).get("style") for r in ds.train} == {None, "A"}
    assert sorted((r.attributes or {})["style"] for r in ds.query) == ["B", "C"]
    assert len(ds.gallery) == 5
    with pytest.raises(ValueError, match=r"query_styles must be letters out of ABCDEF.*'AG'"):
        load_dataset("market_sketch_1k", tmp_path, query_styles="AG")
    with pytest.raises(ValueError, match="train_styles"):
        load_dataset("market_sketch_1k", tmp_path, train_styles="")


def test_market_sketch_1k_misfiled_or_misnamed_sketch(tmp_path: Path) -> None:
    root = build_market_sketch_1k(tmp_path)
    misfiled = root / "sketch" / "A" / "query" / "0003_B.jpg"
    shutil.copy(root / "sketch" / "B" / "query" / "0001_B.jpg", misfiled)
    with pytest.raises(ValueError, match=r"0003_B\.jpg is named for style B .* style A"):
        load_dataset("market_sketch_1k", root)
    misfiled.unlink()
    (root / "sketch" / "D" / "train" / "portrait.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot parse person id from sketch .*portrait\.jpg"):
        load_dataset("market_sketch_1k", root)


def test_market_sketch_1k_unnamed_style_and_bad_photo(tmp_path: Path) -> None:
    root = build_market_sketch_1k(tmp_path)
    (root / "sketch" / "E" / "query" / "0003_E.jpg").rename(
        root / "sketch" / "E" / "query" / "0003.jpg"
    )
    ds = load_dataset("market_sketch_1k", root)
    assert [r.attributes for r in ds.query if r.path and r.path.name == "0003.jpg"] == [
        {"style": "E"}
    ]
    (root / "photo" / "query" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"cannot parse person/camera from photo .*holiday"):
        load_dataset("market_sketch_1k", root)


# -- ORBench ------------------------------------------------------------------------------------
def test_orbench_train_has_five_modalities_by_identity_folder(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    ds = load_dataset("orbench", tmp_path)
    assert ds.name == "orbench" and ds.root == root
    assert _by(ds.train, "modality") == {
        Modality.RGB: 3,
        Modality.TEXT: 4,
        Modality.IR: 3,
        Modality.SKETCH: 5,
    }
    assert _sources(ds.train) == {"vis": 3, "text": 4, "nir": 3, "cp": 2, "sk": 3}
    # pid = the annotation id of the identity folder (folder 0003 has id 2)
    assert {(r.path.parts[-2], r.pid) for r in ds.train if r.path} == {("0001", 1), ("0003", 2)}
    assert all(r.camid == -1 for r in ds.train + ds.query + ds.gallery)
    # colour pencil goes the sketch path but keeps its label
    cp = [r for r in ds.train if (r.attributes or {}).get("source_modality") == "cp"]
    assert {r.modality for r in cp} == {Modality.SKETCH}
    assert {r.path.parts[-3] for r in cp if r.path} == {"cp"}


def test_orbench_train_captions_attached_to_their_images(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    ds = load_dataset("orbench", root)
    texts = [(r.path, r.pid, r.text) for r in ds.train if r.modality is Modality.TEXT]
    second = root / "vis" / "0001" / "0001_v02.jpg"
    assert texts == [
        (root / "vis" / "0001" / "0001_v01.jpg", 1, "A man in a black coat."),
        (second, 1, "Black coat, grey trousers."),
        (second, 1, "He carries a bag."),
        (root / "vis" / "0003" / "0003_v01.jpg", 2, "A woman in a red dress."),
    ]
    assert {r.path for r in ds.train if r.modality is Modality.RGB} == {p for p, _, _ in texts}


def test_orbench_queries_per_modality_and_rgb_gallery(tmp_path: Path) -> None:
    build_orbench(tmp_path)
    ds = load_dataset("orbench", tmp_path)
    assert len(ds.query) == 7
    assert _sources(ds.query) == {"nir": 2, "cp": 2, "sk": 1, "text": 2}
    assert _by(ds.query, "modality") == {Modality.IR: 2, Modality.SKETCH: 3, Modality.TEXT: 2}
    text = [r for r in ds.query if r.modality is Modality.TEXT]
    assert {(r.pid, r.text) for r in text} == set(ORBENCH_CAPTIONS.items())
    assert all(r.path is None for r in text)
    assert _by(ds.query, "pid") == {4: 3, 5: 4}
    # gallery: RGB only, the protocol's pids
    assert {(r.modality, (r.attributes or {})["source_modality"]) for r in ds.gallery} == {
        (Modality.RGB, "vis")
    }
    assert _by(ds.gallery, "pid") == {4: 2, 5: 1}
    # queries and gallery do not mix, nor do train and test
    assert Modality.RGB not in {r.modality for r in ds.query}
    assert not _paths(ds.query) & _paths(ds.gallery)
    assert not _paths(ds.train) & _paths(ds.query + ds.gallery)
    assert not {r.pid for r in ds.train} & {r.pid for r in ds.query + ds.gallery}
    assert ds.summary()["gallery"] == {"records": 3, "identities": 2, "cameras": 1}


def test_orbench_combined_protocol_queries(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    protocol = ORBench().protocol_queries(tmp_path)
    assert list(protocol) == ["NIR", "CP", "SK", "TEXT", "NIR+CP", "TEXT+SK", "NIR+CP+SK+TEXT"]
    assert [len(v) for v in protocol.values()] == [2, 2, 1, 2, 1, 1, 1]
    (pair,) = protocol["NIR+CP"]
    assert [(r.modality, (r.attributes or {})["source_modality"]) for r in pair] == [
        (Modality.IR, "nir"),
        (Modality.SKETCH, "cp"),
    ]
    (text_first,) = protocol["TEXT+SK"]
    assert [r.modality for r in text_first] == [Modality.TEXT, Modality.SKETCH]
    assert text_first[0].text == ORBENCH_CAPTIONS[5]
    assert text_first[1].path == root / "sk" / "0005" / "0005_sk01.jpg"
    (four,) = protocol["NIR+CP+SK+TEXT"]
    assert [(r.attributes or {})["source_modality"] for r in four] == ["nir", "cp", "sk", "text"]
    assert {r.pid for group in protocol.values() for q in group for r in q} == {4, 5}
    assert all(len({r.pid for r in q}) == 1 for group in protocol.values() for q in group)


def _edit_protocol(root: Path, **changes: object) -> None:
    path = root / "test_gallery_and_queries.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def _edit_train(root: Path, index: int, **changes: object) -> None:
    path = root / "train_annos.json"
    data = json.loads(path.read_text())
    data[index].update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"TEXT": None}, r"has no 'TEXT' list"),
        ({"RGB+NIR": [[4, "nir/0004/0004_n01.jpg"]]}, r"unknown query key 'RGB\+NIR'"),
        ({"SK": {"5": "sk/0005/0005_sk01.jpg"}}, r"'SK' in .* must be a list"),
        (
            {"NIR+TEXT": [[4, "A boy.", "nir/0004/0004_n01.jpg"]]},
            r"'NIR\+TEXT' entry 0: expected a path nir/<identity>/<file>, got 'A boy\.'",
        ),
        (
            {"NIR": [[4, "nir/0004/0004_n01.jpg", "x"]]},
            r"'NIR' entry 0: expected \[pid, nir path\]",
        ),
        ({"CP": [["four", "cp/0004/0004_cp01.jpg"]]}, r"'CP' entry 0: id 'four' is not an integer"),
        ({"TEXT": [[4, "  "]]}, r"'TEXT' entry 0: empty or non-text caption"),
        ({"RGB_GALLERY": [[4, "nir/0004/0004_n01.jpg"]]}, r"expected a path vis/<identity>/"),
    ],
)
def test_orbench_malformed_protocol_is_named(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    root = build_orbench(tmp_path)
    _edit_protocol(root, **changes)
    with pytest.raises(ValueError, match=message) as info:
        load_dataset("orbench", root)
    assert "test_gallery_and_queries.json" in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": 2}, r"entry 1: folder vis/0001 has id 2 here but id 1 in an earlier entry"),
        ({"file_path": "0001/0001_v02.jpg"}, r"entry 1: expected a path vis/<identity>/<file>"),
        ({"caption": 7}, r"entry 1: 'caption' must be a string or a list of strings"),
        ({"id": None}, r"entry 1: id None is not an integer"),
    ],
)
def test_orbench_malformed_train_annotation_is_named(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    root = build_orbench(tmp_path)
    _edit_train(root, 1, **changes)
    with pytest.raises(ValueError, match=message) as info:
        load_dataset("orbench", root)
    assert "train_annos.json" in str(info.value)


def test_orbench_broken_json_and_wrong_top_level(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    (root / "train_annos.json").write_text('[\n {"id": 1,,\n}]')
    with pytest.raises(ValueError, match=r"malformed json in .*train_annos\.json at line 2"):
        load_dataset("orbench", root)
    (root / "train_annos.json").write_text("{}")
    with pytest.raises(ValueError, match=r"train_annos\.json must hold a json list, got dict"):
        load_dataset("orbench", root)


def test_orbench_training_identity_without_images(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    (root / "cp" / "0001" / "0001_cp01.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match=r"no images in .*cp/0001 \(training identity 1\)"):
        load_dataset("orbench", root)


def test_orbench_missing_image_names_its_protocol_entry(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    (root / "nir" / "0005" / "0005_n01.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"0005_n01\.jpg \(referenced by .*'NIR' entry 1\)"):
        load_dataset("orbench", root)
    ds = load_dataset("orbench", root, verify_files=False)
    assert len(ds.query) == 7


def test_orbench_accepts_captions_key_and_backslashes(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    path = root / "train_annos.json"
    data = json.loads(path.read_text())
    data[2] = {"id": 2, "file_path": "vis\\0003\\0003_v01.jpg", "captions": ["In red."]}
    path.write_text(json.dumps(data))
    ds = load_dataset("orbench", root)
    assert [r.text for r in ds.train if r.pid == 2 and r.modality is Modality.TEXT] == ["In red."]


# -- registry and command line -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "build", "counts"),
    [
        ("Market-Sketch-1K", build_market_sketch_1k, (11, 7, 5)),
        ("ORBench", build_orbench, (15, 7, 3)),
    ],
)
def test_datasets_inspect_prints_counts(
    tmp_path: Path, name: str, build: Callable[[Path], Path], counts: tuple[int, int, int]
) -> None:
    build(tmp_path)
    result = CliRunner().invoke(app, ["datasets", "inspect", name, str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert tuple(summary[s]["records"] for s in ("train", "query", "gallery")) == counts
    assert get_loader(name).name in ("market_sketch_1k", "orbench")


def test_datasets_inspect_broken_tree_is_a_readable_error(tmp_path: Path) -> None:
    root = build_orbench(tmp_path)
    shutil.rmtree(root / "sk")
    result = CliRunner().invoke(app, ["datasets", "inspect", "orbench", str(tmp_path)])
    assert result.exit_code == 2
    assert f"missing folder {root / 'sk'}" in result.output
    assert "Traceback" not in result.output
