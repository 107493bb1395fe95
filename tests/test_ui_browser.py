"""The console in a real browser: `aioreid ui` on 127.0.0.1 over an embedded demo index,
driven by Debian's chromium (installed by `make test`'s set-up): sign in, text search, a review
action, the result checked in the database, and a screenshot saved."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from platform_fixtures import jpeg, person_image
from sqlalchemy import create_engine, text

from aioreid.encoder.model import AIOConfig, AIOModel

KEY = "browser-test-key-0123456789"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("AIOREID_SCREENSHOT_DIR", "var/screenshots"))


def _need_browser() -> None:
    if Path(CHROMIUM).exists() and Path(DRIVER).exists():
        return
    why = "Debian chromium + chromium-driver not installed (make test installs them)"
    if os.environ.get("AIOREID_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(why)
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    _need_browser()
    from platform_fixtures import make_settings

    from aioreid.platform.pipeline.ingest import ingest_many
    from aioreid.platform.services import Services

    tmp = tmp_path_factory.mktemp("browser")
    home = tmp / "home"
    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        tmp / "final.pt"
    )
    # Ingest with the same encoder the console's API will load, then close (one process
    # may hold the embedded index at a time).
    from aioreid.encoder.inference import Encoder

    settings = make_settings(home, None, index_backend="edge")
    settings = settings.model_copy(
        update={"encoder": settings.encoder.model_copy(update={"checkpoint": ckpt})}
    )
    svc = Services.from_settings(settings, encoder=Encoder.load(ckpt, device="cpu"))
    items = [
        {"data": jpeg(person_image(i)), "name": f"p{i}.jpg", "camera": "gate"} for i in range(8)
    ]
    ingest_many(svc, items, progress=False)
    # A video whose three walkers become tracks: the track page plays it and steps its frames.
    from datetime import datetime, timezone

    from platform_fixtures import write_walkers_video

    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.ingest import IngestOptions

    clip = tmp / "hall.mp4"
    write_walkers_video(clip)
    start = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
    video = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=5))
    item = {"path": clip, "camera": "hall", "start_time": start}
    ingest_many(svc, [item], options=video, progress=False)
    svc.close()
    port = _free_port()
    env = {
        **os.environ,
        "AIOREID_HOME": str(home),
        "AIOREID_INDEX__BACKEND": "edge",
        "AIOREID_ENCODER__CHECKPOINT": str(ckpt),
        "AIOREID_ENCODER__DEVICE": "cpu",
        "AIOREID_API__BOOTSTRAP_API_KEY": KEY,
    }
    env.pop("AIOREID_UI_API_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "aioreid"), "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"aioreid ui exited early:\n{out}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the console did not start within 60 s")
    yield url, home
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1400",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, cond, timeout: float = 90):  # type: ignore[no-untyped-def]
    """Poll ``cond`` until truthy. Streamlit re-renders the page on every interaction, so an
    element found a moment ago may be gone: lookups that hit a stale or missing element retry."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, timeout, poll_frequency=0.3, ignored_exceptions=ignored).until(
        cond
    )


def _act(driver, find, action):  # type: ignore[no-untyped-def]
    """Find an element and act on it in one retried step (a re-render between the two would
    otherwise leave a stale reference)."""

    def attempt(d):  # type: ignore[no-untyped-def]
        element = find(d)
        if not element:
            return False
        action(element)
        return True

    return _wait(driver, attempt)


def _type(driver, by: str, selector: str, *keys: str) -> None:
    """Replace the text of the element at ``selector`` with ``keys``."""

    def action(el):  # type: ignore[no-untyped-def]
        el.clear()
        el.send_keys(*keys)

    _act(driver, lambda d: d.find_element(by, selector), action)


def _click(driver, label: str) -> None:
    """Click the enabled button labelled ``label`` (retried across re-renders)."""
    from selenium.webdriver.common.by import By

    def find(d):  # type: ignore[no-untyped-def]
        for b in d.find_elements(By.TAG_NAME, "button"):
            if b.text.strip() == label and b.is_enabled():
                return b
        return False

    _act(driver, find, lambda b: b.click())


def test_text_search_and_review_in_a_real_browser(console_url, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    url, home = console_url
    d = browser
    d.get(url)
    _type(d, By.CSS_SELECTOR, "input[type='password']", KEY)
    _click(d, "Sign in")
    # In the query form the text is sent when "Search" is pressed.
    _type(d, By.TAG_NAME, "textarea", "a person with a red top")
    _click(d, "Search")
    _wait(d, lambda d: "tracks ranked" in d.find_element(By.TAG_NAME, "body").text)
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "img")) >= 8)
    body = d.find_element(By.TAG_NAME, "body").text
    ranked = [line for line in body.splitlines() if "ranked" in line]
    assert ranked and re.search(r"1–\d+ of \d+ tracks ranked", ranked[0]), ranked
    assert "gate" in body
    assert "a person with a red top" in body  # the query stays beside its results
    assert "text=a+person+with+a+red+top" in d.current_url  # and is a link
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "console-search-test.png"
    d.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    _click(d, "New identity")
    _wait(d, lambda d: "is now identity" in d.find_element(By.TAG_NAME, "body").text)

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


def _page(driver, title: str) -> None:  # type: ignore[no-untyped-def]
    """Open a console page from the navigation."""
    from selenium.webdriver.common.by import By

    def find(d):  # type: ignore[no-untyped-def]
        for a in d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a"):
            if a.text.strip().endswith(title):
                return a
        return False

    _act(driver, find, lambda a: a.click())
    _wait(driver, lambda d: title in d.find_element(By.TAG_NAME, "h1").text)


def _loaded_images(driver) -> list:  # type: ignore[no-untyped-def]
    return driver.execute_script(
        "return [...document.images].filter(i => i.complete && i.naturalWidth > 0)"
    )


def _shot(driver, name: str) -> Path:  # type: ignore[no-untyped-def]
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


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
    d.get(url)  # a new browser session: sign in again
    _type(d, By.CSS_SELECTOR, "input[type='password']", KEY)
    _click(d, "Sign in")
    # A case to collect the evidence in.
    _page(d, "Cases")
    _type(d, By.CSS_SELECTOR, "input[aria-label='New case title']", "Hall incident")
    _click(d, "Create case")
    _wait(d, lambda d: "Hall incident" in d.find_element(By.TAG_NAME, "body").text)
    # Search for the hall camera's tracks, pin one, open it.
    _page(d, "Search")
    _type(d, By.TAG_NAME, "textarea", "a person in the hall")
    _click(d, "Search")
    _wait(d, lambda d: "tracks ranked" in d.find_element(By.TAG_NAME, "body").text)
    _wait(d, lambda d: len(_loaded_images(d)) >= 12)
    _shot(d, "console-search.png")
    _click(d, "Pin to case")
    _wait(d, lambda d: "pinned to #" in d.find_element(By.TAG_NAME, "body").text)
    _click(d, "Open")
    _wait(d, lambda d: "Frames with the box" in d.find_element(By.TAG_NAME, "body").text)
    _wait(d, lambda d: "into the source" in d.find_element(By.TAG_NAME, "body").text)
    _wait(d, lambda d: len(_loaded_images(d)) >= 3)
    _shot(d, "console-track.png")
    # Export the case and check the ZIP the browser saved.
    _page(d, "Cases")
    _click(d, "Export evidence")
    _click(d, "Download the evidence ZIP")
    zips = _wait(d, lambda d: [p for p in downloads.glob("*.zip") if p.stat().st_size > 0])
    verified = CliRunner().invoke(app, ["case", "verify", str(zips[0])])
    assert verified.exit_code == 0, verified.output
    body = d.find_element(By.TAG_NAME, "body").text
    assert "#1 Hall incident" in body  # the case to pin to survives the page changes
    _page(d, "Identity")
    _wait(
        d,
        lambda d: (
            "Route:" in d.find_element(By.TAG_NAME, "body").text
            or "recording time" in d.find_element(By.TAG_NAME, "body").text
        ),
    )
    _wait(d, lambda d: len(_loaded_images(d)) >= 1)
    _shot(d, "console-identity.png")
