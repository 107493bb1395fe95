"""The console's pages with Streamlit's AppTest, against the API served in-process (embedded
profile in a temporary home, tiny encoder, a bootstrap API key)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from platform_fixtures import jpeg, person_image
from streamlit.testing.v1 import AppTest

from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.ui.format import attribute_filter, hit_caption, job_progress, sketch_png

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
KEY = "console-test-key-0123456789"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[None]:
    from aioreid.platform.config import get_settings
    from aioreid.ui import connection

    tmp = tmp_path_factory.mktemp("console")
    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        tmp / "final.pt"
    )
    env = pytest.MonkeyPatch()
    env.setenv("AIOREID_HOME", str(tmp / "home"))
    env.setenv("AIOREID_ENCODER__CHECKPOINT", str(ckpt))
    env.setenv("AIOREID_API__BOOTSTRAP_API_KEY", KEY)
    env.delenv(connection.API_URL_ENV, raising=False)
    get_settings.cache_clear()
    connection._in_process_http.cache_clear()
    client = connection.make_client(KEY)
    job = client.upload_files(
        [(f"p{i}.jpg", jpeg(person_image(i))) for i in range(12)] + [("bad.jpg", b"nope")],
        camera="gate",
    )
    assert client.wait_for_job(job.job_id, timeout=120).status == "done"
    yield
    connection._in_process_http.cache_clear()
    env.undo()
    get_settings.cache_clear()
    os.environ.pop("AIOREID_API__BOOTSTRAP_API_KEY", None)


def _signed_in() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.text_input[0].input(KEY)
    at.button[0].click()
    at.run()
    assert not at.exception, at.exception
    return at


def _button(at: AppTest, label: str):  # type: ignore[no-untyped-def]
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    return found[0]


def test_wrong_key_is_refused_readably(console: None) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input[0].input("not-a-key")
    at.button[0].click()
    at.run()
    assert [e.value for e in at.error] == ["That API key is not valid (or was revoked)."]
    assert not at.exception


def test_text_search_shows_results_and_creates_an_identity(console: None) -> None:
    at = _signed_in()
    assert [t.value for t in at.title] == ["Search"]
    assert _button(at, "Search").disabled  # nothing to search with yet
    at.text_area[0].input("a person in a red top").run()
    _button(at, "Search").click()
    at.run()
    summary = at.caption[0].value
    assert summary.startswith("12 sightings in") and "query parts: text" in summary
    assert len([b for b in at.button if b.label == "Similar"]) == 12
    _button(at, "New identity").click()
    at.run()
    assert at.success and "is now identity" in at.success[0].value
    assert any(b.label.startswith("ID ") for b in at.button)


def test_find_similar_and_back(console: None) -> None:
    at = _signed_in()
    at.text_area[0].input("anyone").run()
    _button(at, "Search").click()
    at.run()
    _button(at, "Similar").click()
    at.run()
    assert any("similar to sighting" in i.value for i in at.info)
    assert len([b for b in at.button if b.label == "Similar"]) == 11  # itself left out
    _button(at, "Back to my query").click()
    at.run()
    assert not at.info


def test_bad_attribute_filter_is_a_message_not_a_traceback(console: None) -> None:
    at = _signed_in()
    at.text_input(key="f_attrs").input("bag").run()
    assert any("not key=value" in e.value for e in at.sidebar.error)
    assert not at.exception


def test_review_buttons_confirm_into_an_identity(console: None) -> None:
    at = _signed_in()
    at.text_area[0].input("anyone").run()
    _button(at, "Search").click()
    at.run()
    if any(b.label == "New identity" for b in at.button):
        _button(at, "New identity").click()
        at.run()
    ident = int(next(b.label for b in at.button if b.label.startswith("ID ")).split()[1])
    at.number_input(key="o_review_for").set_value(ident).run()
    ok = [b for b in at.button if b.label == "✓ Match"]
    assert len(ok) == 12
    ok[-1].click()
    at.run()
    assert at.success and f"confirmed as identity {ident}" in at.success[0].value


def _identity_script() -> None:
    from aioreid.ui import views

    views.identity_page()


def _ingest_script() -> None:
    from aioreid.ui import views

    views.ingest_page()


def _index_script() -> None:
    from aioreid.ui import views

    views.index_page()


def _page(script, **state) -> AppTest:  # type: ignore[no-untyped-def]
    from aioreid.ui.connection import make_client

    at = AppTest.from_function(script, default_timeout=120)
    at.session_state["client"] = make_client(KEY)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def test_identity_page_split_and_merge(console: None) -> None:
    from aioreid.ui.connection import make_client

    c = make_client(KEY)
    hits = c.search(text="anyone", limit=12).hits
    a = c.assign(hits[0].sighting_id, None, label="walker").identity_id
    c.confirm(hits[1].sighting_id, a)
    c.confirm(hits[2].sighting_id, a)
    b = c.assign(hits[3].sighting_id, None).identity_id
    at = _page(_identity_script, identity_id=a)
    assert at.subheader[0].value == f"walker {a}: 3 sightings"
    at.checkbox(key=f"sel-{hits[2].sighting_id}").check().run()
    _button(at, "Split into a new identity").click()
    at.run()
    assert "1 sightings moved to new identity" in at.success[0].value
    assert at.subheader[0].value == f"walker {a}: 2 sightings"
    at.number_input(key="merge_src").set_value(b).run()
    _button(at, "Merge into this one").click()
    at.run()
    assert f"Identity {b} merged: 1 sightings moved here" in at.success[0].value
    assert at.subheader[0].value == f"walker {a}: 3 sightings"
    assert {s.sighting_id for s in c.identity(a).sightings} == {
        hits[0].sighting_id,
        hits[1].sighting_id,
        hits[3].sighting_id,
    }
    at.number_input(key="merge_src").set_value(a).run()
    _button(at, "Merge into this one").click()
    at.run()
    assert any("Merge failed — 409" in e.value for e in at.error)  # readable, no traceback


def test_ingest_page_shows_jobs_and_failures(console: None) -> None:
    at = _page(_ingest_script)
    texts = [p.proto.text for p in at.get("progress")]
    assert any("done 13/13, 1 failed" in t for t in texts), texts
    frames = at.dataframe
    assert frames and "bad.jpg" in frames[0].value.to_string()


def test_index_page_counts_and_collections(console: None) -> None:
    at = _page(_index_script)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Media"] == "13" and metrics["Failed media"] == "1"
    assert metrics["Sightings"] == "12"
    live = [m.value for m in at.markdown if "Live alias" in m.value]
    assert live and "aioreid-live" in live[0] and "—" not in live[0]


def test_format_helpers() -> None:
    assert attribute_filter(" bag = yes , hat=beanie ,") == {"bag": "yes", "hat": "beanie"}
    with pytest.raises(ValueError, match="'bag' is not key=value"):
        attribute_filter("bag")

    class J:
        status, total, processed, failed = "running", 40, 10, 2

    assert job_progress(J()) == (0.25, "running 10/40, 2 failed")
    import numpy as np

    blank = np.full((8, 8, 4), 255, np.uint8)
    assert sketch_png(blank) is None
    drawn = blank.copy()
    drawn[2:6, 3] = (0, 0, 0, 255)
    assert sketch_png(drawn)[:4] == b"\x89PNG"  # type: ignore[index]
    from datetime import datetime, timezone
    from types import SimpleNamespace

    hit = SimpleNamespace(
        score=0.8123,
        camera="gate",
        time=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        best_part="text",
        identity_id=7,
        review="confirmed",
    )
    assert hit_caption(hit) == "0.812 · gate · 2024-01-02 03:04:05 · text · ID 7 ✓"


def test_index_page_refuses_a_pointless_reindex_readably(console: None) -> None:
    at = _page(_index_script)
    texts = [p.proto.text for p in at.get("progress")]
    assert any("· live · 12 points" in t for t in texts), texts
    _button(at, "Start re-index").click()
    at.run()
    assert any("Starting the re-index failed — 409" in e.value for e in at.error), [
        e.value for e in at.error
    ]


def test_files_over_the_api_limits_are_left_out_by_name() -> None:
    from aioreid.ui.format import within_limits

    mb = 2**20
    sizes = [("a.jpg", 1 * mb), ("huge.mp4", 30 * mb), ("b.jpg", 2 * mb), ("c.jpg", 1 * mb)]
    keep, left_out = within_limits(sizes, max_upload_mb=20, max_files=2)
    assert keep == [0, 2]
    assert left_out[0].startswith("huge.mp4: 30.0 MB is over the 20 MB limit")
    assert left_out[1].startswith("c.jpg: over 2 files")


def test_the_console_upload_limit_is_the_api_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from aioreid.platform.cli import app
    from aioreid.platform.config import get_settings

    launched: list[list[str]] = []
    monkeypatch.setattr(os, "execve", lambda exe, cmd, env: launched.append(cmd))
    monkeypatch.setenv("AIOREID_API__MAX_UPLOAD_MB", "7.5")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["ui"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    cmd = launched[0]
    assert cmd[cmd.index("--server.maxUploadSize") + 1] == "8"
