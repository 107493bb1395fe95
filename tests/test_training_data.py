"""Missing-modality synthesis, transforms, the multimodal training set and the PK sampler."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aioreid.encoder.data.records import Modality, Record
from aioreid.encoder.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageReadError,
    denormalize,
    eval_transform,
    load_image,
)
from aioreid.encoder.training.data import BATCH_KEYS, STAGES, MultimodalTrainSet, collate
from aioreid.encoder.training.missing_modality import (
    channel_augment,
    line_art,
    line_art_methods,
    register_line_art,
)
from aioreid.encoder.training.sampler import PKSampler
from aioreid.encoder.training.transforms import train_transform

SIZE = (32, 16)


def person(h: int = 64, w: int = 32, seed: int = 0) -> np.ndarray:
    """A tiny 'person': coloured torso and legs on a noisy background (RGB uint8)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), (120, 130, 110), np.uint8)
    img = (img + rng.normal(0, 4, img.shape)).clip(0, 255).astype(np.uint8)
    colour = tuple(int(c) for c in rng.integers(20, 236, 3))
    cv2.rectangle(img, (w // 4, h // 5), (3 * w // 4, h // 2), colour, -1)
    cv2.rectangle(img, (w // 4, h // 2), (3 * w // 4, 9 * h // 10), (30, 40, 92), -1)
    return img


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), bgr)
    return path


# -- synthesis ----------------------------------------------------------------------------------
def test_channel_augment_replicates_one_channel_and_is_deterministic() -> None:
    img = person()
    seen = set()
    for s in range(20):
        out = channel_augment(img, np.random.default_rng(s), p_gray=0.0, p_erase=0.0)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
        matches = [c for c in range(3) if (out[..., 0] == img[..., c]).all()]
        assert matches
        seen.update(matches)
        again = channel_augment(img, np.random.default_rng(s), p_gray=0.0, p_erase=0.0)
        assert (again == out).all()
    assert len(seen) >= 2  # the channel is really random
    gray = channel_augment(img, np.random.default_rng(0), p_gray=1.0)
    assert (gray[..., 0] == cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)).all()
    flipped = img[:, ::-1]  # non-contiguous views are accepted
    assert channel_augment(flipped, np.random.default_rng(0)).shape == img.shape
    erased = channel_augment(img, np.random.default_rng(3), p_gray=0.0, p_erase=1.0)
    assert (erased[..., 0] == erased[..., 2]).all()


def test_line_art_dark_lines_on_white() -> None:
    img = np.full((64, 32, 3), 200, np.uint8)
    img[20:44, 8:24] = (30, 30, 160)  # a dark box: its outline must be drawn
    for method in ("xdog", "canny"):
        out = line_art(img, method=method)
        assert out.shape == (64, 32) and out.dtype == np.uint8
        assert (out > 200).mean() > 0.7  # mostly white paper
        assert out[2:14, 2:30].min() > 200  # flat background stays white
        assert out[30:34, 12:20].min() > 200  # flat interior stays white
        border = np.concatenate([out[18:46, 6:10].ravel(), out[18:46, 22:26].ravel()])
        assert border.min() < 100  # dark lines where the edges are
        assert not np.array_equal(out, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    assert set(line_art_methods()) >= {"xdog", "canny"}
    rng = np.random.default_rng(1)
    a = line_art(person(), rng=rng, jitter=True)
    b = line_art(person(), rng=np.random.default_rng(1), jitter=True)
    assert (a == b).all()


def test_register_line_art_hook() -> None:
    register_line_art("invert_test", lambda rgb, rng: 255 - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    img = person()
    out = line_art(img, method="invert_test")
    assert out.shape == img.shape[:2]
    with pytest.raises(ValueError, match="already registered"):
        register_line_art("invert_test", lambda rgb, rng: rgb)
    register_line_art("bad_test", lambda rgb, rng: rgb)  # returns the wrong shape
    with pytest.raises(ValueError, match="must return"):
        line_art(img, method="bad_test")
    with pytest.raises(ValueError, match="unknown line-art method"):
        line_art(img, method="nope")


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8,), np.uint8),
        [[1, 2], [3, 4]],
    ],
)
def test_synthesis_rejects_bad_input(bad: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        channel_augment(bad, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected"):
        line_art(bad)  # type: ignore[arg-type]


def test_channel_augment_rejects_gray_and_bad_probability() -> None:
    with pytest.raises(ValueError, match="HxWx3"):
        channel_augment(np.zeros((8, 8), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="p_gray"):
        channel_augment(person(), np.random.default_rng(0), p_gray=2.0)


# -- transforms ---------------------------------------------------------------------------------
def test_transforms_shapes_normalisation_and_determinism() -> None:
    img = person(50, 30)
    ev = eval_transform((64, 32))(img)
    assert ev.shape == (3, 64, 32) and ev.dtype == torch.float32
    flat = np.full((10, 10, 3), (124, 116, 104), np.uint8)  # ≈ the ImageNet mean pixel
    assert eval_transform((16, 16))(flat).abs().max() < 0.02
    white = eval_transform((16, 16))(np.full((10, 10, 3), 255, np.uint8))
    for c in range(3):
        expect = (1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(white[c], torch.tensor(expect), atol=1e-5)

    t1 = train_transform((64, 32), Modality.RGB, seed=5)
    t2 = train_transform((64, 32), Modality.RGB, seed=5)
    a, b = [t1(img) for _ in range(3)], [t2(img) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1])
    x = train_transform((64, 32), "rgb")(img, np.random.default_rng(0))
    y = train_transform((64, 32), "rgb", seed=99)(img, np.random.default_rng(0))
    assert torch.equal(x, y)  # an explicit rng wins over the internal seed


@pytest.mark.parametrize("modality", ["ir", "sketch"])
def test_gray_modalities_are_replicated(modality: str) -> None:
    gray = person()[..., 1]
    for t in (train_transform((32, 16), modality, erase_p=1.0), eval_transform((32, 16), modality)):
        for src in (gray, person()):  # HxW and an RGB input: both become replicated gray
            out = denormalize(t(src))
            assert out.shape == (32, 16, 3)
            assert np.abs(out[..., 0] - out[..., 1]).max() < 1e-3
            assert np.abs(out[..., 0] - out[..., 2]).max() < 1e-3


def test_transform_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        eval_transform()(np.zeros((8, 8, 3), np.float64))
    with pytest.raises(ValueError, match="size"):
        train_transform((4, 4))
    with pytest.raises(ValueError, match="text"):
        train_transform((32, 16), "text")


def test_load_image_round_trip_and_errors(tmp_path: Path) -> None:
    img = person()
    got = load_image(write(tmp_path / "a.png", img))
    assert got.dtype == np.uint8 and (got == img).all()  # RGB order preserved
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageReadError, match=r"corrupt\.jpg"):
        load_image(bad)
    good = write(tmp_path / "t.jpg", img).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match=r"truncated\.jpg"):
        load_image(tmp_path / "truncated.jpg")
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        load_image(tmp_path / "missing.png")


# -- dataset ------------------------------------------------------------------------------------
@pytest.fixture()
def world(tmp_path: Path) -> list[Record]:
    """pids 10..13 with 3 RGB images each; real IR for 10, 11; a real sketch for 10;
    captions for 10 (per image), 11 (one image) and 12; one junk (-1) RGB image."""
    recs: list[Record] = []
    for pid in (10, 11, 12, 13):
        for n in range(3):
            path = write(tmp_path / "rgb" / f"{pid}_{n}.png", person(seed=pid * 10 + n))
            recs.append(Record(path, pid, n + 1, Modality.RGB))
            if pid == 10:
                recs.append(Record(path, pid, -1, Modality.TEXT, text=f"person ten image {n}"))
        if pid in (10, 11):
            for n in range(2):
                ir = write(tmp_path / "ir" / f"{pid}_{n}.png", person(seed=99 + n)[..., 0])
                recs.append(Record(ir, pid, 3, Modality.IR))
    sk = write(tmp_path / "sketch" / "10.png", np.full((64, 32), 240, np.uint8))
    recs.append(Record(sk, 10, -1, Modality.SKETCH))
    recs.append(Record(tmp_path / "rgb" / "11_0.png", 11, -1, Modality.TEXT, text="eleven"))
    recs.append(Record(None, 12, -1, Modality.TEXT, text="twelve a"))
    recs.append(Record(None, 12, -1, Modality.TEXT, text="twelve b"))
    recs.append(Record(write(tmp_path / "junk.png", person()), -1, 1, Modality.RGB))
    return recs


def test_dataset_real_and_synthesised_modalities(world: list[Record]) -> None:
    ds = MultimodalTrainSet.from_records(world, size=SIZE, seed=3)
    assert len(ds) == 12 and ds.num_classes == 4
    assert ds.pid_map == {10: 0, 11: 1, 12: 2, 13: 3}
    assert sorted(set(ds.labels)) == [0, 1, 2, 3]
    for i in range(len(ds)):
        item = ds[i]
        pid = ds.records[i].pid
        for key in ("rgb", "ir", "sketch"):
            assert item[key].shape == (3, *SIZE) and item[key].dtype == torch.float32
        assert item["pid"] == ds.pid_map[pid]
        assert item["has_ir"] and item["has_sketch"]
        assert item["ir_real"] == (pid in (10, 11))
        assert item["sketch_real"] == (pid == 10)
        assert item["has_text"] == (pid in (10, 11, 12))
        if pid == 10:  # own-image caption preferred
            assert item["text"] == f"person ten image {ds.records[i].path.stem[-1]}"
        elif pid == 11:
            assert item["text"] == "eleven"
        elif pid == 12:
            assert item["text"] in ("twelve a", "twelve b")
        else:
            assert item["text"] == ""

    # synthesised IR is exactly channel_augment of the (resized) RGB with the item's generator
    i = next(j for j, r in enumerate(ds.records) if r.pid == 13)
    views = ds.views(i)
    assert not views["ir_real"] and not views["sketch_real"]
    expect = channel_augment(views["rgb"], ds.item_rng(i, "ir"))
    assert np.array_equal(views["ir"], expect)
    ir = denormalize(ds[i]["ir"])
    assert np.abs(ir[..., 0] - ir[..., 1]).max() < 1e-3
    assert np.abs(ir[..., 1] - ir[..., 2]).max() < 1e-3
    lines = line_art(views["rgb"], rng=ds.item_rng(i, "sketch"), jitter=True)
    assert np.array_equal(views["sketch"][..., 0], lines)

    # deterministic per (seed, epoch, index, repeat)
    assert torch.equal(ds[i]["rgb"], ds[i]["rgb"])
    assert not torch.equal(ds[(i, 0)]["rgb"], ds[(i, 1)]["rgb"])
    first = ds[i]["rgb"]
    ds.set_epoch(1)
    assert not torch.equal(first, ds[i]["rgb"])


def test_dataset_stage_one_synthesises_everything(world: list[Record]) -> None:
    ds = MultimodalTrainSet.for_stage(world, 1, size=SIZE)
    assert (ds.use_real_ir, ds.use_real_sketch) == (False, False) and STAGES[2]["use_real_ir"]
    items = [ds[i] for i in range(len(ds))]
    assert not any(it["ir_real"] or it["sketch_real"] for it in items)
    assert all(it["has_ir"] and it["has_sketch"] for it in items)
    cached = MultimodalTrainSet.for_stage(world, 1, size=SIZE, cache_images=True)
    for i in (0, 5):
        a, b = cached[i], cached[i]  # second call served from the cache
        assert torch.equal(a["sketch"], items[i]["sketch"]) and torch.equal(b["rgb"], a["rgb"])


def test_dataset_without_synthesis_gives_zero_images(world: list[Record]) -> None:
    ds = MultimodalTrainSet.from_records(world, size=SIZE, synthesize_missing=False)
    for i in range(len(ds)):
        item = ds[i]
        pid = ds.records[i].pid
        assert item["has_ir"] == (pid in (10, 11))
        assert item["has_sketch"] == (pid == 10)
        if not item["has_ir"]:
            assert torch.count_nonzero(item["ir"]) == 0
        if not item["has_sketch"]:
            assert torch.count_nonzero(item["sketch"]) == 0
    ds = MultimodalTrainSet.from_records(
        world, size=SIZE, synthesize_missing=False, use_real_ir=False, use_real_sketch=False
    )
    batch = collate([ds[i] for i in range(4)])
    assert not batch["has_ir"].any() and not batch["has_sketch"].any()
    assert torch.count_nonzero(batch["ir"]) == 0


def test_collate_keys_and_dtypes(world: list[Record]) -> None:
    ds = MultimodalTrainSet.from_records(world, size=SIZE)
    batch = collate([ds[i] for i in range(5)])
    assert tuple(batch) == BATCH_KEYS
    assert set(batch) == {
        *("rgb", "ir", "sketch", "text", "attr_text", "pids", "has_ir", "has_sketch", "has_text")
    }
    # attribute-binding targets: every caption of the identity, so they contain its caption
    for text, words in zip(batch["text"], batch["attr_text"], strict=True):
        assert text in words
    for key in ("rgb", "ir", "sketch"):
        assert batch[key].shape == (5, 3, *SIZE) and batch[key].dtype == torch.float32
    assert batch["pids"].dtype == torch.long and batch["pids"].shape == (5,)
    for key in ("has_ir", "has_sketch", "has_text"):
        assert batch[key].dtype == torch.bool and batch[key].shape == (5,)
    assert isinstance(batch["text"], list) and all(isinstance(t, str) for t in batch["text"])


def test_dataset_namespaces_sources_and_validates(world: list[Record], tmp_path: Path) -> None:
    other = [Record(tmp_path / "rgb" / "13_0.png", 10, 1, Modality.RGB)]  # pid 10 of another set
    ds = MultimodalTrainSet.from_records({"a": world, "b": other}, size=SIZE)
    assert ds.num_classes == 5 and ("b", 10) in ds.pid_map
    b_item = ds[len(ds) - 1]
    assert not b_item["ir_real"] and b_item["text"] == ""  # not mixed with a's pid 10
    with pytest.raises(ValueError, match="empty"):
        MultimodalTrainSet.from_records([r for r in world if r.modality is not Modality.RGB])
    with pytest.raises(ValueError, match="stage"):
        MultimodalTrainSet.for_stage(world, 3)


def test_dataset_corrupt_image_names_the_file(world: list[Record], tmp_path: Path) -> None:
    bad = tmp_path / "broken_image.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    ds = MultimodalTrainSet.from_records([*world, Record(bad, 42, 1, Modality.RGB)], size=SIZE)
    index = next(i for i, r in enumerate(ds.records) if r.path == bad)
    with pytest.raises(ImageReadError, match=r"broken_image\.jpg"):
        ds[index]


def test_dataloader_with_pk_sampler(world: list[Record]) -> None:
    ds = MultimodalTrainSet.from_records(world, size=SIZE)
    sampler = PKSampler(ds.labels, p=2, k=2, seed=0, tag_repeats=True)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    batches = list(loader)
    assert len(batches) == len(sampler) == 3
    for batch in batches:
        assert batch["rgb"].shape == (4, 3, *SIZE)
        assert len(set(batch["pids"].tolist())) == 2


# -- sampler ------------------------------------------------------------------------------------
def test_pk_sampler_batches() -> None:
    pids = [i // 5 for i in range(40)] + [100, 101, 101]  # 8 ids with 5, one with 1, one with 2
    sampler = PKSampler(pids, p=4, k=4, seed=7)
    assert len(sampler) == len(pids) // 16
    for _ in range(3):
        batches = list(sampler)
        assert len(batches) == len(sampler)
        for batch in batches:
            assert len(batch) == 16
            ids = [pids[i] for i in batch]
            assert len(set(ids)) == 4
            assert all(ids.count(x) == 4 for x in set(ids))
    sampler.set_epoch(0)
    first = list(sampler)
    assert first == list(PKSampler(pids, p=4, k=4, seed=7))
    sampler.set_epoch(1)
    assert list(sampler) != first
    small = PKSampler([0, 1, 1], p=2, k=3, seed=0, num_batches=5, tag_repeats=True)
    for batch in small:
        assert len(batch) == 6
        assert batch.count((0, 0)) == 1 and batch.count((0, 2)) == 1  # copies numbered
    with pytest.raises(ValueError, match="identities"):
        PKSampler([0, 0, 1], p=3, k=2)


def test_rgb_gray_p_turns_rgb_views_colour_free() -> None:
    from aioreid.encoder.training.transforms import TrainTransform

    img = np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)
    grey = TrainTransform(size=(64, 32), gray_p=1.0, erase_p=0, jitter_p=0, flip_p=0)(img)
    colour = TrainTransform(size=(64, 32), gray_p=0.0, erase_p=0, jitter_p=0, flip_p=0)(img)
    unnorm = grey * torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    unnorm += torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    assert torch.allclose(unnorm[0], unnorm[1], atol=1e-5)
    assert torch.allclose(unnorm[1], unnorm[2], atol=1e-5)
    assert not torch.allclose(grey, colour)
    with pytest.raises(ValueError, match="gray_p"):
        TrainTransform(size=(64, 32), gray_p=1.5)
