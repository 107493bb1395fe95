"""Dataset loaders on tiny trees in the real public layouts (see fixtures_datasets.py)."""

from __future__ import annotations

import dataclasses
import shutil
from collections import Counter
from pathlib import Path

import pytest
from fixtures_datasets import (
    DATASET_BUILDERS,
    MULTIMODAL_BUILDERS,
    build_cuhk_pedes,
    build_icfg_pedes,
    build_llcm,
    build_market1501,
    build_msmt17,
    build_pku_sketch,
    build_regdb,
    build_rstpreid,
    build_sysu_mm01,
)

from aioreid.encoder.data.datasets import (
    DATASETS,
    DatasetLayoutError,
    list_datasets,
    load_dataset,
    parse_llcm_camera,
    parse_market_name,
    pku_sketch_split,
    relabel,
    sysu_camera_modality,
)
from aioreid.encoder.data.records import Modality, Record, ReIDDataset

ALL_NAMES = [
    "market1501",
    "msmt17",
    "sysu_mm01",
    "regdb",
    "llcm",
    "pku_sketch",
    "market_sketch_1k",
    "orbench",
    "cuhk_pedes",
    "icfg_pedes",
    "rstpreid",
]
OPTIONS: dict[str, dict[str, object]] = {"pku_sketch": {"num_train": 4}}


def _build(name: str, tmp_path: Path) -> Path:
    return {**DATASET_BUILDERS, **MULTIMODAL_BUILDERS}[name](tmp_path)


def _load(name: str, root: Path, **options: object) -> ReIDDataset:
    return load_dataset(name, root, **{**OPTIONS.get(name, {}), **options})


def _by(records: list[Record], attr: str) -> Counter:
    return Counter(getattr(r, attr) for r in records)


# -- registry -----------------------------------------------------------------------------------
def test_registry_lists_all_datasets() -> None:
    assert list_datasets() == sorted(ALL_NAMES)
    assert set(DATASETS) == set(ALL_NAMES)


def test_unknown_dataset_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'duke'") as info:
        load_dataset("duke", tmp_path)
    for name in ALL_NAMES:
        assert name in str(info.value)


def test_names_are_case_and_dash_insensitive(tmp_path: Path) -> None:
    build_market1501(tmp_path)
    ds = load_dataset("Market-1501", tmp_path)
    assert ds.name == "market1501"
    assert len(ds.train) == 4


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    build_regdb(tmp_path)
    with pytest.raises(TypeError, match="unknown option"):
        load_dataset("regdb", tmp_path, trail=2)


# -- Market-1501 --------------------------------------------------------------------------------
def test_market1501_counts_junk_and_distractors(tmp_path: Path) -> None:
    root = build_market1501(tmp_path)
    ds = load_dataset("market1501", root)
    assert ds.name == "market1501"
    assert ds.root == root
    assert len(ds.train) == 4  # Thumbs.db skipped
    assert _by(ds.train, "pid") == {2: 2, 7: 2}
    assert [r.camid for r in ds.train] == [1, 2, 3, 6]
    assert len(ds.query) == 2
    assert [(r.pid, r.camid) for r in ds.query] == [(1, 1), (3, 3)]
    # junk (-1) dropped entirely, distractors (0) kept in the gallery
    assert len(ds.gallery) == 6
    assert _by(ds.gallery, "pid") == {0: 2, 1: 2, 3: 2}
    assert all(r.pid != -1 for r in ds.train + ds.query + ds.gallery)
    assert {r.modality for r in ds.train + ds.query + ds.gallery} == {Modality.RGB}
    assert all(r.text is None and r.attributes is None for r in ds.train)
    assert all(r.path is not None and r.path.is_file() for r in ds.gallery)


def test_market1501_records_sorted_and_frozen(tmp_path: Path) -> None:
    ds = load_dataset("market1501", build_market1501(tmp_path))
    for split in (ds.train, ds.query, ds.gallery):
        paths = [str(r.path) for r in split]
        assert paths == sorted(paths)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.train[0].pid = 99  # type: ignore[misc]


def test_parse_market_name() -> None:
    assert parse_market_name("0002_c3s1_000551_01.jpg") == (2, 3)
    assert parse_market_name("-1_c6s2_000123_00.jpg") == (-1, 6)
    with pytest.raises(ValueError, match="cannot parse"):
        parse_market_name("holiday.jpg")


def test_market1501_badly_named_image_is_a_clear_error(tmp_path: Path) -> None:
    root = build_market1501(tmp_path)
    query = root / "query"
    (query / "portrait.jpg").write_bytes((query / "0001_c1s1_001051_00.jpg").read_bytes())
    with pytest.raises(ValueError, match=r"portrait\.jpg"):
        load_dataset("market1501", root)


def test_relabel_maps_pids_to_contiguous_labels(tmp_path: Path) -> None:
    ds = load_dataset("market1501", build_market1501(tmp_path))
    new, mapping = relabel(ds.train)
    assert mapping == {2: 0, 7: 1}
    assert [r.pid for r in new] == [0, 0, 1, 1]
    assert [r.path for r in new] == [r.path for r in ds.train]
    assert [r.camid for r in new] == [r.camid for r in ds.train]
    assert ds.train[0].pid == 2  # originals untouched


# -- MSMT17 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17_lists_and_cameras(tmp_path: Path, version: str) -> None:
    root = build_msmt17(tmp_path, version=version)
    ds = load_dataset("msmt17", tmp_path)
    assert ds.root == root
    image_dir = "mask_train_v2" if version == "v2" else "train"
    assert len(ds.train) == 5  # list_train + list_val
    assert _by(ds.train, "pid") == {0: 2, 1: 2, 2: 1}
    assert sorted(r.camid for r in ds.train) == [1, 2, 3, 5, 14]
    assert all(r.path is not None and r.path.parent.parent.name == image_dir for r in ds.train)
    assert [(r.pid, r.camid) for r in ds.query] == [(0, 7), (1, 15)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(0, 11), (1, 2)]
    assert {r.modality for r in ds.train + ds.query + ds.gallery} == {Modality.RGB}


def test_msmt17_without_val(tmp_path: Path) -> None:
    build_msmt17(tmp_path)
    ds = load_dataset("msmt17", tmp_path, include_val=False)
    assert len(ds.train) == 4
    assert 2 not in {r.pid for r in ds.train}


def test_msmt17_malformed_list_line(tmp_path: Path) -> None:
    root = build_msmt17(tmp_path)
    with (root / "list_query.txt").open("a") as handle:
        handle.write("0000/0000_000_07_0114morning_0004_0.jpg zero\n")
    with pytest.raises(ValueError, match=r"line 4 in .*list_query\.txt: label 'zero'"):
        load_dataset("msmt17", root)


def test_msmt17_unparsable_file_name(tmp_path: Path) -> None:
    root = build_msmt17(tmp_path)
    (root / "list_gallery.txt").write_text("0000/badname.jpg 0\n")
    with pytest.raises(ValueError, match=r"line 1 in .*list_gallery.txt"):
        load_dataset("msmt17", root)


# -- SYSU-MM01 ----------------------------------------------------------------------------------
def test_sysu_mm01_splits_and_modalities(tmp_path: Path) -> None:
    build_sysu_mm01(tmp_path)
    ds = load_dataset("sysu_mm01", tmp_path)
    assert len(ds.train) == 7
    assert _by(ds.train, "pid") == {1: 3, 2: 2, 3: 2}
    assert _by(ds.train, "modality") == {Modality.RGB: 4, Modality.IR: 3}
    assert all(r.modality is sysu_camera_modality(r.camid) for r in ds.train)
    # query: IR test images from cameras 3 and 6
    assert len(ds.query) == 5
    assert {r.modality for r in ds.query} == {Modality.IR}
    assert _by(ds.query, "camid") == {3: 2, 6: 3}
    assert _by(ds.query, "pid") == {4: 3, 5: 2}
    # gallery: all RGB test images from cameras 1, 2, 4, 5
    assert len(ds.gallery) == 6
    assert {r.modality for r in ds.gallery} == {Modality.RGB}
    assert _by(ds.gallery, "camid") == {1: 2, 2: 1, 4: 1, 5: 2}
    assert 6 not in {r.pid for r in ds.train + ds.query + ds.gallery}
    assert load_dataset("sysu_mm01", tmp_path, include_val=False).summary()["train"] == {
        "records": 5,
        "identities": 2,
        "cameras": 4,
    }


def test_sysu_camera_modality() -> None:
    assert [sysu_camera_modality(c) for c in range(1, 7)] == [
        Modality.RGB,
        Modality.RGB,
        Modality.IR,
        Modality.RGB,
        Modality.RGB,
        Modality.IR,
    ]
    assert sysu_camera_modality("cam6") is Modality.IR
    with pytest.raises(ValueError, match=r"cameras 1\.\.6"):
        sysu_camera_modality(7)


def test_sysu_malformed_id_file(tmp_path: Path) -> None:
    root = build_sysu_mm01(tmp_path)
    (root / "exp" / "test_id.txt").write_text("4,5\n6,x\n")
    with pytest.raises(ValueError, match=r"line 2 in .*test_id.txt.*'x'"):
        load_dataset("sysu_mm01", root)


# -- RegDB --------------------------------------------------------------------------------------
def test_regdb_trial_and_modalities(tmp_path: Path) -> None:
    build_regdb(tmp_path)
    ds = load_dataset("regdb", tmp_path)
    assert len(ds.train) == 8
    assert _by(ds.train, "modality") == {Modality.RGB: 4, Modality.IR: 4}
    assert all(r.camid == (1 if r.modality is Modality.RGB else 2) for r in ds.train)
    assert _by(ds.train, "pid") == {0: 4, 1: 4}
    assert len(ds.query) == 4 and {r.modality for r in ds.query} == {Modality.IR}
    assert {r.camid for r in ds.query} == {2}
    assert len(ds.gallery) == 4 and {r.modality for r in ds.gallery} == {Modality.RGB}
    assert {r.camid for r in ds.gallery} == {1}
    assert {r.path.parent.name for r in ds.query if r.path} == {"3", "4"}
    assert all(r.path is not None and r.path.suffix == ".bmp" for r in ds.gallery)
    trial2 = load_dataset("regdb", tmp_path, trial=2)
    assert {r.path.parent.name for r in trial2.query if r.path} == {"1", "2"}
    assert {r.path.parent.parent.name for r in trial2.query if r.path} == {"Thermal"}


def test_regdb_bad_trial_and_missing_trial_files(tmp_path: Path) -> None:
    root = build_regdb(tmp_path)
    with pytest.raises(ValueError, match=r"trial must be in 1\.\.10"):
        load_dataset("regdb", root, trial=11)
    with pytest.raises(DatasetLayoutError, match=r"train_visible_3\.txt"):
        load_dataset("regdb", root, trial=3)


def test_regdb_malformed_line(tmp_path: Path) -> None:
    root = build_regdb(tmp_path)
    path = root / "idx" / "test_thermal_1.txt"
    path.write_text(path.read_text() + "Thermal/3/only_a_path.bmp\n")
    with pytest.raises(ValueError, match=r"line 5 in .*test_thermal_1.txt"):
        load_dataset("regdb", root)


# -- LLCM ---------------------------------------------------------------------------------------
def test_llcm_query_nir_gallery_vis(tmp_path: Path) -> None:
    build_llcm(tmp_path)
    ds = load_dataset("llcm", tmp_path)
    assert len(ds.train) == 6
    assert _by(ds.train, "modality") == {Modality.RGB: 3, Modality.IR: 3}
    assert sorted((r.modality.value, r.pid, r.camid) for r in ds.train) == [
        ("ir", 0, 1),
        ("ir", 1, 5),
        ("ir", 1, 6),
        ("rgb", 0, 1),
        ("rgb", 0, 4),
        ("rgb", 1, 2),
    ]
    assert {r.modality for r in ds.query} == {Modality.IR}
    assert sorted((r.pid, r.camid) for r in ds.query) == [(0, 7), (1, 8), (1, 9)]
    assert {r.modality for r in ds.gallery} == {Modality.RGB}
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 3), (0, 7), (1, 9)]
    assert all(r.path is not None and r.path.parts[-3] == "nir" for r in ds.query)


def test_parse_llcm_camera() -> None:
    assert parse_llcm_camera("nir/0001/0001_c01_s185535_f7010_nir.jpg") == 1
    assert parse_llcm_camera("test_vis/cam9/0003/0003_c09_s185734_f3195_vis.jpg") == 9
    assert parse_llcm_camera("test_nir/cam4/0003/frame.jpg") == 4
    with pytest.raises(ValueError, match="cannot parse camera"):
        parse_llcm_camera("vis/0001/frame.jpg")


def test_llcm_malformed_line(tmp_path: Path) -> None:
    root = build_llcm(tmp_path)
    path = root / "idx" / "test_vis.txt"
    path.write_text(path.read_text() + "vis/0003/a.jpg 0 extra\n")
    with pytest.raises(ValueError, match=r"line 4 in .*test_vis.txt"):
        load_dataset("llcm", root)


# -- PKU-Sketch ---------------------------------------------------------------------------------
@pytest.mark.parametrize("simple_names", [False, True])
def test_pku_sketch_split_and_modalities(tmp_path: Path, simple_names: bool) -> None:
    build_pku_sketch(tmp_path, simple_names=simple_names)
    ds = load_dataset("pku_sketch", tmp_path, num_train=4, trial=0)
    train_ids, test_ids = pku_sketch_split(range(1, 7), trial=0, num_train=4)
    assert {r.pid for r in ds.train} == set(train_ids)
    assert len(ds.train) == 12
    assert _by(ds.train, "modality") == {Modality.RGB: 8, Modality.SKETCH: 4}
    assert len(ds.query) == 2
    assert {r.pid for r in ds.query} == set(test_ids)
    assert {(r.modality, r.camid) for r in ds.query} == {(Modality.SKETCH, 0)}
    assert len(ds.gallery) == 4
    assert {r.modality for r in ds.gallery} == {Modality.RGB}
    assert _by(ds.gallery, "camid") == {1: 2, 3: 2}
    assert {r.pid for r in ds.gallery} == set(test_ids)
    exts = {r.path.suffix for r in ds.train + ds.gallery if r.path and r.pid == 2}
    assert ".bmp" in exts


def test_pku_sketch_split_is_seeded() -> None:
    ids = list(range(1, 201))
    train, test = pku_sketch_split(ids, trial=3)
    assert (len(train), len(test)) == (150, 50)
    assert not set(train) & set(test) and set(train) | set(test) == set(ids)
    assert pku_sketch_split(ids, trial=3) == (train, test)
    assert pku_sketch_split(reversed(ids), trial=3) == (train, test)
    assert pku_sketch_split(ids, trial=4)[1] != test
    with pytest.raises(ValueError, match="num_train"):
        pku_sketch_split(range(1, 7), num_train=150)


def test_pku_sketch_default_needs_200_ids(tmp_path: Path) -> None:
    build_pku_sketch(tmp_path)
    with pytest.raises(ValueError, match="num_train must be between 1 and 5"):
        load_dataset("pku_sketch", tmp_path)


def test_pku_sketch_trials_differ(tmp_path: Path) -> None:
    build_pku_sketch(tmp_path, num_ids=12)
    queries = {
        tuple(r.pid for r in load_dataset("pku_sketch", tmp_path, num_train=8, trial=t).query)
        for t in range(4)
    }
    assert len(queries) > 1


# -- text datasets ------------------------------------------------------------------------------
def test_cuhk_pedes_text_and_image_records(tmp_path: Path) -> None:
    root = build_cuhk_pedes(tmp_path)
    ds = load_dataset("cuhk_pedes", tmp_path)
    assert _by(ds.train, "modality") == {Modality.RGB: 3, Modality.TEXT: 5}
    assert _by(ds.train, "pid") == {1: 5, 2: 3}
    text = [r for r in ds.train if r.modality is Modality.TEXT]
    assert all(r.camid == -1 for r in ds.train)
    first = root / "imgs" / "CUHK01" / "0107002.png"
    assert [(r.path, r.text) for r in text if r.path == first] == [
        (first, "A woman in a red coat."),
        (first, "She carries a bag."),
    ]
    # an image comes right before its own captions
    idx = next(i for i, r in enumerate(ds.train) if r.path == first)
    assert [r.modality for r in ds.train[idx : idx + 3]] == [Modality.RGB] + [Modality.TEXT] * 2
    assert len(ds.query) == 4 and {r.modality for r in ds.query} == {Modality.TEXT}
    assert sorted(r.text or "" for r in ds.query) == sorted(
        ["A girl in a white dress.", "Long hair.", "A man with a blue backpack.", "Grey shorts."]
    )
    assert len(ds.gallery) == 2 and {r.modality for r in ds.gallery} == {Modality.RGB}
    assert {r.pid for r in ds.gallery} == {5, 6} == {r.pid for r in ds.query}
    assert {r.path for r in ds.query} == {r.path for r in ds.gallery}
    assert all(r.text is None for r in ds.gallery)
    assert 9 not in {r.pid for r in ds.train + ds.query + ds.gallery}  # val ignored


def test_icfg_pedes_cameras_from_msmt_names(tmp_path: Path) -> None:
    build_icfg_pedes(tmp_path)
    ds = load_dataset("icfg_pedes", tmp_path)
    images = [r for r in ds.train if r.modality is Modality.RGB]
    assert sorted(r.camid for r in images) == [1, 3, 5]
    assert len(ds.train) == 6
    assert {r.camid for r in ds.train if r.modality is Modality.TEXT} == {-1}
    assert [(r.pid, r.camid) for r in ds.gallery] == [(7, 12), (8, 9)]
    assert [r.text for r in ds.query] == ["A boy in a yellow shirt.", "A man in a suit."]


def test_rstpreid_fields_and_cameras(tmp_path: Path) -> None:
    build_rstpreid(tmp_path)
    ds = load_dataset("rstpreid", tmp_path)
    assert _by(ds.train, "modality") == {Modality.RGB: 2, Modality.TEXT: 4}
    assert sorted(r.camid for r in ds.train if r.modality is Modality.RGB) == [2, 14]
    assert len(ds.query) == 4 and {r.pid for r in ds.query} == {4}
    assert [r.camid for r in ds.gallery] == [7, 9]
    assert 3 not in {r.pid for r in ds.train + ds.query + ds.gallery}


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    root = build_cuhk_pedes(tmp_path)
    (root / "reid_raw.json").write_text('[\n {"split": "train",\n "id": 1,,\n}]')
    with pytest.raises(ValueError, match=r"reid_raw.json at line 3"):
        load_dataset("cuhk_pedes", root)


def test_json_entry_missing_key(tmp_path: Path) -> None:
    root = build_rstpreid(tmp_path)
    (root / "data_captions.json").write_text(
        '[{"id": 0, "img_path": "0000_c14_0031.jpg", "captions": ["x"], "split": "train"},'
        ' {"id": 1, "file_path": "0001_c1_0001.jpg", "captions": ["y"], "split": "test"}]'
    )
    with pytest.raises(ValueError, match=r"entry 1 in .*data_captions\.json: missing key 'img_"):
        load_dataset("rstpreid", root)


def test_json_bad_id(tmp_path: Path) -> None:
    root = build_icfg_pedes(tmp_path)
    (root / "ICFG-PEDES.json").write_text(
        '[{"id": "abc", "file_path": "train/x.jpg", "captions": ["x"], "split": "train"}]'
    )
    with pytest.raises(ValueError, match=r"entry 0 .*'id' 'abc' is not an integer"):
        load_dataset("icfg_pedes", root)


# -- root resolution and layout errors ------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_root_or_parent_give_same_dataset(tmp_path: Path, name: str) -> None:
    root = _build(name, tmp_path)
    from_parent = _load(name, tmp_path)
    from_root = _load(name, root)
    assert from_parent.root == from_root.root == root
    assert from_parent.train == from_root.train and len(from_root.train) > 0
    assert from_parent.query == from_root.query and len(from_root.query) > 0
    assert from_parent.gallery == from_root.gallery and len(from_root.gallery) > 0
    for split in (from_root.train, from_root.query, from_root.gallery):
        # only a text record may lack an image (an ORBench text query describes none)
        assert all(r.path.is_file() for r in split if r.path is not None)
        assert all(r.modality is Modality.TEXT for r in split if r.path is None)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_empty_root_names_expected_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "unrelated").mkdir()
    with pytest.raises(DatasetLayoutError, match="no dataset found") as info:
        _load(name, tmp_path)
    folder = DATASETS[name].folder_names[0]
    assert str(tmp_path / folder) in str(info.value)


def test_parent_with_generic_folders_resolves_to_dataset(tmp_path: Path) -> None:
    root = build_msmt17(tmp_path)
    (tmp_path / "train").mkdir()  # unrelated folder that looks like an MSMT17 marker
    (tmp_path / "list_train.txt").write_text("not msmt\n")
    ds = load_dataset("msmt17", tmp_path)
    assert ds.root == root
    assert len(ds.train) == 5


def test_nested_release_folder_resolves_inward(tmp_path: Path) -> None:
    outer = tmp_path / "Market-1501-v15.09.15"
    inner = build_market1501(outer)  # zip extracted into a folder of the same name
    assert inner == outer / "Market-1501-v15.09.15"
    assert load_dataset("market1501", outer).root == inner
    ds = load_dataset("market1501", tmp_path)
    assert ds.root == inner
    assert len(ds.gallery) == 6


def test_missing_root_is_a_layout_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_dataset("regdb", tmp_path / "nowhere")


MISSING_CASES = [
    ("market1501", "bounding_box_train", "folder"),
    ("market1501", "bounding_box_test", "folder"),
    ("market1501", "query", "folder"),
    ("msmt17", "train", "folder"),
    ("msmt17", "test", "folder"),
    ("msmt17", "list_train.txt", "file"),
    ("msmt17", "list_val.txt", "file"),
    ("msmt17", "list_query.txt", "file"),
    ("msmt17", "list_gallery.txt", "file"),
    ("sysu_mm01", "exp", "folder"),
    ("sysu_mm01", "exp/train_id.txt", "file"),
    ("sysu_mm01", "exp/val_id.txt", "file"),
    ("sysu_mm01", "exp/test_id.txt", "file"),
    ("sysu_mm01", "cam1", "folder"),
    ("sysu_mm01", "cam3", "folder"),
    ("sysu_mm01", "cam6", "folder"),
    ("regdb", "idx", "folder"),
    ("regdb", "idx/train_visible_1.txt", "file"),
    ("regdb", "idx/train_thermal_1.txt", "file"),
    ("regdb", "idx/test_visible_1.txt", "file"),
    ("regdb", "idx/test_thermal_1.txt", "file"),
    ("regdb", "Thermal", "folder"),
    ("regdb", "Visible/3", "folder"),
    ("llcm", "idx", "folder"),
    ("llcm", "idx/train_vis.txt", "file"),
    ("llcm", "idx/train_nir.txt", "file"),
    ("llcm", "idx/test_vis.txt", "file"),
    ("llcm", "idx/test_nir.txt", "file"),
    ("llcm", "nir", "folder"),
    ("llcm", "vis/0004/0004_c09_s184535_f3200_vis.jpg", "file"),
    ("pku_sketch", "photo", "folder"),
    ("pku_sketch", "sketch", "folder"),
    ("market_sketch_1k", "photo", "folder"),
    ("market_sketch_1k", "photo/train", "folder"),
    ("market_sketch_1k", "photo/query", "folder"),
    ("market_sketch_1k", "sketch", "folder"),
    ("market_sketch_1k", "sketch/C/train", "folder"),
    ("market_sketch_1k", "sketch/F/query", "folder"),
    ("orbench", "train_annos.json", "file"),
    ("orbench", "test_gallery_and_queries.json", "file"),
    ("orbench", "vis", "folder"),
    ("orbench", "cp", "folder"),
    ("orbench", "sk/0003", "folder"),
    ("orbench", "vis/0001/0001_v02.jpg", "file"),
    ("orbench", "nir/0005", "folder"),
    ("orbench", "sk/0005/0005_sk01.jpg", "file"),
    ("cuhk_pedes", "reid_raw.json", "file"),
    ("cuhk_pedes", "imgs", "folder"),
    ("cuhk_pedes", "imgs/Market", "folder"),
    ("icfg_pedes", "ICFG-PEDES.json", "file"),
    ("icfg_pedes", "imgs", "folder"),
    ("rstpreid", "data_captions.json", "file"),
    ("rstpreid", "imgs", "folder"),
    ("rstpreid", "imgs/0004_c9_0003.jpg", "file"),
]


@pytest.mark.parametrize(("name", "rel", "kind"), MISSING_CASES)
def test_missing_part_raises_layout_error_naming_it(
    tmp_path: Path, name: str, rel: str, kind: str
) -> None:
    root = _build(name, tmp_path)
    target = root / rel
    assert target.exists(), f"fixture lacks {target}"
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    for given in (tmp_path, root):
        with pytest.raises(DatasetLayoutError) as info:
            _load(name, given)
        message = str(info.value)
        assert f"missing {kind} {target}" in message, message
        assert DATASETS[name].display_name in message


def test_layout_error_is_a_file_not_found_error(tmp_path: Path) -> None:
    root = build_llcm(tmp_path)
    shutil.rmtree(root / "vis")
    with pytest.raises(FileNotFoundError, match=r"referenced by .*train_vis.txt:1"):
        load_dataset("llcm", root)


def test_verify_files_off_skips_image_checks(tmp_path: Path) -> None:
    root = build_llcm(tmp_path)
    shutil.rmtree(root / "nir")
    ds = load_dataset("llcm", root, verify_files=False)
    assert len(ds.query) == 3
    assert not any(r.path is not None and r.path.exists() for r in ds.query)


def test_msmt17_v2_missing_folder_is_named(tmp_path: Path) -> None:
    root = build_msmt17(tmp_path, version="v2")
    shutil.rmtree(root / "mask_test_v2")
    with pytest.raises(DatasetLayoutError, match=r"missing folder .*mask_test_v2"):
        load_dataset("msmt17", tmp_path)
