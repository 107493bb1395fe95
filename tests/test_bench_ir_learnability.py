"""The IR learnability benchmark: oracle, baseline and plain-CNN rows on a tiny world."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    path = ROOT / "benchmarks" / "bench_ir_learnability.py"
    spec = importlib.util.spec_from_file_location("bench_ir_learnability", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_attribute_oracle_tells_held_out_people_apart(tiny_world: Path) -> None:
    rows = _bench().attribute_oracle(tiny_world)
    # 11 shape attributes tell 3 held-out people apart; nothing in the oracle depends on pixels
    assert rows["IR→RGB"]["R1"] == 100.0


def test_benchmark_writes_every_row_and_the_ratio(
    tiny_world: Path, tmp_path: Path, one_torch_thread: None
) -> None:
    out = tmp_path / "irl.json"
    bench = _bench()
    rc = bench.main(
        ["--world", str(tiny_world), "--evals", "1,2", "--max-steps", "1", "--json", str(out)]
    )
    assert rc == 0
    data = json.loads(out.read_text())
    names = list(data["rows"])
    assert names[:2] == ["attribute oracle", "histogram baseline"]
    cnn = [n for n in names if n.startswith("plain CNN")]
    assert len(cnn) == 2 and cnn[1].endswith("(2 steps)")  # --max-steps 1 per leg, two legs
    for name in cnn:
        assert set(data["rows"][name]) == {"RGB→RGB", "IR→RGB", "RGB→IR"}
        assert 0.0 <= data["rows"][name]["IR→RGB"]["mAP"] <= 100.0
    assert set(data["ir_rgb_map_ratio_to_baseline"]) == set(cnn)
