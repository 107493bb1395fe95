"""Driving the console in a real browser: `aioreid ui` on 127.0.0.1 over an embedded index
(8 person images from camera "gate" and a video from camera "hall" whose three walkers become
tracks), and Debian's chromium through selenium. Shared by the browser test modules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import torch
from platform_fixtures import jpeg, make_settings, person_image, write_walkers_video

from aioreid.encoder.model import AIOConfig, AIOModel

KEY = "browser-test-key-0123456789"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT_DIR = Path(os.environ.get("AIOREID_SCREENSHOT_DIR", "var/screenshots"))
#: When the hall video was recorded (its sightings' times count from here).
VIDEO_START = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)


def need_browser() -> None:
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


@contextmanager
def running_console(tmp: Path, prepare: Callable[[Any], None] | None = None) -> Iterator[str]:
    """Ingest the gallery, let ``prepare(services)`` add to it, then serve `aioreid ui`;
    yields its URL. Ingest uses the encoder the console's API loads, and closes before the
    console starts: one process may hold the embedded index at a time."""
    need_browser()
    from aioreid.encoder.inference import Encoder
    from aioreid.platform.pipeline.frames import SamplingOptions
    from aioreid.platform.pipeline.ingest import IngestOptions, ingest_many
    from aioreid.platform.services import Services

    home = tmp / "home"
    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        tmp / "final.pt"
    )
    settings = make_settings(home, None, index_backend="edge")
    settings = settings.model_copy(
        update={"encoder": settings.encoder.model_copy(update={"checkpoint": ckpt})}
    )
    svc = Services.from_settings(settings, encoder=Encoder.load(ckpt, device="cpu"))
    items = [
        {"data": jpeg(person_image(i)), "name": f"p{i}.jpg", "camera": "gate"} for i in range(8)
    ]
    ingest_many(svc, items, progress=False)
    clip = tmp / "hall.mp4"
    write_walkers_video(clip)
    video = IngestOptions(detector="background", sampling=SamplingOptions(sample_fps=5))
    item = {"path": clip, "camera": "hall", "start_time": VIDEO_START}
    ingest_many(svc, [item], options=video, progress=False)
    if prepare is not None:
        prepare(svc)
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
    try:
        _wait_healthy(proc, url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
            return
        except OSError:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"aioreid ui exited early:\n{out}")
            time.sleep(0.5)
    proc.kill()
    pytest.fail("the console did not start within 60 s")


@contextmanager
def chromium() -> Iterator[Any]:
    need_browser()
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
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, cond: Callable[[Any], Any], timeout: float = 90) -> Any:
    """Poll ``cond`` until truthy. Streamlit re-renders the page on every interaction, so an
    element found a moment ago may be gone: lookups that hit a stale or missing element retry."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, timeout, poll_frequency=0.3, ignored_exceptions=ignored).until(
        cond
    )


def act(driver: Any, find: Callable[[Any], Any], action: Callable[[Any], Any]) -> None:
    """Find an element and act on it in one retried step (a re-render between the two would
    otherwise leave a stale reference)."""

    def attempt(d: Any) -> bool:
        element = find(d)
        if not element:
            return False
        action(element)
        return True

    wait(driver, attempt)


def type_into(driver: Any, by: str, selector: str, *keys: str) -> None:
    """Replace the text of the element at ``selector`` with ``keys``. Selenium's ``clear()``
    empties the DOM value behind React's back (a number box then still holds its value), so
    the text is selected and deleted as a user would."""
    from selenium.webdriver.common.keys import Keys

    def action(el: Any) -> None:
        el.send_keys(Keys.CONTROL, "a")
        el.send_keys(Keys.DELETE)
        el.send_keys(*keys)

    act(driver, lambda d: d.find_element(by, selector), action)


def click(driver: Any, label: str) -> None:
    """Click the enabled button labelled ``label`` (retried across re-renders)."""
    from selenium.webdriver.common.by import By

    def find(d: Any) -> Any:
        for b in d.find_elements(By.TAG_NAME, "button"):
            if b.text.strip() == label and b.is_enabled():
                return b
        return False

    act(driver, find, lambda b: b.click())


def body(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def wait_for_text(driver: Any, text: str, timeout: float = 90) -> str:
    """Wait until the page shows ``text``; returns the page's text then."""

    def shown(d: Any) -> str | bool:
        page = body(d)
        return page if text in page else False

    return str(wait(driver, shown, timeout))


def idle(driver: Any) -> None:
    """Wait until the page's run has finished: no running indicator, no element still drawn
    from the previous run. Keyboard shortcuts reach buttons of the finished page only."""
    running = (
        "[data-testid='stStatusWidgetRunningIcon'], [data-testid='stStatusWidgetRunningManIcon'],"
        " [data-stale='true']"
    )
    wait(driver, lambda d: not d.find_elements("css selector", running))


def sign_in(driver: Any, url: str) -> None:
    """Open ``url`` (a new browser session) and sign in with the test key."""
    from selenium.webdriver.common.by import By

    driver.get(url)
    type_into(driver, By.CSS_SELECTOR, "input[type='password']", KEY)
    click(driver, "Sign in")
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "input[type='password']"))


def open_page(driver: Any, title: str) -> None:
    """Open a console page from the navigation."""
    from selenium.webdriver.common.by import By

    def find(d: Any) -> Any:
        for a in d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a"):
            if a.text.strip().endswith(title):
                return a
        return False

    act(driver, find, lambda a: a.click())
    wait(driver, lambda d: title in d.find_element(By.TAG_NAME, "h1").text)


def loaded_images(driver: Any) -> list:
    return list(
        driver.execute_script(
            "return [...document.images].filter(i => i.complete && i.naturalWidth > 0)"
        )
    )


def screenshot(driver: Any, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path
