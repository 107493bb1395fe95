"""Tests of the synthetic multimodal world (aioreid.encoder.data.synth)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from aioreid.encoder.data.synth import (
    Camera,
    IdentityAttributes,
    SynthConfig,
    WorldManifest,
    describe,
    describe_structured,
    generate_world,
    render_ir,
    render_rgb,
    render_sketch,
    sample_identity,
    tokenize,
)
from aioreid.encoder.data.synth.captions import SYNONYMS, colour_words

MARKET_RE = re.compile(r"^(-1|\d{4})_c(\d)s1_(\d{6})_(\d{2})\.jpg$")
PARSE_RE = re.compile(r"([-\d]+)_c(\d)")  # the evaluation protocol's pattern


def _tiny(seed: int = 0, workers: int = 2) -> SynthConfig:
    return SynthConfig(
        identities=6,
        seed=seed,
        workers=workers,
        progress=False,
        video_seconds=1.0,
        video_fps=5,
        video_size=(120, 160),
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldManifest]:
    root = tmp_path_factory.mktemp("world")
    return root, generate_world(root, _tiny())


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_bytes_whatever_the_workers(
    world: tuple[Path, WorldManifest], tmp_path: Path
) -> None:
    root, _ = world
    again = generate_world(tmp_path / "again", _tiny(workers=1))
    a, b = _tree(root), _tree(tmp_path / "again")
    assert a == b
    assert (root / "world.json").read_bytes() == (tmp_path / "again" / "world.json").read_bytes()
    assert again.counts["images_total"] > 50


def test_different_seed_differs(world: tuple[Path, WorldManifest], tmp_path: Path) -> None:
    root, man = world
    other = generate_world(tmp_path / "other", _tiny(seed=1))
    assert other.identities[0]["attributes"] != man.identities[0]["attributes"]
    sketch = "PKUSketchRE-ID_V1/sketch/1.jpg"
    assert (root / sketch).read_bytes() != (tmp_path / "other" / sketch).read_bytes()


def test_sample_identity_deterministic_and_roundtrip() -> None:
    a = sample_identity(7, 3)
    assert a == sample_identity(7, 3)
    assert a != sample_identity(8, 3)
    d = a.to_dict()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.items())
    assert IdentityAttributes.from_dict(d) == a
    for key in (
        "gender",
        "build",
        "height",
        "hair_style",
        "hair_color",
        "upper_type",
        "upper_color",
        "upper_pattern",
        "upper_material",
        "lower_type",
        "lower_color",
        "shoes_type",
        "shoes_color",
        "bag",
        "hat",
        "glasses",
        "skin_tone",
    ):
        assert d[key]


def test_identities_are_mostly_unique() -> None:
    keys = (
        "gender",
        "build",
        "hair_style",
        "hair_color",
        "upper_type",
        "upper_color",
        "upper_pattern",
        "lower_type",
        "lower_color",
        "shoes_type",
        "shoes_color",
        "bag",
        "bag_color",
        "hat",
        "glasses",
    )
    sigs = {tuple(getattr(sample_identity(p, 0), k) for k in keys) for p in range(1, 201)}
    assert len(sigs) >= 195
    for p in range(1, 201):
        a = sample_identity(p, 0)
        assert (a.lower_type == "none") == (a.upper_type == "dress")
        if a.lower_type == "jeans":
            assert a.lower_material == "denim"
        if a.bag == "none":
            assert a.bag_color == "none"


# ------------------------------------------------------------------ layouts


def test_market_layout(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    market = root / "Market-1501-v15.09.15"
    test_pids, train_pids = set(man.test_pids), set(man.train_pids)
    rgb_ids = {c["id"] for c in man.cameras if c["modality"] == "rgb"}
    seen: dict[str, list[tuple[int, int]]] = {}
    for split in ("bounding_box_train", "bounding_box_test", "query"):
        names = sorted(p.name for p in (market / split).iterdir())
        assert names, split
        for n in names:
            assert MARKET_RE.match(n), n
            _pid_s, cam_s = PARSE_RE.search(n).groups()  # type: ignore[union-attr]
            assert int(cam_s) in rgb_ids
        seen[split] = [
            tuple(map(int, PARSE_RE.search(n).groups()))  # type: ignore[misc,union-attr]
            for n in names
        ]
    assert {p for p, _ in seen["bounding_box_train"]} <= train_pids
    assert {p for p, _ in seen["query"]} <= test_pids
    gallery = seen["bounding_box_test"]
    assert {p for p, _ in gallery} - {0, -1} <= test_pids
    assert any(p == 0 for p, _ in gallery) and any(p == -1 for p, _ in gallery)
    assert any(
        n.startswith("-1_c")
        for n in map(lambda p: p.name, (market / "bounding_box_test").iterdir())
    )
    # one query per identity per camera, each with a cross-camera gallery match
    assert len(seen["query"]) == len(set(seen["query"]))
    for pid, cam in seen["query"]:
        assert any(p == pid and c != cam for p, c in gallery)
    all_names = [n for s in seen.values() for n in s]
    assert len(all_names) == sum(len(list((market / s).iterdir())) for s in seen)


def test_sysu_layout(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    sysu = root / "SYSU-MM01"
    ids = {}
    for name in ("train_id", "val_id", "test_id"):
        text = (sysu / "exp" / f"{name}.txt").read_text()
        assert len(text.strip().splitlines()) == 1
        ids[name] = [int(x) for x in text.strip().split(",") if x]
    assert set(ids["test_id"]) == set(man.test_pids)
    assert set(ids["train_id"]) | set(ids["val_id"]) == set(man.train_pids)
    assert not set(ids["train_id"]) & set(ids["val_id"])
    for cam in range(1, 7):
        assert (sysu / f"cam{cam}").is_dir()
    for cam in (3, 6):  # IR folders: 3-channel-identical JPEGs
        files = sorted((sysu / f"cam{cam}").rglob("*.jpg"))
        assert files
        img = cv2.imread(str(files[0]))
        assert img.shape == (256, 128, 3)
        assert np.array_equal(img[:, :, 0], img[:, :, 1])
        assert np.array_equal(img[:, :, 1], img[:, :, 2])
    for f in sysu.rglob("cam*/*/*.jpg"):
        assert re.fullmatch(r"\d{4}", f.parent.name) and re.fullmatch(r"\d{4}\.jpg", f.name)
    rgb = cv2.imread(str(next((sysu / "cam1").rglob("*.jpg"))))
    assert not np.array_equal(rgb[:, :, 0], rgb[:, :, 2])


def test_held_out_cameras_only_show_test_identities(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    held = [c for c in man.cameras if c["held_out"]]
    assert {c["modality"] for c in held} == {"rgb", "ir"}
    test = set(man.test_pids)
    held_ids = {c["id"] for c in held}
    pids_on_held = {i["pid"] for i in man.images if i["camera"] in held_ids and i["pid"] > 0}
    assert pids_on_held and pids_on_held <= test
    for c in held:  # and on disk, in the SYSU folder of the held-out camera
        if c["modality"] == "ir":
            folder = root / "SYSU-MM01" / f"cam{c['sysu_cam']}"
            assert {int(p.name) for p in folder.iterdir()} <= test
    for v in man.videos:
        if v["camera"] in held_ids:
            assert set(v["pids"]) <= test


def test_pku_layout(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    pku = root / "PKUSketchRE-ID_V1"
    for ident in man.identities:
        pid = ident["pid"]
        assert (pku / "sketch" / f"{pid}.jpg").is_file()
        photos = [pku / "photo" / f"{pid}_{k}.jpg" for k in (1, 2)]
        assert all(p.is_file() for p in photos)
        cams = {
            i["camera"]
            for i in man.images
            for f in i["files"]
            if f in {f"PKUSketchRE-ID_V1/photo/{pid}_{k}.jpg" for k in (1, 2)}
        }
        assert len(cams) == 2
        assert 1 <= len(ident["sketches"]) <= 2
        assert all((root / s).is_file() for s in ident["sketches"])
    assert not list((pku / "sketch").glob("*_2.jpg"))


def test_cuhk_layout(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    data = json.loads((root / "CUHK-PEDES" / "reid_raw.json").read_text())
    assert isinstance(data, list) and data
    pids = {i["pid"] for i in man.identities}
    for e in data:
        assert set(e) == {"split", "captions", "file_path", "processed_tokens", "id"}
        assert e["split"] in ("train", "val", "test")
        assert isinstance(e["id"], int) and e["id"] in pids
        assert (root / "CUHK-PEDES" / "imgs" / e["file_path"]).is_file()
        assert e["captions"] and all(isinstance(c, str) for c in e["captions"])
        assert e["processed_tokens"] == [tokenize(c) for c in e["captions"]]
        want = "test" if e["id"] in man.test_pids else None
        if want:
            assert e["split"] == "test"
    for ident in man.identities:  # every caption of every identity is in the json once
        caps = [c for e in data if e["id"] == ident["pid"] for c in e["captions"]]
        assert sorted(caps) == sorted(ident["captions"])
        assert 2 <= len(ident["captions"]) <= 3


def test_manifest_roundtrip_and_counts(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    loaded = WorldManifest.load(root)
    assert loaded == man
    assert loaded.image_size == [256, 128]
    assert loaded.seed == 0 and loaded.generator_version
    assert len(loaded.identities) == 6
    assert {i["split"] for i in loaded.identities} == {"train", "test"}
    assert loaded.attributes(1) == sample_identity(1, 0)
    files = {f for i in loaded.images for f in i["files"]}
    assert all((root / f).is_file() for f in files)
    assert loaded.counts["image_files"] == len(files) + sum(
        len(i["sketches"]) + 1 for i in loaded.identities
    )
    assert all(p in loaded.layouts for p in ("market1501", "sysu_mm01", "pku_sketch", "cuhk_pedes"))
    for i in loaded.identities:  # default counts per identity
        ims = [x for x in loaded.images if x["pid"] == i["pid"]]
        rgb_cams = {x["camera"] for x in ims if x["modality"] == "rgb"}
        ir_cams = {x["camera"] for x in ims if x["modality"] == "ir"}
        assert len(rgb_cams) == (4 if i["split"] == "test" else 3)
        assert len(ir_cams) == (2 if i["split"] == "test" else 1)
        for cam in rgb_cams | ir_cams:
            assert 2 <= sum(1 for x in ims if x["camera"] == cam) <= 4


# ------------------------------------------------------------------ modalities


def test_render_shapes_and_modality_checks() -> None:
    a = sample_identity(3, 0)
    rgb_cam, ir_cam = Camera(1, "rgb", "c1"), Camera(5, "ir", "c5")
    img = render_rgb(a, np.random.default_rng(0), rgb_cam)
    assert img.shape == (256, 128, 3) and img.dtype == np.uint8
    ir = render_ir(a, np.random.default_rng(0), ir_cam)
    assert ir.shape == (256, 128) and ir.dtype == np.uint8
    assert np.array_equal(render_rgb(a, np.random.default_rng(0), rgb_cam), img)
    with pytest.raises(ValueError):
        render_rgb(a, np.random.default_rng(0), ir_cam)
    with pytest.raises(ValueError):
        render_ir(a, np.random.default_rng(0), rgb_cam)


def _find(pred: object) -> IdentityAttributes:
    for p in range(1, 500):
        a = sample_identity(p, 0)
        if pred(a):  # type: ignore[operator]
            return a
    raise AssertionError("no such identity")


def test_ir_ignores_clothing_colour_but_rgb_does_not() -> None:
    a = _find(
        lambda a: (
            a.upper_material == "cotton" and a.upper_pattern == "plain" and a.upper_color != "red"
        )
    )
    b = dataclasses.replace(
        a,
        upper_color="red",
        lower_color="white" if a.lower_color != "white" else "black",
        shoes_color="red",
    )
    cam_ir, cam_rgb = Camera(5, "ir", "ir"), Camera(1, "rgb", "rgb")
    for seed in range(3):
        ir_a = render_ir(a, np.random.default_rng(seed), cam_ir)
        ir_b = render_ir(b, np.random.default_rng(seed), cam_ir)
        assert np.array_equal(ir_a, ir_b)
        rgb_a = render_rgb(a, np.random.default_rng(seed), cam_rgb).astype(int)
        rgb_b = render_rgb(b, np.random.default_rng(seed), cam_rgb).astype(int)
        assert (np.abs(rgb_a - rgb_b).max(axis=2) > 40).mean() > 0.03


def test_ir_follows_materials_and_body_heat() -> None:
    a = _find(
        lambda a: (
            a.upper_type == "t-shirt"
            and a.upper_material == "cotton"
            and a.upper_pattern == "plain"
        )
    )
    coat = dataclasses.replace(a, upper_type="coat", upper_material="wool", sleeves="long")
    cam = Camera(5, "ir", "ir")
    ir_a = render_ir(a, np.random.default_rng(1), cam).astype(int)
    ir_c = render_ir(coat, np.random.default_rng(1), cam).astype(int)
    diff = ir_a - ir_c
    assert (diff > 15).mean() > 0.03  # a thick wool coat is colder than a cotton t-shirt
    from aioreid.encoder.data.synth.render_ir import material_levels

    lv = material_levels(a)
    assert lv["skin_face"] > lv["upper"] > lv["bag"]
    assert material_levels(coat)["upper"] < lv["upper"]


def test_sketch_is_grayscale_line_drawing() -> None:
    a = sample_identity(5, 0)
    sk = render_sketch(a, np.random.default_rng(0))
    assert sk.shape == (256, 128) and sk.dtype == np.uint8
    assert (sk >= 230).mean() > 0.6  # white paper dominates
    assert (sk < 100).mean() > 0.01  # there are dark strokes
    assert np.array_equal(sk, render_sketch(a, np.random.default_rng(0)))
    assert not np.array_equal(sk, render_sketch(a, np.random.default_rng(1)))
    dark = _find(lambda x: x.upper_color == "black" and x.upper_pattern == "plain")
    light = dataclasses.replace(dark, upper_color="white")
    ink_dark = (render_sketch(dark, np.random.default_rng(2)) < 200).mean()
    ink_light = (render_sketch(light, np.random.default_rng(2)) < 200).mean()
    assert ink_dark > ink_light  # dark garments are hatched


def _colour_ok(key: str, word: str, a: IdentityAttributes) -> bool:
    attr = {
        "upper_color": a.upper_color,
        "lower_color": a.lower_color,
        "shoes_color": a.shoes_color,
        "bag_color": a.bag_color,
        "hat_color": a.hat_color,
        "pattern_color": a.pattern_color,
    }
    if key == "hair_color":
        return word in colour_words(a.hair_color, hair=True)
    return word in colour_words(attr[key])


def test_captions_are_consistent_with_attributes() -> None:
    for pid in range(1, 80):
        a = sample_identity(pid, 0)
        for k in range(3):
            cap = describe_structured(a, np.random.default_rng([pid, k]))
            text = cap.text.lower()
            assert len(cap.groups) >= 3, cap
            assert cap.text == describe(a, np.random.default_rng([pid, k]))
            for key, word in cap.mentions.items():
                assert word.lower() in text, (key, word, cap.text)
                if key.endswith("_color"):
                    assert _colour_ok(key, word, a), (key, word, a)
                elif key == "hair_style":
                    assert word in SYNONYMS["hair_style"][a.hair_style] or (
                        a.hair_style == "ponytail" and word == "ponytail"
                    ), (word, a.hair_style)
                else:
                    value = getattr(a, key)
                    assert word in SYNONYMS[key][value], (key, word, value)
            other = "woman" if a.gender == "male" else " man "
            if "gender" in cap.mentions:
                assert other not in f" {text} ".replace(".", " ")


def test_captions_vary() -> None:
    a = sample_identity(4, 0)
    texts = {describe(a, np.random.default_rng(k)) for k in range(20)}
    assert len(texts) >= 15
    starts = {t.split()[0] for t in texts}
    assert len(starts) >= 2


# ------------------------------------------------------------------ video


def test_videos_readable_with_annotations(world: tuple[Path, WorldManifest]) -> None:
    root, man = world
    assert len(man.videos) == 6
    for v in man.videos:
        ann = json.loads((root / v["annotation"]).read_text())
        cap = cv2.VideoCapture(str(root / v["path"]))
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (120, 160, 3)
            n += 1
        cap.release()
        assert n == ann["num_frames"] == len(ann["frames"]) == v["num_frames"] == 5
        assert ann["fps"] == 5
        datetime.fromisoformat(ann["start"])
        boxes = 0
        for f in ann["frames"]:
            datetime.fromisoformat(f["time"])
            for o in f["objects"]:
                x, y, w, h = o["box"]
                assert o["pid"] in v["pids"]
                assert x >= 0 and y >= 0 and w > 0 and h > 0
                assert x + w <= ann["width"] and y + h <= ann["height"]
                boxes += 1
        assert boxes > 0


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SynthConfig(identities=1)
    with pytest.raises(ValueError):
        SynthConfig(rgb_cameras=10)
    with pytest.raises(ValueError):
        SynthConfig(images_per_camera=(3, 2))
    with pytest.raises(ValueError):
        SynthConfig(train_fraction=1.0)
    assert SynthConfig().to_dict()["images_per_camera"] == [2, 4]
