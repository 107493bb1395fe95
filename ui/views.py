"""The console's pages. Each reads the SDK client from the session and shows API errors as
messages (``run``) instead of tracebacks."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone, tzinfo
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st
from streamlit.components import v2 as components

from aioreid.platform.sdk import DETECTOR_NAMES, ApiError, Client
from aioreid.ui.format import (
    SearchState,
    camera_route,
    card_actions_html,
    card_html,
    cards_grid_html,
    data_uri,
    history_line,
    is_query_image,
    job_progress,
    local_span,
    thumbnail_jpeg,
    time_order,
    timeline_rows,
    within_limits,
)

T = TypeVar("T")
COLUMNS = 6
CARDS_PER_ROW = 4  # search result cards beside the query column


def client() -> Client:
    return st.session_state["client"]


def run(action: Callable[[], T], what: str) -> T | None:
    """Call the API; on failure show ``what failed: reason`` and return None."""
    try:
        return action()
    except ApiError as exc:
        st.error(f"{what} failed — {exc}")
    except (OSError, ValueError) as exc:
        st.error(f"{what} failed — {exc}")
    return None


def _crop(url: str, c: Any) -> bytes | None:
    """A crop's bytes, cached by its object key: keys are content hashes, so the bytes
    behind one never change, whatever the signature and expiry of the link."""
    return _object_bytes(url.split("?", 1)[0], url, c)


@st.cache_data(ttl=3600, max_entries=4000, show_spinner=False)
def _object_bytes(object_path: str, _url: str, _c: Any) -> bytes | None:
    try:
        return _c.fetch(_url)
    except ApiError:
        return None


def act(action: Callable[[], T], what: str, done: Callable[[T], str]) -> None:
    """Run a review action; on success remember a message for after the rerun and rerun."""
    result = run(action, what)
    if result is not None:
        st.session_state["flash"] = done(result)
        st.rerun()


def flash() -> None:
    """Show (once) the message the last action left."""
    msg = st.session_state.pop("flash", None)
    if msg:
        st.success(msg)
    problem = st.session_state.pop("flash_error", None)
    if problem:
        st.error(problem)


def show_crop(url: str | None, caption: str = "") -> None:
    data = _crop(url, client()) if url else None
    if data:
        st.image(data, caption=caption, width="stretch")
    else:
        st.caption(f"(image unavailable) {caption}")


def open_identity(identity_id: int) -> None:
    st.session_state["identity_id"] = identity_id
    st.switch_page(st.session_state.get("identity_page_obj") or "identity")


# ------------------------------------------------------------------------------ search


def viewer_tz() -> tzinfo:
    """The browser's time zone (UTC when the browser does not say)."""
    try:
        return ZoneInfo(st.context.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def _state() -> SearchState:
    return SearchState.from_query(st.query_params.to_dict())


def _set_query(state: SearchState) -> None:
    """Button callback: make ``state`` the page's search. Callbacks run before the rerun,
    so the page renders the new search in that one run."""
    st.query_params.from_dict(state.to_query())


_REVIEW_CHOICES = ["any", "unreviewed", "confirmed"]
_PER_PAGE = [12, 24, 48, 96]


_FORM_FIELDS = (
    "text",
    "cams",
    "mods",
    "time_from",
    "time_to",
    "attrs",
    "review",
    "level",
    "sort",
    "per_page",
    "min_score",
)


def _form_values(state: SearchState, by_name: dict[str, int]) -> dict[str, Any]:
    """What the query form's widgets hold for ``state`` (their session-state values)."""
    return {
        "text": state.text,
        "cams": [n for n, i in by_name.items() if i in state.cams],
        "mods": [m for m in state.mods if m in ("rgb", "ir")],
        "time_from": state.time_from,
        "time_to": state.time_to,
        "attrs": state.attrs,
        "review": state.review if state.review in _REVIEW_CHOICES else "any",
        "level": state.level,
        "sort": state.sort,
        "per_page": state.per_page if state.per_page in _PER_PAGE else 24,
        "min_score": "" if state.min_score is None else f"{state.min_score:g}",
    }


def _token(state: SearchState) -> str:
    return hashlib.sha256(repr(state).encode()).hexdigest()[:10]


def _query_form(state: SearchState) -> None:
    """The query and its filters in one form: nothing runs until "Search" is pressed.

    The widgets keep their keys from search to search (new keys would make the browser
    build the whole form again on every search: ~30 ms of each click). When the page shows
    another search than the form was filled from (a link, a page, "Similar", "New search"),
    or Streamlit dropped the widgets' state (another page ran), they are filled from this
    search before they are drawn, so the form always shows the query of the results.
    Uploads cannot be set that way: their widgets start empty under new keys then."""
    by_name = {f"{cam.name} ({cam.modality})": cam.id for cam in _cameras()}
    tz = viewer_tz()
    ss = st.session_state
    values = _form_values(state, by_name)
    if ss.get("qf_for") != _token(state) or any(f"qf_{k}" not in ss for k in values):
        for name, value in values.items():
            ss[f"qf_{name}"] = value
        ss["qf_for"] = _token(state)
        ss["qf_uploads"] = ss.get("qf_uploads", 0) + 1
    if any(n not in by_name for n in ss["qf_cams"]):  # a camera renamed or gone meanwhile
        ss["qf_cams"] = [n for n in ss["qf_cams"] if n in by_name]
    uploads = ss["qf_uploads"]

    with st.form("query"):
        st.text_area(
            "Description",
            placeholder="a woman in a long red coat with a black shoulder bag",
            key="qf_text",
        )
        a, b, c = st.columns(3)
        a.file_uploader(
            "RGB photo", type=["jpg", "jpeg", "png", "bmp", "webp"], key=f"qf_rgb_{uploads}"
        )
        b.file_uploader(
            "Infrared image", type=["jpg", "jpeg", "png", "bmp"], key=f"qf_ir_{uploads}"
        )
        c.file_uploader("Sketch", type=["jpg", "jpeg", "png"], key=f"qf_sketch_{uploads}")
        with st.expander("Filters and ordering", expanded=False):
            f1, f2 = st.columns(2)
            f1.multiselect("Cameras", list(by_name), key="qf_cams")
            f2.multiselect("Gallery modality", ["rgb", "ir"], key="qf_mods")
            t1, t2 = st.columns(2)
            t1.text_input(f"From ({tz})", placeholder="2024-03-04 08:00", key="qf_time_from")
            t2.text_input(f"To ({tz})", placeholder="2024-03-04 18:00", key="qf_time_to")
            st.text_input("Attributes", placeholder="bag=yes, hat=beanie", key="qf_attrs")
            o1, o2, o3, o4 = st.columns(4)
            o1.selectbox("Review state", _REVIEW_CHOICES, key="qf_review")
            o2.selectbox("Results", ["track", "sighting"], key="qf_level")
            o3.selectbox("Order", ["score", "time"], key="qf_sort")
            o4.selectbox("Per page", _PER_PAGE, key="qf_per_page")
            st.text_input(
                "Minimum score (optional)",
                help="Scores differ in scale between query types: look at the scores a query "
                "gives before setting one.",
                key="qf_min_score",
            )
        st.form_submit_button("Search", type="primary", on_click=_submit, args=(by_name, tz))
    problem = st.session_state.pop("form_error", None)
    if problem:
        st.error(problem)


def _submit(by_name: dict[str, int], tz: tzinfo) -> None:
    """The form's callback: the new search into the URL, or a message saying what is wrong."""
    ss = st.session_state
    values = {name: ss.get(f"qf_{name}") for name in _FORM_FIELDS}
    uploads = ss.get("qf_uploads", 0)
    for name in ("rgb", "ir", "sketch"):
        values[name] = ss.get(f"qf_{name}_{uploads}")
    images = []
    for name in ("rgb", "ir", "sketch"):
        upload = values.get(name)
        if upload is not None:
            data = upload.getvalue()
            digest = hashlib.sha256(data).hexdigest()[:12]
            st.session_state.setdefault("query_images", {})[digest] = (name, data)
            images.append(f"{name}:{digest}")
    try:
        raw_min = str(values.get("min_score") or "").strip()
        new = SearchState(
            text=str(values.get("text") or "").strip(),
            images=tuple(images),
            cams=tuple(by_name[n] for n in values.get("cams") or []),
            mods=tuple(values.get("mods") or []),
            review=values.get("review") or "any",
            attrs=str(values.get("attrs") or ""),
            time_from=str(values.get("time_from") or "").strip(),
            time_to=str(values.get("time_to") or "").strip(),
            min_score=float(raw_min) if raw_min else None,
            level=values.get("level") or "track",
            sort=values.get("sort") or "score",
            per_page=int(values.get("per_page") or 24),
        )
        new.filters(tz)  # a malformed time or attribute is reported now
    except ValueError as exc:
        st.session_state["form_error"] = f"Cannot search: {exc}"
        return
    if new.empty:
        st.session_state["form_error"] = "Type a description or add an RGB, IR or sketch image."
        return
    ss["qf_for"] = _token(new)  # the form shows this search already: nothing to refill
    _set_query(new)


def _query_parts(state: SearchState) -> tuple[dict[str, Any], list[str]]:
    """The query's inputs for the API, and the image parts this session no longer holds."""
    held = st.session_state.get("query_images", {})
    parts: dict[str, Any] = {"text": state.text} if state.text else {}
    missing = []
    for item in state.images:
        kind, _, token = item.partition(":")
        if token in held:
            parts[kind] = held[token][1]
        else:
            missing.append(kind)
    return parts, missing


def _pin_search(case_id: int, state: SearchState, parts: dict[str, Any]) -> None:
    """Pin the search as the case's evidence: its inputs, filters and scored hits."""
    try:
        filters = state.filters(viewer_tz())
    except ValueError as exc:
        st.error(f"Not pinned: {exc}")
        return
    act(
        lambda: client().pin_query(
            case_id,
            similar_to=state.similar,
            filters=filters,
            limit=state.per_page,
            offset=(state.page - 1) * state.per_page,
            threshold=state.min_score,
            level=state.level,
            **parts,
        ),
        "Pin",
        lambda _: f"Search pinned to case #{case_id}",
    )


def _query_panel(state: SearchState, missing: list[str]) -> None:
    """What the results on this page answer (always shown beside them)."""
    st.markdown("**Query**")
    if state.similar:
        st.write(f"Looks like sighting #{state.similar}")
    if state.text:
        st.write(f"“{state.text}”")
    held = st.session_state.get("query_images", {})
    for item in state.images:
        kind, _, token = item.partition(":")
        if token in held:
            st.image(held[token][1], caption=kind, width=96)
    if missing:
        st.warning(
            f"The {', '.join(missing)} image of this search is not in this session (images "
            "do not travel in links); the rest of the query was run."
        )
    details = [f"{state.level}s by {state.sort}"]
    if state.cams:
        details.append(f"{len(state.cams)} camera(s)")
    if state.mods:
        details.append("gallery " + "+".join(state.mods))
    if state.time_from or state.time_to:
        details.append(f"{state.time_from or '…'} → {state.time_to or '…'} ({viewer_tz()})")
    if state.attrs:
        details.append(state.attrs)
    if state.review != "any":
        details.append(state.review)
    if state.min_score is not None:
        details.append(f"score ≥ {state.min_score:g}")
    st.caption(" · ".join(details))
    st.button("New search", on_click=st.query_params.clear)


#: "Sort by time" orders this many best matches by time.
TIME_ORDER_POOL = 240


def _fetch(state: SearchState, parts: dict[str, Any]) -> Any:
    """The page of results for ``state`` (cached per state until an action changes data)."""
    key = (tuple(sorted(state.to_query().items())), st.session_state.get("data_version", 0))
    cache = st.session_state.setdefault("results", {})
    if key in cache:
        return cache[key]
    try:
        filters = state.filters(viewer_tz())
    except ValueError as exc:  # a hand-edited link: say what is wrong, run nothing
        st.error(f"This search's filters are not valid: {exc}")
        return None
    by_time = state.sort == "time"
    offset = 0 if by_time else (state.page - 1) * state.per_page
    limit = TIME_ORDER_POOL if by_time else state.per_page
    common = {
        "filters": filters,
        "limit": limit,
        "offset": offset,
        "threshold": state.min_score,
        "level": state.level,
    }
    if state.similar:
        res = run(lambda: client().find_similar(state.similar, **common), "Find-similar")
    else:
        res = run(lambda: client().search(**parts, **common), "Search")
    if res is not None and by_time:
        start = (state.page - 1) * state.per_page
        ordered = time_order(res.hits)
        res = res.model_copy(
            update={
                "hits": ordered[start : start + state.per_page],
                "offset": start,
                "limit": state.per_page,
                "has_more": len(ordered) > start + state.per_page,
            }
        )
    cache.clear()  # one state at a time: the session does not grow with browsing
    cache[key] = res
    return res


def _changed() -> None:
    """Data changed (a review action): cached result pages are stale."""
    st.session_state["data_version"] = st.session_state.get("data_version", 0) + 1


def _pager(state: SearchState, res: Any) -> None:
    first = res.offset + 1
    last = res.offset + len(res.hits)
    ranked = f" of {res.candidates} {state.level}s ranked" if res.candidates is not None else ""
    scope = f" (the best {TIME_ORDER_POOL} by time)" if state.sort == "time" else ""
    left, mid, right = st.columns([1, 4, 1])
    mid.caption(
        f"{first}–{last}{ranked}{scope} · {res.took_ms:.0f} ms · encoder {res.encoder_version}"
    )
    left.button(
        "◀ Previous",
        disabled=state.page <= 1,
        key=f"prev-{state.page}",
        on_click=_set_query,
        args=(replace(state, page=state.page - 1),),
    )
    right.button(
        "Next ▶",
        disabled=not res.has_more,
        key=f"next-{state.page}",
        on_click=_set_query,
        args=(replace(state, page=state.page + 1),),
    )


def _thumb(url: str, c: Any) -> str | None:
    """A crop's thumbnail as a data URI, cached by its object key like the crop itself."""
    return _thumb_uri(url.split("?", 1)[0], url, c)


@st.cache_data(ttl=3600, max_entries=4000, show_spinner=False)
def _thumb_uri(object_path: str, _url: str, _c: Any) -> str | None:
    data = _crop(_url, _c)
    return data_uri(thumbnail_jpeg(data)) if data else None


def _card_html(hit: Any, query_shas: set[str]) -> str:
    """One result's thumbnails and what it is as one HTML block (thumbnails inline, so the
    browser requests nothing; every text escaped by ``card_html``)."""
    c = client()
    tz = viewer_tz()
    track = hit.track
    if track is not None and track.crops:
        urls = track.crops[:4]
        when = local_span(track.start, track.end, tz)
        what = f"track #{track.track_id} · {track.sightings} crops"
    else:
        urls = [hit.url] if hit.url else []
        when = local_span(hit.time, None, tz)
        what = f"sighting #{hit.sighting_id}"
    flag = {"confirmed": " ✓", "rejected": " ✗"}.get(hit.review, "")
    note = (
        "This is your query image itself." if is_query_image(hit.object_key, query_shas) else None
    )
    return card_html(
        [t for t in (_thumb(u, c) for u in urls) if t],
        f"{hit.score:.3f} · {hit.camera or 'camera ?'}{flag}",
        [when, f"{what} · best part: {hit.best_part}"],
        note,
    )


def _card_actions(hit: Any, review_for: int | None) -> list[tuple[str, str]]:
    """A card's actions, ``(action, label)``; the action is also its button's key prefix."""
    out = [("open", "Open")] if hit.track is not None else []
    out.append(("sim", "Similar"))
    if hit.identity_id is not None:
        out.append(("id", f"Identity {hit.identity_id}"))
    elif review_for is None:
        out.append(("new", "New identity"))
    if st.session_state.get("case_id"):
        out.append(("pin", "Pin to case"))
    if review_for is not None:
        out += [("ok", "✓ Match"), ("no", "✗ Not")]
    return out


def _similar(state: SearchState, sid: int) -> SearchState:
    return SearchState(similar=sid, level=state.level, per_page=state.per_page)


def _card_action(action: str, hit: Any, review_for: int | None) -> None:
    """Run a card's action (all but "sim", which is a callback: see ``_set_query``)."""
    c = client()
    sid = hit.sighting_id
    track = hit.track
    if action == "open":
        st.session_state["open_track"] = track.track_id
        st.switch_page(st.session_state["track_page_obj"])
    elif action == "id":
        open_identity(hit.identity_id)
    elif action == "new":
        _changed()
        act(
            lambda: c.assign(sid, None),
            "Assign",
            lambda ack: f"Sighting {sid} is now identity {ack.identity_id}",
        )
    elif action == "pin":
        case_id = st.session_state.get("case_id")
        kind, ref = ("track", track.track_id) if track is not None else ("sighting", sid)
        act(
            lambda: c.pin(case_id, kind, ref),
            "Pin",
            lambda _: f"{kind} {ref} pinned to #{case_id}",
        )
    elif action == "ok" and review_for is not None:
        _changed()
        act(lambda: c.confirm(sid, review_for), "Confirm", lambda _: f"{sid} confirmed")
    elif action == "no" and review_for is not None:
        _changed()
        act(lambda: c.reject(sid, review_for), "Reject", lambda _: f"{sid} rejected")


def _card(hit: Any, state: SearchState, query_shas: set[str], review_for: int | None) -> None:
    """One result as Streamlit elements: its HTML block and a row of buttons (the one card
    of the one-at-a-time review; a page of results is one ``_cards`` element)."""
    st.html(_card_html(hit, query_shas))
    sid = hit.sighting_id
    with st.container(horizontal=True, gap="small"):
        for action, label in _card_actions(hit, review_for):
            if action == "sim":
                st.button(
                    label, key=f"sim-{sid}", on_click=_set_query, args=(_similar(state, sid),)
                )
            elif st.button(label, key=f"{action}-{sid}"):
                _card_action(action, hit, review_for)


#: The result grid, one custom component: every card's HTML and buttons in one element
#: instead of ~5 per card. A click sends ``{"action", "sid"}`` back as a trigger value
#: (transient: it is set for the one run the click causes). Light DOM
#: (``isolate_styles=False``): the page's fonts apply and the cards' text, images and buttons
#: are the page's, as with ``st.html``; the CSS is scoped to ``.aio-grid``.
_CARDS_CSS = """
.aio-grid { display: grid; gap: 1rem; }
.aio-grid .aio-card { min-width: 0; }
.aio-grid .aio-acts { display: flex; flex-wrap: wrap; gap: .5rem; margin-top: .5rem; }
.aio-grid button {
  font: inherit; font-size: .875rem; line-height: 1.6; min-height: 2.5rem;
  padding: .25rem .75rem; cursor: pointer; color: inherit;
  background: var(--st-background-color, transparent);
  border: 1px solid var(--st-border-color, rgba(49, 51, 63, .2));
  border-radius: var(--st-button-radius, .5rem);
}
.aio-grid button:hover { border-color: var(--st-primary-color); color: var(--st-primary-color); }
.aio-grid button:active { background: var(--st-primary-color); color: #fff; }
"""
_CARDS_JS = """
export default function ({ data, parentElement, setTriggerValue }) {
  let root = parentElement.querySelector(":scope > .aio-cards");
  if (!root) {
    root = document.createElement("div");
    root.className = "aio-cards";
    parentElement.appendChild(root);
  }
  root.innerHTML = data;
  // The grid is current (React runs this after painting the run's other elements):
  // bench_console.py waits for it.
  root.dispatchEvent(new CustomEvent("aioreid-cards", { bubbles: true }));
  root.onclick = (e) => {
    const b = e.target.closest("button[data-action]");
    if (b && root.contains(b))
      setTriggerValue("action", { action: b.dataset.action, sid: Number(b.dataset.sid) });
  };
}
"""
_CARDS = components.component(
    "aioreid_result_cards", css=_CARDS_CSS, js=_CARDS_JS, isolate_styles=False
)


def _cards_clicked(state: SearchState, sids: frozenset[int]) -> None:
    """The grid's callback: "Similar" makes the page's search another (before the rerun,
    like a button's ``on_click``); other actions run in the script (``_cards``)."""
    ev = (st.session_state.get("result_cards") or {}).get("action")
    if isinstance(ev, dict) and ev.get("action") == "sim" and ev.get("sid") in sids:
        _set_query(_similar(state, int(ev["sid"])))


def _cards(hits: list[Any], state: SearchState, shas: set[str], review_for: int | None) -> None:
    """The page's results as one element (``_CARDS``), then the clicked action, if any."""
    by_sid = {h.sighting_id: h for h in hits}
    html = cards_grid_html(
        [
            _card_html(h, shas) + card_actions_html(h.sighting_id, _card_actions(h, review_for))
            for h in hits
        ],
        CARDS_PER_ROW,
    )
    got = _CARDS(
        key="result_cards",
        data=html,
        on_action_change=partial(_cards_clicked, state, frozenset(by_sid)),
    )
    ev = got.get("action")
    if not isinstance(ev, dict) or ev.get("action") == "sim":
        return
    hit = by_sid.get(ev.get("sid"))
    if hit is not None and ev.get("action") in dict(_card_actions(hit, review_for)):
        _card_action(str(ev["action"]), hit, review_for)


def search_page() -> None:
    st.title("Search")
    flash()
    state = _state()
    if state.empty:
        _query_form(state)
        st.caption("Type a description, upload a photo, an IR image or a sketch — or combine them.")
        return
    parts, missing = _query_parts(state)
    if not parts and not state.similar:
        _query_panel(state, missing)
        _query_form(state)
        return
    case_id = st.session_state.get("case_id")
    query_col, results_col = st.columns([1, 4])
    with query_col:
        _query_panel(state, missing)
        if case_id and st.button("Pin this search to the case"):
            _pin_search(case_id, state, parts)
        review_for = st.number_input(
            "Reviewing for identity",
            min_value=0,
            step=1,
            key="review_for",
            help="0: not reviewing. Otherwise each result gets ✓ / ✗.",
        )
        with st.expander("Change the query"):
            _query_form(state)
    with results_col:
        res = _fetch(state, parts)
        if res is None:
            return
        if not res.hits:
            st.warning("Nothing found. Relax the filters or lower the minimum score.")
            return
        _pager(state, res)
        shas = {hashlib.sha256(v).hexdigest() for k, v in parts.items() if isinstance(v, bytes)}
        if review_for and st.button(f"✓ Confirm all {len(res.hits)} on this page"):
            sids = [h.sighting_id for h in res.hits]
            _changed()
            act(
                lambda: client().confirm_bulk(sids, int(review_for)),
                "Bulk confirm",
                lambda _: f"{len(sids)} sightings confirmed as identity {int(review_for)}",
            )
        if review_for and st.toggle(
            "One at a time — keys: j next, k previous, y match, n not",
            key="focus_mode",
        ):
            _focus(res.hits, state, shas, int(review_for))
            return
        _cards(res.hits, state, shas, int(review_for) or None)


def _focus(hits: list[Any], state: SearchState, shas: set[str], identity: int) -> None:
    """Review the page's hits one at a time from the keyboard."""
    c = client()
    i = min(st.session_state.get("focus_i", 0), len(hits) - 1)
    hit = hits[i]
    st.caption(f"Result {i + 1} of {len(hits)} on this page, reviewing for identity {identity}")
    left, right = st.columns([1, 2])
    with left:
        _card(hit, state, shas, None)
    with right:
        if hit.track_id is not None:
            frame = run(lambda: c.sighting_frame(hit.sighting_id), "Loading the frame")
            if frame:
                st.image(frame, caption="the source frame, its box drawn")
    b1, b2, b3, b4 = st.columns(4)

    def move(step: int) -> None:
        st.session_state["focus_i"] = max(0, min(len(hits) - 1, i + step))

    b1.button("Previous", shortcut="k", on_click=move, args=(-1,), disabled=i == 0)
    b2.button("Next", shortcut="j", on_click=move, args=(1,), disabled=i == len(hits) - 1)
    sid = hit.sighting_id
    if b3.button("✓ Match", shortcut="y", type="primary"):
        move(1)
        _changed()
        act(lambda: c.confirm(sid, identity), "Confirm", lambda _: f"{sid} confirmed")
    if b4.button("✗ Not", shortcut="n"):
        move(1)
        _changed()
        act(lambda: c.reject(sid, identity), "Reject", lambda _: f"{sid} rejected")


# ------------------------------------------------------------------------------- track


def track_page() -> None:
    """One person track: its crops, the source at its moment, frame by frame with the box."""
    st.title("Track")
    c = client()
    raw = st.session_state.pop("open_track", None) or st.query_params.get("track")
    track_id = st.number_input("Track id", min_value=1, step=1, value=int(raw) if raw else 1)
    st.query_params["track"] = str(int(track_id))
    track = run(lambda: c.track(int(track_id)), "Loading the track")
    if track is None:
        return
    tz = viewer_tz()
    span = local_span(track.start_time, track.end_time, tz)
    st.subheader(f"Track #{track.id} · {track.camera or 'camera ?'} · {span}")
    st.caption(
        f"{track.frames} frames seen, {len(track.sightings)} crops · media #{track.media_id} "
        f"from {track.clip_offset_s:.1f} s"
    )
    crops = [d for d in (_crop(x.url, c) for x in track.sightings) if d]
    if crops:
        st.image(crops, width=72)
    frames, clip = st.tabs(["Frames with the box", "Source clip"])
    with frames:
        if track.sightings:
            n = len(track.sightings)
            i = st.slider("Crop", 1, n, 1) - 1 if n > 1 else 0
            chosen = track.sightings[i]
            frame = run(lambda: c.sighting_frame(chosen.sighting_id), "Loading the frame")
            if frame:
                st.image(
                    frame,
                    caption=f"frame {chosen.frame_index} · {local_span(chosen.time, None, tz)} "
                    f"· {chosen.offset_s:.2f} s into the source",
                )
    with clip:
        if track.media_kind != "video" or not track.clip_url:
            st.caption("The source is a still image.")
        elif st.button("Play the source from the track's start"):
            data = run(lambda: c.fetch(track.clip_url), "Loading the clip")
            if data:
                st.video(data, start_time=int(track.clip_offset_s))


# ---------------------------------------------------------------------------- identity


def identity_page() -> None:
    st.title("Identity")
    flash()
    c = client()
    listing = run(lambda: c.identities(limit=200), "Loading identities")
    options = [i.id for i in listing.items] if listing else []
    current = st.session_state.get("identity_id")
    if current is not None and current not in options:
        options.insert(0, current)
    if not options:
        st.info("No identities yet: assign a sighting from a search result to create one.")
        return
    labels = (
        {i.id: f"{i.id} · {i.label or 'unnamed'} · {i.sightings} sightings" for i in listing.items}
        if listing
        else {}
    )
    chosen = st.selectbox(
        "Identity",
        options,
        index=options.index(current) if current in options else 0,
        format_func=lambda i: labels.get(i, str(i)),
    )
    st.session_state["identity_id"] = chosen
    ident = run(lambda: c.identity(chosen), "Loading the identity")
    if ident is None:
        return
    if ident.merged_into:
        st.warning(f"Merged into identity {ident.merged_into}.")
    st.subheader(f"{ident.label or 'Identity'} {ident.id}: {len(ident.sightings)} sightings")
    tz = viewer_tz()
    _timeline(ident.sightings)
    names = _camera_names()
    selected: list[int] = []
    for start in range(0, len(ident.sightings), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, s in zip(cols, ident.sightings[start : start + COLUMNS], strict=False):
            with col:
                where = names.get(s.camera_id, f"camera {s.camera_id}")
                show_crop(s.url, f"#{s.sighting_id} · {where} · {local_span(s.time, None, tz)}")
                if st.checkbox("select", key=f"sel-{s.sighting_id}"):
                    selected.append(s.sighting_id)
                if st.button("Reject", key=f"rej-{s.sighting_id}"):
                    act(
                        lambda s=s: c.reject(s.sighting_id, ident.id),
                        "Reject",
                        lambda _, s=s: (
                            f"Sighting {s.sighting_id} rejected: it left identity "
                            f"{ident.id} and its searches"
                        ),
                    )
    st.divider()
    a, b, m = st.columns(3)
    with a:
        st.markdown("**Add a sighting**")
        sid = st.number_input("Sighting id", min_value=1, step=1, key="add_sid")
        if st.button("Confirm into this identity"):
            act(
                lambda: c.confirm(int(sid), ident.id),
                "Confirm",
                lambda _: f"Sighting {int(sid)} confirmed as identity {ident.id}",
            )
    with b:
        st.markdown("**Split / reassign the selected**")
        new_label = st.text_input("New identity label", key="split_label")
        if st.button("Split into a new identity", disabled=not selected):
            act(
                lambda: c.split(ident.id, selected, new_label or None),
                "Split",
                lambda ack: f"{len(selected)} sightings moved to new identity {ack.identity_id}",
            )
        target = st.number_input("…or reassign to identity", min_value=1, step=1, key="re_id")
        if st.button("Reassign", disabled=not selected):
            act(
                lambda: [c.assign(sid_, int(target)) for sid_ in selected],
                "Reassign",
                lambda acks: f"{len(acks)} sightings reassigned to identity {int(target)}",
            )
    with m:
        _merge(ident.id)
    _history(ident)


def _merge(target: int) -> None:
    """Merge another identity into this one: preview first, then confirm."""
    c = client()
    st.markdown("**Merge**")
    other = st.number_input("Merge identity", min_value=1, step=1, key="merge_src")
    if st.button("Preview the merge"):
        st.session_state["merge_preview"] = (target, int(other))
    if st.session_state.get("merge_preview") != (target, int(other)):
        return
    preview = run(lambda: c.merge_preview(target, [int(other)]), "Previewing the merge")
    if preview is None:
        st.session_state.pop("merge_preview", None)
        return
    for who in (preview.target, *preview.sources):
        cams = ", ".join(f"{x.camera or x.camera_id} ({x.sightings})" for x in who.cameras)
        st.caption(
            f"Identity {who.id} {who.label or ''}: {who.sightings} sightings, {who.tracks} "
            f"tracks · {cams or 'no camera'} · "
            f"{local_span(who.first_time, who.last_time, viewer_tz())}"
        )
        samples = [d for d in (_crop(x.url, c) for x in who.samples[:6]) if d]
        if samples:
            st.image(samples, width=48)
    if preview.simultaneous_count:
        st.warning(
            f"{preview.simultaneous_count} pairs of sightings were seen less than 2 s apart on "
            "different cameras: one person cannot be in both places."
        )
    if st.button("Confirm the merge", type="primary"):
        st.session_state.pop("merge_preview", None)
        act(
            lambda: c.merge(target, [int(other)]),
            "Merge",
            lambda ack: (
                f"Identity {int(other)} merged: {ack.moved} sightings moved here "
                f"(undo from the history below)"
            ),
        )


#: History rows shown, newest first (the Audit page holds every event).
HISTORY_ROWS = 50


def _history(ident: Any) -> None:
    """Every review action on the identity (merges, splits, and confirms, rejects and assigns
    of its sightings) with its undos; an Undo button on each row the API says it would undo
    now (not undone, not touched by later work)."""
    c = client()
    events = sorted(ident.history, key=lambda e: e.id, reverse=True)
    if not events and not ident.decisions:
        return
    st.markdown("**History**")
    tz = viewer_tz()
    for e in events[:HISTORY_ROWS]:
        line = f"{local_span(e.at, None, tz)} · {e.actor} · {history_line(e)}"
        if e.undoable:
            cols = st.columns([5, 1])
            cols[0].caption(line)
            cols[1].button("Undo", key=f"undo-{e.id}", on_click=_undo, args=(c, e.id, e.action))
        else:
            st.caption(line)
    if len(events) > HISTORY_ROWS:
        st.caption(f"{len(events) - HISTORY_ROWS} older events: see the Audit page.")
    if ident.decisions:
        st.dataframe([d.model_dump() for d in ident.decisions], hide_index=True, width="stretch")


def _undo(c: Any, event_id: int, action: str) -> None:
    try:
        out = c.undo(event_id)
    except ApiError as exc:
        st.session_state["flash_error"] = f"Undo failed — {exc}"
        return
    _changed()
    back = ", ".join(str(i) for i in out.sightings)
    st.session_state["flash"] = (
        f"{action} undone: sighting{'s' if len(out.sightings) != 1 else ''} {back} back as before"
    )


def _session_cached(key: str, fetch: Callable[[], T], what: str, ttl_s: float = 30.0) -> T | None:
    """``fetch()`` at most every ``ttl_s`` per session: lists every page run needs (cameras,
    open cases) are not asked of the API on every click. Actions that change one forget it."""
    at, value = st.session_state.get(key, (0.0, None))
    if value is None or time.monotonic() - at > ttl_s:
        value = run(fetch, what)
        if value is None:
            return None
        st.session_state[key] = (time.monotonic(), value)
    return value


def _forget(key: str) -> None:
    st.session_state.pop(key, None)


def _cameras() -> list[Any]:
    return _session_cached("cameras", client().cameras, "Loading cameras") or []


def _camera_names() -> dict[int, str]:
    return {cam.id: cam.name for cam in _cameras()}


def _timeline(sightings: list[Any]) -> None:
    """When and where the identity was seen: a clickable timeline (a point opens its
    sighting's frame) and the route across cameras in order."""
    tz = viewer_tz()
    rows = timeline_rows(sightings, _camera_names(), tz)
    if not rows:
        st.caption("None of its sightings has a recording time.")
        return
    import altair as alt

    pick = alt.selection_point(name="pick", fields=["sighting"])
    chart = (
        alt.Chart(alt.Data(values=[{**r, "time": r["time"].isoformat()} for r in rows]))
        .mark_circle(size=140)
        .encode(
            x=alt.X("time:T", title=f"time ({tz})", axis=alt.Axis(format="%Y-%m-%d %H:%M:%S")),
            y=alt.Y("camera:N", title=None),
            tooltip=["camera:N", alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S"), "sighting:Q"],
        )
        .add_params(pick)
    )
    event = st.altair_chart(chart, on_select="rerun", key="timeline", width="stretch")
    picked = (getattr(event, "selection", None) or {}).get("pick") or []
    route = camera_route(rows)
    st.markdown(
        "**Route:** "
        + " → ".join(
            f"{stop['camera']} {stop['first']:%H:%M:%S}"
            + (f"–{stop['last']:%H:%M:%S}" if stop["last"] != stop["first"] else "")
            + f" ({stop['sightings']})"
            for stop in route
        )
    )
    located = {cam.name: cam for cam in _cameras() if cam.latitude is not None}
    visited = [located[stop["camera"]] for stop in route if stop["camera"] in located]
    if visited:
        st.map(
            [{"lat": cam.latitude, "lon": cam.longitude} for cam in visited],
            size=20,
            height=260,
        )
        st.caption("Cameras of the route that have a location (`aioreid cameras set-location`).")
    if picked:
        sid = int(picked[0]["sighting"])
        frame = run(lambda: client().sighting_frame(sid), "Loading the frame")
        if frame:
            st.image(frame, caption=f"Sighting #{sid}, its box drawn", width=480)


# ------------------------------------------------------------------------------- cases


def case_picker() -> int | None:
    """The case results are pinned to (sidebar), from the open cases. The choice is kept
    under its own key: Streamlit forgets a widget's value when a page run skips it."""
    listing = _session_cached(
        "open_cases", lambda: client().cases(status="open", limit=200), "Loading cases"
    )
    options = {c.id: f"#{c.id} {c.title}" for c in listing.items} if listing else {}
    if "pending_case" in st.session_state:  # a case just opened: pin to it from now on
        st.session_state["case_id"] = st.session_state.pop("pending_case")
    if st.session_state.get("case_id") not in options:
        st.session_state["case_id"] = None  # closed meanwhile
    st.session_state["case_choice"] = st.session_state["case_id"]
    with st.sidebar:
        st.selectbox(
            "Pin to case",
            [None, *options],
            format_func=lambda i: "— no case —" if i is None else options[i],
            placeholder="— no case —",
            key="case_choice",
            on_change=_keep_case,
        )
    return st.session_state["case_id"]


def _keep_case() -> None:
    st.session_state["case_id"] = st.session_state["case_choice"]


def cases_page() -> None:
    """Investigations: pinned tracks, sightings and searches with notes; evidence export."""
    st.title("Cases")
    flash()
    c = client()
    with st.form("new_case", clear_on_submit=True):
        title = st.text_input("New case title")
        description = st.text_area("What it is about")
        if st.form_submit_button("Create case") and title.strip():
            case = run(lambda: c.create_case(title.strip(), description or None), "Creating")
            if case:
                st.session_state["pending_case"] = case.id  # picked on the next run
                _forget("open_cases")
                st.session_state["flash"] = f"Case #{case.id} opened"
                st.rerun()
    status = st.segmented_control("Show", ["open", "closed"], default="open", key="case_status")
    listing = run(lambda: c.cases(status=status or None, limit=200), "Loading cases")
    if not listing or not listing.items:
        st.caption("No cases yet.")
        return
    options = {x.id: f"#{x.id} {x.title} ({x.items} items)" for x in listing.items}
    current = st.session_state.get("case_id") or st.session_state.get("pending_case")
    case_id = st.selectbox(
        "Case",
        list(options),
        index=list(options).index(current) if current in options else 0,
        format_func=options.__getitem__,
    )
    case = run(lambda: c.case(case_id), "Loading the case")
    if case is None:
        return
    tz = viewer_tz()
    st.subheader(f"#{case.id} {case.title} · {case.status}")
    if case.description:
        st.write(case.description)
    st.caption(f"opened by {case.created_by} · {local_span(case.created_at, None, tz)}")
    for item in case.items:
        _case_item(case, item)
    a, b = st.columns(2)
    if case.status == "open":
        a.button("Close the case", on_click=_case_call, args=(c.close_case, case.id, "closed"))
    else:
        a.button("Reopen the case", on_click=_case_call, args=(c.reopen_case, case.id, "reopened"))
    with b:
        _export(case.id)
    with st.expander("Case history"):
        for e in case.history:
            st.caption(f"{local_span(e.at, None, tz)} · {e.actor} · {e.action} {e.details or ''}")


def _case_call(action: Callable[[int], Any], case_id: int, what: str) -> None:
    try:
        action(case_id)
        _forget("open_cases")
        st.session_state["flash"] = f"Case #{case_id} {what}"
    except ApiError as exc:
        st.session_state["flash_error"] = f"Case #{case_id} not {what} — {exc}"


def _case_item(case: Any, item: Any) -> None:
    c = client()
    with st.container(border=True):
        left, right = st.columns([1, 3])
        with left:
            if item.track is not None and item.track.crop_url:
                show_crop(item.track.crop_url)
            elif item.sighting is not None and item.sighting.url:
                show_crop(item.sighting.url)
        with right:
            if item.missing:
                st.warning(f"{item.kind} {item.ref_id} no longer exists (retention)")
            elif item.track is not None:
                t = item.track
                span = local_span(t.start_time, t.end_time, viewer_tz())
                st.markdown(f"**Track #{t.track_id}** · {t.camera or 'camera ?'} · {span}")
            elif item.sighting is not None:
                x = item.sighting
                when = local_span(x.time, None, viewer_tz())
                st.markdown(f"**Sighting #{x.sighting_id}** · {x.camera or 'camera ?'} · {when}")
            else:
                q = item.query or {}
                st.markdown(f"**Search** · {', '.join(q.get('parts') or []) or 'query'}")
                st.caption(f"{q.get('text') or ''} · {len(q.get('hits') or [])} hits kept")
            st.caption(
                f"pinned by {item.pinned_by} · {local_span(item.pinned_at, None, viewer_tz())}"
            )
            if case.status == "open":
                note = st.text_area("Note", value=item.note or "", key=f"note-{item.id}")
                n1, n2 = st.columns(2)
                if n1.button("Save note", key=f"save-{item.id}") and note != (item.note or ""):
                    act(lambda: c.set_note(case.id, item.id, note), "Note", lambda _: "Note saved")
                if n2.button("Unpin", key=f"unpin-{item.id}"):
                    act(lambda: c.unpin(case.id, item.id), "Unpin", lambda _: "Unpinned")
            elif item.note:
                st.write(item.note)


def _export(case_id: int) -> None:
    """Build the evidence ZIP through the API and offer it for download."""
    if st.button("Export evidence"):
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"case-{case_id}.zip"
            path = run(lambda: client().export_case(case_id, out), "Exporting the evidence")
            if path is not None:
                st.session_state["evidence"] = (case_id, path.read_bytes())
    held = st.session_state.get("evidence")
    if held and held[0] == case_id:
        st.download_button(
            "Download the evidence ZIP",
            held[1],
            file_name=f"case-{case_id}-evidence.zip",
            mime="application/zip",
        )
        st.caption("Check it with `aioreid case verify case-….zip`.")


# ------------------------------------------------------------------------------- audit


def audit_page() -> None:
    """Every action, searches included, by key: filter by actor, action and time."""
    st.title("Audit")
    c = client()
    tz = viewer_tz()
    a, b, f, t = st.columns(4)
    actor = a.text_input("Actor", key="au_actor")
    action = b.text_input("Action", key="au_action", placeholder="search, merge, export…")
    since = f.text_input(f"Since ({tz})", key="au_since", placeholder="2024-03-04 08:00")
    until = t.text_input(f"Until ({tz})", key="au_until")
    page = st.session_state.get("au_page", 0)
    try:
        window = [
            (datetime.fromisoformat(v).replace(tzinfo=tz) if v.strip() else None)
            for v in (since, until)
        ]
    except ValueError as exc:
        st.error(f"Not a date and time: {exc}")
        return
    listing = run(
        lambda: c.audit(
            actor=actor or None,
            action=action or None,
            since=window[0],
            until=window[1],
            offset=page * 50,
            limit=50,
        ),
        "Loading the audit trail",
    )
    if listing is None:
        return
    scope = "every key" if listing.scope == "all" else "your key only (an admin key sees all)"
    st.caption(f"{listing.total} events · showing {scope}")
    st.dataframe(
        [
            {
                "when": local_span(e.at, None, tz),
                "actor": e.actor,
                "key": e.key_id,
                "action": e.action,
                "entity": f"{e.entity} {e.entity_id or ''}",
                "details": e.details,
            }
            for e in listing.items
        ],
        hide_index=True,
        width="stretch",
    )
    p1, _, p2 = st.columns([1, 4, 1])
    p1.button("◀ Newer", disabled=page == 0, on_click=lambda: _page_to("au_page", page - 1))
    more = (page + 1) * 50 < listing.total
    p2.button("Older ▶", disabled=not more, on_click=lambda: _page_to("au_page", page + 1))


def _page_to(key: str, page: int) -> None:
    st.session_state[key] = max(0, page)


# ------------------------------------------------------------------------------ ingest


def ingest_page() -> None:
    st.title("Ingest")
    c = client()
    up, folder = st.tabs(["Upload files", "Folder or dataset on the server"])
    with up:
        files = st.file_uploader(
            "Images or videos",
            accept_multiple_files=True,
            key="ing_files",
            type=["jpg", "jpeg", "png", "bmp", "webp", "mp4", "avi", "mov", "mkv"],
        )
        cam, modality, detector, start = _source_fields("up")
        limits = run(c.limits, "Reading the upload limits")
        if limits is not None:
            st.caption(
                f"Up to {limits.max_upload_mb:g} MB per file and "
                f"{limits.max_files_per_request} files per upload."
            )
            keep, left_out = within_limits(
                [(f.name, f.size) for f in files or []],
                limits.max_upload_mb,
                limits.max_files_per_request,
            )
            for line in left_out:
                st.warning(f"Left out: {line}")
            files = [files[i] for i in keep] if files else files
        if st.button("Start ingest job", disabled=not files, type="primary"):
            job = run(
                lambda: c.upload_files(
                    [(f.name, f.getvalue()) for f in files],
                    camera=cam or None,
                    modality=modality,
                    detector=detector,
                    start_time=start,
                ),
                "Starting the job",
            )
            if job:
                st.session_state["watch_job"] = job.job_id
                st.success(f"Job {job.job_id} started")
    with folder:
        path = st.text_input("Folder", key="ing_path", placeholder="/data/Market-1501-v15.09.15")
        dataset = st.text_input("Dataset layout (optional)", key="ing_ds", placeholder="market1501")
        f_cam, f_mod, f_det, f_start = _source_fields("folder")
        if st.button("Start folder job", disabled=not path):
            job = run(
                lambda: c.ingest_folder(
                    path,
                    dataset=dataset or None,
                    camera=f_cam or None,
                    modality=f_mod,
                    detector=f_det,
                    start_time=f_start,
                ),
                "Starting the job",
            )
            if job:
                st.session_state["watch_job"] = job.job_id
                st.success(f"Job {job.job_id} started")
    _jobs_panel()


def _source_fields(key: str) -> tuple[str, str, str, datetime | None]:
    """Camera, modality, detector and recording start of the files of one ingest."""
    cam = st.text_input("Camera", key=f"{key}_cam")
    modality = st.radio("Modality", ["rgb", "ir"], horizontal=True, key=f"{key}_mod")
    detector = st.radio(
        "People",
        list(DETECTOR_NAMES),
        horizontal=True,
        key=f"{key}_det",
        help="crops: files already are person crops; background: static camera video",
    )
    tz = viewer_tz()
    raw = st.text_input(
        f"Recording start ({tz})",
        key=f"{key}_start",
        placeholder="2024-03-04 08:00:00",
        help="When the videos began; sightings get their times from it.",
    )
    start = None
    if raw.strip():
        try:
            start = datetime.fromisoformat(raw.strip())
            start = start if start.tzinfo else start.replace(tzinfo=tz)
        except ValueError:
            st.error(f"Recording start {raw!r} is not a date and time like 2024-03-04 08:00")
    return cam, modality, detector, start


@st.fragment(run_every=2)
def _jobs_panel() -> None:
    c = client()
    jobs = run(lambda: c.jobs(limit=10), "Loading jobs")
    if not jobs or not jobs.items:
        st.caption("No jobs yet.")
        return
    st.subheader("Jobs")
    for j in jobs.items:
        frac, label = job_progress(j)
        st.progress(frac, text=f"#{j.id} {j.kind} · {label} · {j.source or ''}")
    watch = st.session_state.get("watch_job") or jobs.items[0].id
    detail = run(lambda: c.job(watch), "Loading the job")
    if detail and detail.sightings is not None:
        st.caption(f"Job {watch}: {detail.sightings} sightings so far")
    if detail and detail.failures:
        st.markdown(f"**Failures of job {watch}**")
        st.dataframe(
            [{"item": f.item, "reason": f.reason} for f in detail.failures],
            hide_index=True,
            width="stretch",
        )


# ------------------------------------------------------------------------------- index


def index_page() -> None:
    st.title("Index")
    flash()
    c = client()
    stats = run(c.stats, "Loading the index status")
    if stats is None:
        return
    cols = st.columns(5)
    for col, (name, value) in zip(
        cols,
        [
            ("Media", stats.media),
            ("Failed media", stats.media_failed),
            ("Sightings", stats.sightings),
            ("Identities", stats.identities),
            ("Cameras", stats.cameras),
        ],
        strict=True,
    ):
        col.metric(name, value)
    st.markdown(f"Live alias **{stats.alias}** → `{stats.live_collection or '—'}`")
    st.subheader("Collections")
    st.dataframe([g.model_dump() for g in stats.generations], hide_index=True, width="stretch")
    _camera_locations()
    st.subheader("Encoder versions")
    st.dataframe([v.model_dump() for v in stats.encoder_versions], hide_index=True, width="stretch")
    st.subheader("Re-index")
    st.caption(
        "Re-embeds every sighting with the API's configured encoder into a new collection; "
        "search keeps using the live one until the swap at the end."
    )
    if st.button("Start re-index"):
        started = run(c.start_reindex, "Starting the re-index")
        if started:
            st.success(f"Re-index {started.generation_id} started ({started.version})")
    _generations_panel()


def _camera_locations() -> None:
    """Where each camera is (WGS 84): the identity page maps a route over located cameras."""
    c = client()
    cams = run(c.cameras, "Loading cameras") or []
    if not cams:
        return
    with st.expander("Camera locations"):
        for cam in cams:
            a, b, n, go = st.columns([2, 2, 2, 1])
            lat = a.number_input(
                f"{cam.name} latitude",
                -90.0,
                90.0,
                cam.latitude,
                format="%.6f",
                key=f"lat-{cam.id}",
            )
            lon = b.number_input(
                "longitude", -180.0, 180.0, cam.longitude, format="%.6f", key=f"lon-{cam.id}"
            )
            label = n.text_input("place", value=cam.location or "", key=f"loc-{cam.id}")
            if go.button("Save", key=f"save-cam-{cam.id}"):
                _forget("cameras")
                act(
                    lambda cam=cam, lat=lat, lon=lon, label=label: c.set_camera_location(
                        cam.id, lat, lon, location=label or None
                    ),
                    "Saving the location",
                    lambda out: f"Camera {out.name} located",
                )


@st.fragment(run_every=3)
def _generations_panel() -> None:
    gens = run(client().generations, "Loading re-index progress") or []
    for g in gens:
        done = g.points / max(1, g.points + g.remaining)
        label = f"{g.collection} · {g.status} · {g.points} points"
        if g.status == "building":
            label += f", {g.remaining} to go"
        st.progress(1.0 if g.status == "live" else done, text=label)
