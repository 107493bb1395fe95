"""`aioreid evaluate` rows for real datasets, on each dataset's fixture tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_datasets import DATASET_BUILDERS
from test_zeroshot import OracleEmbedder

from aioreid.encoder.zeroshot.dataset_eval import evaluate_dataset

EXPECTED_ROWS = {
    "market1501": {"RGB→RGB"},
    "msmt17": {"RGB→RGB"},
    "sysu_mm01": {"IR→RGB (all-search)", "IR→RGB (indoor-search)"},
    "regdb": {"IR→RGB", "RGB→IR"},
    "llcm": {"IR→RGB", "RGB→IR"},
    "pku_sketch": {"sketch→RGB"},
    "cuhk_pedes": {"text→RGB"},
    "icfg_pedes": {"text→RGB"},
    "rstpreid": {"text→RGB"},
}


@pytest.mark.parametrize("name", sorted(DATASET_BUILDERS))
def test_each_dataset_gives_its_rows_and_an_oracle_scores_100(name: str, tmp_path: Path) -> None:
    DATASET_BUILDERS[name](tmp_path)
    options = {"pku_sketch": 1, "regdb": 2, "sysu_mm01": 2}
    res = evaluate_dataset(
        OracleEmbedder(), name, tmp_path, trials=options.get(name, 1), pku_num_train=4
    )
    assert set(res.rows) == EXPECTED_ROWS[name]
    for row in res.rows.values():
        assert row["R1"] == pytest.approx(100.0)
        assert row["mAP"] == pytest.approx(100.0)


def test_unknown_dataset_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known: synthetic"):
        evaluate_dataset(OracleEmbedder(), "imagenet", tmp_path)
