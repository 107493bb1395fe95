"""The console's pages. Each reads the SDK client from the session and shows API errors as
messages (``run``) instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timezone
from typing import Any, TypeVar

import streamlit as st

from aioreid.platform.sdk import ApiError, Client
from aioreid.ui.format import (
    attribute_filter,
    group_hits,
    hit_caption,
    job_progress,
    sketch_png,
    timeline_rows,
    within_limits,
)

T = TypeVar("T")
COLUMNS = 6


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


@st.cache_data(ttl=30, show_spinner=False)
def _crop(url: str, _c: Any) -> bytes | None:
    try:
        return _c.fetch(url)
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


def _filters_sidebar() -> tuple[dict, dict]:
    c = client()
    cams = run(c.cameras, "Loading cameras") or []
    with st.sidebar:
        st.header("Filters")
        names = {f"{cam.name} ({cam.modality})": cam.id for cam in cams}
        chosen = st.multiselect("Cameras", list(names), key="f_cams")
        use_time = st.checkbox("Time range", key="f_use_time")
        flt: dict[str, Any] = {}
        if use_time:
            d0 = st.date_input("From day", key="f_d0")
            t0 = st.time_input("From time", value=time(0, 0), key="f_t0")
            d1 = st.date_input("To day", key="f_d1")
            t1 = st.time_input("To time", value=time(23, 59), key="f_t1")
            flt["time_from"] = datetime.combine(d0, t0, tzinfo=timezone.utc).isoformat()
            flt["time_to"] = datetime.combine(d1, t1, tzinfo=timezone.utc).isoformat()
        attrs = st.text_input("Attributes", placeholder="bag=yes, hat=beanie", key="f_attrs")
        review = st.selectbox("Review state", ["any", "unreviewed", "confirmed"], key="f_review")
        st.header("Results")
        threshold = st.slider("Minimum score", -1.0, 1.0, 0.0, 0.01, key="o_threshold")
        limit = st.slider("How many", 6, 120, 30, 6, key="o_limit")
        group = st.toggle("Group by identity", key="o_group")
        st.header("Review")
        review_for = st.number_input(
            "Reviewing matches for identity",
            min_value=0,
            step=1,
            key="o_review_for",
            help="0: not reviewing. Otherwise each result gets ✓ / ✗ buttons and sightings "
            "already rejected for this identity are left out.",
        )
    if chosen:
        flt["cameras"] = [names[n] for n in chosen]
    try:
        parsed = attribute_filter(attrs)
    except ValueError as exc:
        st.sidebar.error(str(exc))
        parsed = {}
    if parsed:
        flt["attributes"] = parsed
    if review != "any":
        flt["review"] = review
    opts = {"threshold": threshold, "limit": limit, "group_by_identity": group}
    if review_for:
        opts["for_identity"] = int(review_for)
    return flt, opts


def _query_inputs() -> dict[str, Any]:
    st.subheader("Who are you looking for?")
    left, mid, right = st.columns([2, 1, 1])
    parts: dict[str, Any] = {}
    with left:
        text = st.text_area(
            "Description",
            placeholder="a woman in a long red coat with a black shoulder bag",
            key="q_text",
        )
        if text.strip():
            parts["text"] = text.strip()
    with mid:
        rgb = st.file_uploader("RGB photo", type=["jpg", "jpeg", "png", "bmp", "webp"], key="q_rgb")
        ir = st.file_uploader("Infrared image", type=["jpg", "jpeg", "png", "bmp"], key="q_ir")
        if rgb is not None:
            parts["rgb"] = rgb.getvalue()
        if ir is not None:
            parts["ir"] = ir.getvalue()
    with right:
        sketch = st.file_uploader("Sketch", type=["jpg", "jpeg", "png"], key="q_sketch")
        drawn = _sketch_canvas()
        if sketch is not None:
            parts["sketch"] = sketch.getvalue()
        elif drawn is not None:
            parts["sketch"] = drawn
    return parts


def _sketch_canvas() -> bytes | None:
    """A small drawing pad when streamlit-drawable-canvas is installed."""
    try:
        from streamlit_drawable_canvas import st_canvas
    except ImportError:
        return None
    with st.expander("…or draw one"):
        res = st_canvas(
            stroke_width=3,
            stroke_color="#000000",
            background_color="#ffffff",
            height=256,
            width=128,
            drawing_mode="freedraw",
            key="q_canvas",
        )
    return sketch_png(getattr(res, "image_data", None))


def _show_hits(hits: list, key: str, review_for: int | None) -> None:
    c = client()
    for row_start in range(0, len(hits), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, hit in zip(cols, hits[row_start : row_start + COLUMNS], strict=False):
            with col:
                show_crop(hit.url, hit_caption(hit))
                b1, b2 = st.columns(2)
                if b1.button("Similar", key=f"{key}-sim-{hit.sighting_id}"):
                    st.session_state["similar_to"] = hit.sighting_id
                    st.rerun()
                if hit.identity_id is not None and b2.button(
                    f"ID {hit.identity_id}", key=f"{key}-id-{hit.sighting_id}"
                ):
                    open_identity(hit.identity_id)
                sid = hit.sighting_id
                if review_for is not None:
                    r1, r2 = st.columns(2)
                    if r1.button("✓ Match", key=f"{key}-ok-{sid}"):
                        act(
                            lambda sid=sid: c.confirm(sid, review_for),
                            "Confirm",
                            lambda _, sid=sid: f"Sighting {sid} confirmed as identity {review_for}",
                        )
                    if r2.button("✗ Not", key=f"{key}-no-{sid}"):
                        act(
                            lambda sid=sid: c.reject(sid, review_for),
                            "Reject",
                            lambda _, sid=sid: f"Sighting {sid} rejected for identity {review_for}",
                        )
                elif hit.identity_id is None and st.button("New identity", key=f"{key}-new-{sid}"):
                    act(
                        lambda sid=sid: c.assign(sid, None),
                        "Assign",
                        lambda ack, sid=sid: (
                            f"Sighting {sid} is now identity {ack.identity_id}; "
                            "matches can be reviewed for it"
                        ),
                    )


def search_page() -> None:
    st.title("Search")
    flash()
    flt, opts = _filters_sidebar()
    similar_to = st.session_state.get("similar_to")
    if similar_to is not None:
        st.info(f"Showing sightings similar to sighting {similar_to}.")
        if st.button("Back to my query"):
            st.session_state.pop("similar_to")
            st.rerun()
        sim_opts = {k: v for k, v in opts.items() if k != "for_identity"}
        res = run(
            lambda: client().find_similar(similar_to, filters=flt, **sim_opts), "Find-similar"
        )
    else:
        parts = _query_inputs()
        go = st.button("Search", type="primary", disabled=not parts)
        if not parts:
            st.caption(
                "Type a description, upload a photo, an IR image or a sketch — or combine them."
            )
        if go:
            st.session_state["last_query"] = parts
        parts = st.session_state.get("last_query")
        if not parts:
            return
        res = run(lambda: client().search(filters=flt, **parts, **opts), "Search")
    if res is None:
        return
    st.caption(
        f"{len(res.hits)} sightings in {res.took_ms:.0f} ms · query parts: "
        f"{', '.join(res.query_parts)} · encoder {res.encoder_version}"
    )
    if not res.hits:
        st.warning("Nothing above the minimum score. Lower it or relax the filters.")
        return
    if res.groups is not None:
        for g in group_hits(res.groups):
            st.markdown(f"**{g['title']}** — best score {g['best']:.3f}")
            _show_hits(g["hits"], key=f"g{g['key']}", review_for=opts.get("for_identity"))
    else:
        _show_hits(res.hits, key="flat", review_for=opts.get("for_identity"))


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
    rows = timeline_rows(ident.sightings)
    if rows:
        st.scatter_chart(rows, x="time", y="camera", size=80)
    selected: list[int] = []
    for start in range(0, len(ident.sightings), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, s in zip(cols, ident.sightings[start : start + COLUMNS], strict=False):
            with col:
                show_crop(s.url, f"#{s.sighting_id} · cam {s.camera_id} · {s.time or ''}")
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
        st.markdown("**Merge**")
        other = st.number_input("Merge identity", min_value=1, step=1, key="merge_src")
        if st.button("Merge into this one"):
            act(
                lambda: c.merge(ident.id, [int(other)]),
                "Merge",
                lambda ack: f"Identity {int(other)} merged: {ack.moved} sightings moved here",
            )
    if ident.decisions:
        st.markdown("**Review history**")
        st.dataframe([d.model_dump() for d in ident.decisions], hide_index=True, width="stretch")


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
        cam = st.text_input("Camera", key="ing_cam")
        modality = st.radio("Modality", ["rgb", "ir"], horizontal=True, key="ing_mod")
        detector = st.radio(
            "People",
            ["crops", "background", "hog"],
            horizontal=True,
            key="ing_det",
            help="crops: files already are person crops; background: static camera video",
        )
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
                ),
                "Starting the job",
            )
            if job:
                st.session_state["watch_job"] = job.job_id
                st.success(f"Job {job.job_id} started")
    with folder:
        path = st.text_input("Folder", key="ing_path", placeholder="/data/Market-1501-v15.09.15")
        dataset = st.text_input("Dataset layout (optional)", key="ing_ds", placeholder="market1501")
        if st.button("Start folder job", disabled=not path):
            job = run(lambda: c.ingest_folder(path, dataset=dataset or None), "Starting the job")
            if job:
                st.session_state["watch_job"] = job.job_id
                st.success(f"Job {job.job_id} started")
    _jobs_panel()


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


@st.fragment(run_every=3)
def _generations_panel() -> None:
    gens = run(client().generations, "Loading re-index progress") or []
    for g in gens:
        done = g.points / max(1, g.points + g.remaining)
        label = f"{g.collection} · {g.status} · {g.points} points"
        if g.status == "building":
            label += f", {g.remaining} to go"
        st.progress(1.0 if g.status == "live" else done, text=label)
