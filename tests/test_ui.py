"""The console's pages with Streamlit's AppTest, against the API served in-process (embedded
profile in a temporary home, tiny encoder, a bootstrap API key)."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from platform_fixtures import jpeg, person_image
from streamlit.testing.v1 import AppTest

from aioreid.encoder.model import AIOConfig, AIOModel
from aioreid.ui.format import SearchState, attribute_filter, job_progress, local_span, time_order

APP = str(Path(__file__).resolve().parents[1] / "ui" / "app.py")
KEY = "console-test-key-0123456789"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Iterator[None]:
    from aioreid.platform.config import get_settings
    from aioreid.platform.sdk import embedded
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
    embedded._shared_transport.cache_clear()
    client = connection.make_client(KEY)
    job = client.upload_files(
        [(f"p{i}.jpg", jpeg(person_image(i))) for i in range(12)] + [("bad.jpg", b"nope")],
        camera="gate",
    )
    assert client.wait_for_job(job.job_id, timeout=120).status == "done"
    yield
    embedded._shared_transport.cache_clear()
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


def _search(at: AppTest, text: str) -> AppTest:
    at.text_area[0].input(text)
    _button(at, "Search").click()
    at.run()
    assert not at.exception, at.exception
    return at


_CARD_BUTTON = re.compile(
    r'<button type="button" data-action="(\w+)" data-sid="(\d+)">(.*?)</button>'
)


def _grid(at: AppTest):  # type: ignore[no-untyped-def]
    """The result grid: one custom component holding every card and its buttons."""
    grids = [e for e in at.get("bidi_component") if e.key == "result_cards"]
    return grids[0] if grids else None


def _card_buttons(at: AppTest) -> list[tuple[str, int, str]]:
    """The result cards' buttons, ``(action, sighting id, label)``, in page order."""
    grid = _grid(at)
    page = json.loads(grid.proto.json) if grid is not None else ""
    return [(a, int(sid), html.unescape(label)) for a, sid, label in _CARD_BUTTON.findall(page)]


def _click_card(at: AppTest, label: str, which: int = 0) -> AppTest:
    """Click a card's button as the browser does (the grid sends ``{"action", "sid"}`` back
    as a trigger value) and run the script."""
    from streamlit.components.v2.bidi_component.main import _make_trigger_id

    found = [b for b in _card_buttons(at) if b[2] == label]
    assert found, f"no card button {label!r} among {[b[2] for b in _card_buttons(at)]}"
    action, sid, _ = found[which]
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id = _make_trigger_id(_grid(at).proto.id, "events")
    trigger.json_trigger_value = json.dumps(
        [{"event": "action", "value": {"action": action, "sid": sid}}]
    )
    at._run(states)
    assert not at.exception, at.exception
    return at


def _cards(at: AppTest) -> int:
    return len([b for b in _card_buttons(at) if b[2] == "Similar"])


def test_text_search_shows_the_query_beside_its_results(console: None) -> None:
    at = _search(_signed_in(), "a person in a red top")
    assert at.query_params["text"] == "a person in a red top"  # the search is a link
    assert any(m.value == "“a person in a red top”" for m in at.markdown)
    assert _cards(at) == 12  # one card per track (each crop is its own track)
    assert any(c.value.startswith("1–12 of 12 tracks ranked") for c in at.caption)
    _click_card(at, "New identity")
    assert at.success and "is now identity" in at.success[0].value
    assert any(b[2].startswith("Identity ") for b in _card_buttons(at))
    # A trigger fires once: the next run (any widget) does not assign again.
    at.run()
    assert not at.success
    assert sum(b[2] == "New identity" for b in _card_buttons(at)) == 11


def test_an_empty_query_is_refused_readably(console: None) -> None:
    at = _signed_in()
    _button(at, "Search").click()
    at.run()
    assert any("Type a description" in e.value for e in at.error)
    assert not at.exception


def test_editing_the_form_does_not_rerun_a_stale_query(console: None) -> None:
    at = _search(_signed_in(), "first query")
    at.text_area[0].input("second query, not submitted").run()
    assert at.query_params["text"] == "first query"
    assert any(m.value == "“first query”" for m in at.markdown)
    assert _cards(at) == 12


def test_the_form_always_shows_the_query_of_its_results(console: None) -> None:
    at = _search(_signed_in(), "first query")
    assert at.text_area[0].value == "first query"  # kept as typed: nothing redrawn
    at.text_area[0].input("edited, never submitted").run()
    _click_card(at, "Similar")
    assert at.query_params["similar"] and at.text_area[0].value == ""
    at.query_params.clear()
    at.query_params["text"] = "from a link"
    at.query_params["per_page"] = "12"
    at.query_params["sort"] = "time"
    at.run()
    assert at.text_area[0].value == "from a link"
    assert (at.selectbox(key="qf_per_page").value, at.selectbox(key="qf_sort").value) == (
        12,
        "time",
    )
    _button(at, "New search").click()
    at.run()
    assert not at.query_params and at.text_area[0].value == ""
    assert at.selectbox(key="qf_sort").value == "score"


def test_paging_and_a_shared_link_reload_the_same_results(console: None) -> None:
    at = _signed_in()
    at.query_params["text"] = "anyone"
    at.query_params["per_page"] = "6"
    at.run()
    assert _cards(at) == 6 and any(c.value.startswith("1–6 of 12") for c in at.caption)
    first = [b[1] for b in _card_buttons(at) if b[2] == "Similar"]
    _button(at, "Next ▶").click()
    at.run()
    assert at.query_params["page"] == "2"
    assert any(c.value.startswith("7–12 of 12") for c in at.caption)
    second = [b[1] for b in _card_buttons(at) if b[2] == "Similar"]
    assert not set(first) & set(second)  # pages neither overlap nor repeat
    assert _button(at, "Next ▶").disabled


def test_find_similar_is_its_own_link(console: None) -> None:
    at = _search(_signed_in(), "anyone")
    _click_card(at, "Similar")
    assert at.query_params["similar"]
    assert any(m.value.startswith("Looks like sighting #") for m in at.markdown)
    assert _cards(at) == 11  # itself left out


def test_sort_by_time_and_a_bad_time_are_handled(console: None) -> None:
    at = _signed_in()
    at.query_params["text"] = "anyone"
    at.query_params["sort"] = "time"
    at.run()
    assert any("(the best 240 by time)" in c.value for c in at.caption)
    at.query_params["time_from"] = "yesterday-ish"
    at.run()
    assert not at.exception
    assert any("not valid" in e.value and "yesterday-ish" in e.value for e in at.error)


def test_review_buttons_confirm_into_an_identity(console: None) -> None:
    at = _search(_signed_in(), "anyone")
    if any(b[2] == "New identity" for b in _card_buttons(at)):
        _click_card(at, "New identity")
    ident = int(next(b[2] for b in _card_buttons(at) if b[2].startswith("Identity ")).split()[1])
    at.number_input(key="review_for").set_value(ident).run()
    ok = [b for b in _card_buttons(at) if b[2] == "✓ Match"]
    assert len(ok) == 12
    _click_card(at, "✓ Match", which=-1)
    assert at.success and "confirmed" in at.success[0].value


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
    created = c.assign(hits[0].sighting_id, None, label="walker")
    a = created.identity_id
    confirmed = c.confirm(hits[1].sighting_id, a)
    touched = c.confirm(hits[2].sighting_id, a)  # the split below moves it on
    b = c.assign(hits[3].sighting_id, None).identity_id
    at = _page(_identity_script, identity_id=a)
    assert at.subheader[0].value == f"walker {a}: 3 sightings"
    at.checkbox(key=f"sel-{hits[2].sighting_id}").check().run()
    _button(at, "Split into a new identity").click()
    at.run()
    assert "1 sightings moved to new identity" in at.success[0].value
    assert at.subheader[0].value == f"walker {a}: 2 sightings"
    at.number_input(key="merge_src").set_value(b).run()
    _button(at, "Preview the merge").click()
    at.run()
    assert any(x.value.startswith(f"Identity {b} ") for x in at.caption)  # what would move
    assert at.subheader[0].value == f"walker {a}: 2 sightings"  # nothing merged yet
    _button(at, "Confirm the merge").click()
    at.run()
    assert f"Identity {b} merged: 1 sightings moved here" in at.success[0].value
    assert at.subheader[0].value == f"walker {a}: 3 sightings"
    assert {s.sighting_id for s in c.identity(a).sightings} == {
        hits[0].sighting_id,
        hits[1].sighting_id,
        hits[3].sighting_id,
    }
    # The history lists the merge, the split, the confirmations and the assign; each has an
    # Undo button while nothing later touched it (the split moved hits[2] on).
    undoable = [x.key for x in at.button if x.label == "Undo"]
    history = {h.action: h.id for h in c.identity(a).history if h.action in ("merge", "split")}
    assert undoable == [
        f"undo-{history['merge']}",  # newest first
        f"undo-{history['split']}",
        f"undo-{confirmed.event_id}",
        f"undo-{created.event_id}",
    ]
    assert f"undo-{touched.event_id}" not in undoable
    assert any(f"confirm sighting {hits[1].sighting_id}" in x.value for x in at.caption)
    # Undoing the merge gives b its sighting back.
    at.button(key=undoable[0]).click()
    at.run()
    assert at.success and "merge undone" in at.success[0].value
    assert at.subheader[0].value == f"walker {a}: 2 sightings"
    assert {s.sighting_id for s in c.identity(b).sightings} == {hits[3].sighting_id}
    assert not [x for x in at.button if x.key == undoable[0]]  # undone: no second undo
    # Undoing the confirmation takes hits[1] off the identity again.
    at.button(key=f"undo-{confirmed.event_id}").click()
    at.run()
    assert at.success and at.success[0].value == (
        f"confirm undone: sighting {hits[1].sighting_id} back as before"
    )
    assert at.subheader[0].value == f"walker {a}: 1 sightings"
    assert [s.sighting_id for s in c.identity(a).sightings] == [hits[0].sighting_id]
    assert any(
        x.value.endswith(f"undo of confirm (event {confirmed.event_id})") for x in at.caption
    )
    at.number_input(key="merge_src").set_value(a).run()
    _button(at, "Preview the merge").click()
    at.run()
    assert any("Previewing the merge failed" in e.value for e in at.error)  # readable


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


def test_the_heap_is_frozen_only_in_a_served_console(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from aioreid.ui import heap

    assert not heap.settle(survivors=0)  # a test process: never (cyclic garbage would stay)
    monkeypatch.setattr(heap, "_served", lambda: True)
    frozen = gc.get_freeze_count()
    try:
        assert not heap.settle(survivors=10**9)  # too few survivors to be worth it
        assert gc.get_freeze_count() == frozen
        assert heap.settle(survivors=0)
        assert gc.get_freeze_count() > frozen and gc.get_objects(generation=2) == []
    finally:
        gc.unfreeze()


def test_result_cards_are_one_escaped_html_block() -> None:
    from aioreid.ui.format import card_html, data_uri, thumbnail_jpeg

    tall = jpeg(person_image(0))  # 128 px tall
    small = thumbnail_jpeg(tall, height=64)
    assert small[:3] == b"\xff\xd8\xff" and len(small) < len(tall)
    assert thumbnail_jpeg(small, height=64) == small  # never scaled up or re-encoded
    assert thumbnail_jpeg(b"not an image") == b"not an image"
    html = card_html(
        [data_uri(small)],
        "0.812 · <gate> ✓",
        ["2024-03-04 08:00:00 UTC", "track #3 · 4 crops"],
        "This is your query image itself.",
    )
    assert html.count("<img ") == 1 and 'src="data:image/jpeg;base64,' in html
    assert "<b>0.812</b> · &lt;gate&gt; ✓" in html and "<gate>" not in html
    assert "track #3 · 4 crops" in html and "This is your query image itself." in html
    assert "(image unavailable)" in card_html([], "0.5 · gate", [])
    # A page of cards is one grid element; its buttons carry the action and the sighting.
    from aioreid.ui.format import card_actions_html, cards_grid_html

    acts = card_actions_html(7, [("sim", "Similar"), ("pin", "<b>pin</b>")])
    assert '<button type="button" data-action="sim" data-sid="7">Similar</button>' in acts
    assert "&lt;b&gt;pin&lt;/b&gt;" in acts and "<b>pin" not in acts
    grid = cards_grid_html([html + acts] * 2, 4)
    assert grid.count('class="aio-card"') == 2 and "repeat(4,minmax(0,1fr))" in grid


def test_history_lines_say_what_each_event_did() -> None:
    from types import SimpleNamespace as Event

    from aioreid.ui.format import history_line

    def line(action: str, entity: str, ref: str, **details: object) -> str:
        return history_line(Event(action=action, entity=entity, entity_id=ref, details=details))

    assert line("confirm", "sighting", "12", identity=3) == "confirm sighting 12"
    assert line("assign", "sighting", "12", created=True) == "assign sighting 12 (new identity)"
    assert line("merge", "identity", "3", sources=[5, 6]) == "merge of identity 5, 6 into 3"
    assert line("split", "identity", "3", new_identity=7) == "split of identity 3 → 7"
    assert line("undo", "audit_event", "41", undid="merge") == "undo of merge (event 41)"


def test_time_order_follows_the_start_a_card_shows() -> None:
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace as Hit

    t0 = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)

    def track(start_s: int, crop_s: int) -> Hit:  # a track hit: its time is its best crop's
        start = t0 + timedelta(seconds=start_s)
        return Hit(time=t0 + timedelta(seconds=crop_s), track=Hit(start=start), name=start_s)

    hits = [
        Hit(time=None, track=None, name="no time"),
        track(7, 7),
        track(4, 9),  # starts earlier, its best crop later
        Hit(time=t0 + timedelta(seconds=5), track=None, name=5),
    ]
    assert [h.name for h in time_order(hits)] == [4, 5, 7, "no time"]


def test_format_helpers() -> None:
    assert attribute_filter(" bag = yes , hat=beanie ,") == {"bag": "yes", "hat": "beanie"}
    with pytest.raises(ValueError, match="'bag' is not key=value"):
        attribute_filter("bag")

    class J:
        status, total, processed, failed = "running", 40, 10, 2

    assert job_progress(J()) == (0.25, "running 10/40, 2 failed")
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    paris = ZoneInfo("Europe/Paris")
    assert local_span(start, start + timedelta(seconds=30), paris) == (
        "2024-01-02 04:04:05–04:04:35 CET"
    )
    assert local_span(None, None, paris) == "time unknown"


def test_search_state_round_trips_through_the_url() -> None:
    from zoneinfo import ZoneInfo

    state = SearchState(text="red coat", cams=(1, 3), sort="time", page=2, min_score=0.25)
    query = state.to_query()
    assert query == {
        "text": "red coat",
        "cams": "1,3",
        "sort": "time",
        "page": "2",
        "min_score": "0.25",
    }
    assert SearchState.from_query(query) == state
    # Malformed values fall back to defaults instead of failing the page.
    odd = SearchState.from_query({"text": "x", "page": "-3", "sort": "sideways", "cams": "a"})
    assert (odd.page, odd.sort, odd.cams) == (1, "score", ())
    # Times typed without a zone are the viewer's.
    flt = SearchState(text="x", time_from="2024-03-04 08:00").filters(ZoneInfo("Europe/Paris"))
    assert flt["time_from"] == "2024-03-04T08:00:00+01:00"


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


def test_timeline_names_cameras_and_the_route_is_in_time_order() -> None:
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from aioreid.ui.format import camera_route, timeline_rows

    t0 = datetime(2024, 3, 4, 7, 0, tzinfo=timezone.utc)
    seen = [
        SimpleNamespace(sighting_id=i, camera_id=cam, time=t0 + timedelta(minutes=m))
        for i, (cam, m) in enumerate([(2, 9), (1, 0), (1, 2), (2, 7), (9, 12)], start=1)
    ]
    seen.append(SimpleNamespace(sighting_id=99, camera_id=1, time=None))
    rows = timeline_rows(seen, {1: "gate", 2: "hall"}, ZoneInfo("Europe/Berlin"))
    assert len(rows) == 5 and rows[1] == {
        "time": datetime(2024, 3, 4, 8, 0),
        "camera": "gate",
        "sighting": 2,
    }
    route = camera_route(rows)
    assert [(r["camera"], r["sightings"]) for r in route] == [
        ("gate", 2),
        ("hall", 2),
        ("camera 9", 1),
    ]
    assert route[1]["first"] == datetime(2024, 3, 4, 8, 7)


def test_one_at_a_time_review_with_keyboard_buttons(console: None) -> None:
    at = _search(_signed_in(), "review me one by one")
    if any(b[2] == "New identity" for b in _card_buttons(at)):
        _click_card(at, "New identity")
    ident = int(next(b[2] for b in _card_buttons(at) if b[2].startswith("Identity ")).split()[1])
    at.number_input(key="review_for").set_value(ident).run()
    at.toggle(key="focus_mode").set_value(True).run()
    assert any(c.value.startswith("Result 1 of 12") for c in at.caption)
    _button(at, "Next").click()
    at.run()
    assert any(c.value.startswith("Result 2 of 12") for c in at.caption)
    _button(at, "✗ Not").click()
    at.run()
    assert at.success and "rejected" in at.success[0].value
    assert any(c.value.startswith("Result 3 of 12") for c in at.caption)


def _cases_script() -> None:
    from aioreid.ui import views

    views.cases_page()


def _audit_script() -> None:
    from aioreid.ui import views

    views.audit_page()


def test_a_case_collects_pins_with_notes_and_exports_verifiable_evidence(
    console: None, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from aioreid.platform.cli import app
    from aioreid.ui.connection import make_client

    c = make_client(KEY)
    at = _page(_cases_script)
    at.text_input[0].input("Lobby theft")
    _button(at, "Create case").click()
    at.run()
    assert at.success and at.success[0].value.startswith("Case #")
    case_id = int(at.success[0].value.split("#")[1].split()[0])
    hit = c.search(text="anyone", limit=3).hits[0]
    c.pin(case_id, "track", hit.track_id)
    at.run()
    assert any(m.value.startswith(f"**Track #{hit.track_id}**") for m in at.markdown)
    note = next(t for t in at.text_area if t.label == "Note")
    note.input("left through the gate at 08:02")
    _button(at, "Save note").click()
    at.run()
    assert c.case(case_id).items[0].note == "left through the gate at 08:02"
    _button(at, "Export evidence").click()
    at.run()
    download = list(at.get("download_button"))
    assert download, "no download button after the export"
    blob = at.session_state["evidence"][1]
    evidence = tmp_path / "evidence.zip"
    evidence.write_bytes(blob)
    verified = CliRunner().invoke(app, ["case", "verify", str(evidence)])
    assert verified.exit_code == 0, verified.output
    audit = _page(_audit_script)
    frame = audit.dataframe[0].value
    assert {"pin", "export"} <= set(frame["action"])


def test_a_camera_is_located_from_the_index_page(console: None) -> None:
    from aioreid.ui.connection import make_client

    cam = make_client(KEY).cameras()[0]
    at = _page(_index_script)
    at.number_input(key=f"lat-{cam.id}").set_value(48.8566).run()
    at.number_input(key=f"lon-{cam.id}").set_value(2.3522).run()
    at.text_input(key=f"loc-{cam.id}").input("Gare du Nord, gate 3").run()
    _button(at, "Save").click()
    at.run()
    assert at.success and f"Camera {cam.name} located" in at.success[0].value
    located = next(x for x in make_client(KEY).cameras() if x.id == cam.id)
    assert (located.latitude, located.longitude) == pytest.approx((48.8566, 2.3522))
    assert located.location == "Gare du Nord, gate 3"
