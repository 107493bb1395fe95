"""The aio-reid console (Streamlit): `aioreid ui` or `streamlit run ui/app.py`.

Pages: Search, Identity, Ingest, Index. Everything goes through the SDK; API errors are shown
as readable messages, never tracebacks.
"""

from __future__ import annotations

import streamlit as st

from aioreid.ui import heap
from aioreid.ui import views as pages
from aioreid.ui.connection import check_key, make_client

# Before any work: the collection after the previous run has just left only survivors.
heap.settle()
st.set_page_config(page_title="aio-reid console", page_icon=":material/search:", layout="wide")


def login() -> None:
    st.title("aio-reid console")
    st.write("Multimodal person search: RGB, infrared, sketch and text.")
    with st.form("login"):
        key = st.text_input("API key", type="password", help="`aioreid keys create NAME` makes one")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        client = make_client(key.strip())
        problem = check_key(client)
        if problem:
            st.error(problem)
        else:
            st.session_state["api_key"] = key.strip()
            st.rerun()


if "api_key" not in st.session_state:
    login()
else:
    st.session_state.setdefault("client", make_client(st.session_state["api_key"]))
    # Material icons: emoji render as empty boxes where the browser has no emoji font.
    identity = st.Page(
        pages.identity_page, title="Identity", icon=":material/person:", url_path="identity"
    )
    track = st.Page(pages.track_page, title="Track", icon=":material/route:", url_path="track")
    st.session_state["identity_page_obj"] = identity
    st.session_state["track_page_obj"] = track
    nav = st.navigation(
        [
            st.Page(
                pages.search_page,
                title="Search",
                icon=":material/search:",
                url_path="search",
                default=True,
            ),
            track,
            identity,
            st.Page(pages.cases_page, title="Cases", icon=":material/folder:", url_path="cases"),
            st.Page(pages.audit_page, title="Audit", icon=":material/history:", url_path="audit"),
            st.Page(pages.ingest_page, title="Ingest", icon=":material/upload:", url_path="ingest"),
            st.Page(pages.index_page, title="Index", icon=":material/storage:", url_path="index"),
        ]
    )
    pages.case_picker()  # on every page, so the chosen case survives page changes
    with st.sidebar:
        if st.button("Sign out"):
            for k in list(st.session_state):
                del st.session_state[k]
            st.rerun()
    nav.run()
