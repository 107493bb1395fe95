"""The console in a real browser (headless Chromium, `console_browser`): sign in, text search,
a review action checked in the database, "Similar"; a case, a pinned and opened track, the
evidence export checked by `aioreid case verify`; the identity page. The screenshots in docs/
come from these runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_browser import (
    body,
    chromium,
    click,
    loaded_images,
    open_page,
    running_console,
    screenshot,
    sign_in,
    type_into,
    wait,
    wait_for_text,
)
from sqlalchemy import create_engine, text


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("browser")
    with running_console(tmp) as url:
        yield url, tmp / "home"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def test_text_search_and_review_in_a_real_browser(console_url, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    url, home = console_url
    d = browser
    sign_in(d, url)
    # In the query form the text is sent when "Search" is pressed.
    type_into(d, By.TAG_NAME, "textarea", "a person with a red top")
    click(d, "Search")
    wait_for_text(d, "tracks ranked")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "img")) >= 8)
    page = body(d)
    ranked = [line for line in page.splitlines() if "ranked" in line]
    assert ranked and re.search(r"1–\d+ of \d+ tracks ranked", ranked[0]), ranked
    assert "gate" in page
    assert "a person with a red top" in page  # the query stays beside its results
    assert "text=a+person+with+a+red+top" in d.current_url  # and is a link
    screenshot(d, "console-search-test.png")
    click(d, "New identity")
    wait_for_text(d, "is now identity")

    engine = create_engine(f"sqlite:///{home / 'aioreid.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.provenance, a.actor, a.active FROM assignments a "
                "JOIN identities i ON i.id = a.identity_id"
            )
        ).all()
    engine.dispose()
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [("analyst", "bootstrap", True)]
    # "Similar" (a button in the result grid) makes its own search, a link of its own.
    click(d, "Similar")
    wait_for_text(d, "Looks like sighting #")
    assert "similar=" in d.current_url and "text=" not in d.current_url


def test_track_case_and_evidence_export_in_a_real_browser(  # type: ignore[no-untyped-def]
    console_url, browser, tmp_path
) -> None:
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from aioreid.platform.cli import app

    url, _ = console_url
    d = browser
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    d.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    sign_in(d, url)  # a new browser session: sign in again
    # A case to collect the evidence in.
    open_page(d, "Cases")
    type_into(d, By.CSS_SELECTOR, "input[aria-label='New case title']", "Hall incident")
    click(d, "Create case")
    wait_for_text(d, "Hall incident")
    # Search for the hall camera's tracks, pin one, open it.
    open_page(d, "Search")
    type_into(d, By.TAG_NAME, "textarea", "a person in the hall")
    click(d, "Search")
    wait_for_text(d, "tracks ranked")
    wait(d, lambda d: len(loaded_images(d)) >= 12)
    screenshot(d, "console-search.png")
    click(d, "Pin to case")
    wait_for_text(d, "pinned to #")
    click(d, "Open")
    wait_for_text(d, "Frames with the box")
    wait_for_text(d, "into the source")
    wait(d, lambda d: len(loaded_images(d)) >= 3)
    screenshot(d, "console-track.png")
    # Export the case and check the ZIP the browser saved.
    open_page(d, "Cases")
    click(d, "Export evidence")
    click(d, "Download the evidence ZIP")
    zips = wait(d, lambda d: [p for p in downloads.glob("*.zip") if p.stat().st_size > 0])
    verified = CliRunner().invoke(app, ["case", "verify", str(zips[0])])
    assert verified.exit_code == 0, verified.output
    assert "#1 Hall incident" in body(d)  # the case to pin to survives the page changes
    open_page(d, "Identity")
    wait(d, lambda d: "Route:" in (page := body(d)) or "recording time" in page)
    wait(d, lambda d: len(loaded_images(d)) >= 1)
    screenshot(d, "console-identity.png")
