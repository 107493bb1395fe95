"""Console search latency in a real browser against the API's own time for the same query.

    python benchmarks/bench_console.py [--images 30] [--searches 10]

Starts `aioreid ui` (embedded profile, a tiny untrained encoder, ``--images`` person crops
ingested) and drives headless Chromium: each search types a new description, submits it and
waits until that query's result page is rendered with every thumbnail loaded. Times come from
the page's own clock (click to: the query and pager shown; the page told the run finished;
every element current and every image loaded). The API's own time is the ``took_ms`` the API
reports for the same search (server side, shown on the page).

Also measured, to say where the time goes: what the page holds (elements, Streamlit
elements, images) and the image requests each search made; the last query submitted again
(the console re-renders its cached page without the API: the console's own cost); and a
Streamlit page holding one button and one line (the framework's round trip, the floor).
Prints the medians and the ratio; writes JSON. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import torch

DEFAULT_JSON = Path(__file__).parent / "results" / "console.json"
KEY = "bench-console-key-0123456789"


def _person(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = np.full((128, 64, 3), rng.integers(0, 255, 3), np.uint8)
    img[30:64, 12:52] = rng.integers(0, 255, 3)
    img[64:, 16:48] = rng.integers(0, 255, 3)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _gallery(home: Path, n: int) -> Path:
    from aioreid.encoder.inference import Encoder
    from aioreid.encoder.model import AIOConfig, AIOModel
    from aioreid.platform.config import Settings
    from aioreid.platform.pipeline.ingest import ingest_many
    from aioreid.platform.services import Services

    torch.manual_seed(0)
    ckpt = AIOModel(AIOConfig(backbone="tiny", image_size=(64, 32), text_max_len=24)).save(
        home / "final.pt"
    )
    settings = Settings(home=home, index={"backend": "edge"}, encoder={"checkpoint": ckpt})
    svc = Services.from_settings(settings, encoder=Encoder.load(ckpt, device="cpu"))
    items = [{"data": _person(i), "name": f"p{i}.jpg", "camera": "gate"} for i in range(n)]
    ingest_many(svc, items, progress=False)
    svc.close()
    return ckpt


def _console(home: Path, ckpt: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "AIOREID_HOME": str(home),
        "AIOREID_INDEX__BACKEND": "edge",
        "AIOREID_ENCODER__CHECKPOINT": str(ckpt),
        "AIOREID_ENCODER__DEVICE": "cpu",
        "AIOREID_API__BOOTSTRAP_API_KEY": KEY,
    }
    exe = str(Path(sys.executable).parent / "aioreid")
    proc = subprocess.Popen([exe, "ui", "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, proc)
    return proc, url


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{url} did not start")


def _browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_argument("--window-size=1600,1400")
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver), options=opts)


def _until(cond, timeout: float = 60, every: float = 0.005):  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import (
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = cond()
            if got:
                return got
        except (
            StaleElementReferenceException,
            NoSuchElementException,
            ElementNotInteractableException,
        ):
            pass
        time.sleep(every)
    raise TimeoutError("the page did not show the results in time")


#: Installed in the page before each click: records (performance.now(), the page's own clock,
#: not the driver's polling) when the new query's text and pager first show, when the page
#: learns that the script run finished, and when it is done: nothing stale left, every image
#: loaded. DOM mutations and image loads schedule one check per animation frame (what is
#: painted), so measuring does not load the page it measures.
_WATCH_JS = """
const [text, images, fresh] = arguments;
const w = window.__bench = {t0: null, running: false, text: null, ran: null, done: null,
  pending: false, grid: null};
performance.clearResourceTimings();  // a full buffer would drop this search's entries
const app = document.querySelector('[data-testid="stApp"]');
const check = () => {
  w.pending = false;
  if (w.t0 === null || w.done !== null) return;
  const main = document.querySelector('[data-testid="stMain"]');
  const body = main.textContent;
  if (w.text === null && w.running && body.includes('\u201c' + text + '\u201d')
      && body.includes('tracks ranked')) w.text = performance.now();
  if (w.text === null || app.getAttribute('data-test-script-state') === 'running') return;
  if (w.ran === null) w.ran = performance.now();
  if (main.querySelector('[data-stale="true"]')) return;
  // A result grid drawn by one custom component fills itself after React's commit: new
  // results are shown once it says so (the same results again leave it as it is).
  if (fresh && w.grid === null && main.querySelector('.aio-cards')) return;
  const imgs = [...main.querySelectorAll('img')];
  if (imgs.length >= images && imgs.every(i => i.complete && i.naturalWidth > 0))
    w.done = performance.now();
};
w.soon = () => {
  if (!w.pending) { w.pending = true; requestAnimationFrame(check); }
};
// The run must have started: a query submitted again already shows its text.
w.observer = new MutationObserver(() => {
  if (app.getAttribute('data-test-script-state') === 'running') w.running = true;
  w.soon();
});
w.observer.observe(document.body, {subtree: true, childList: true, characterData: true,
  attributes: true, attributeFilter: ['data-stale', 'data-test-script-state', 'src']});
document.addEventListener('load', w.soon, true);
w.onGrid = () => { if (w.t0 !== null && w.grid === null) w.grid = performance.now(); w.soon(); };
document.addEventListener('aioreid-cards', w.onGrid, true);
"""

#: What the page holds and fetched for the last search: elements in the main area, element
#: containers (one per st.* call), images, and the image requests made since the click.
_STATS_JS = """
const w = window.__bench;
w.observer.disconnect();
document.removeEventListener('load', w.soon, true);
document.removeEventListener('aioreid-cards', w.onGrid, true);
const main = document.querySelector('[data-testid="stMain"]');
const fetched = performance.getEntriesByType('resource').filter(
  e => e.startTime >= w.t0 && e.initiatorType === 'img');
return {
  text_ms: w.text - w.t0, script_done_ms: w.ran - w.t0, done_ms: w.done - w.t0,
  dom_elements: main.querySelectorAll('*').length,
  st_elements: main.querySelectorAll('[data-testid="stElementContainer"]').length,
  images: main.querySelectorAll('img').length,
  image_requests: fetched.length,
  image_bytes: fetched.reduce((n, e) => n + (e.transferSize || 0), 0),
  api_took_ms: Number(main.textContent.match(/· (\\d+) ms ·/)[1]),
};
"""


def _search_once(d, text: str, images: int, fresh: bool = True) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One search from the form: times from the click (page clock) to the query and pager on
    screen and to the finished page, what the page holds, and the API's took_ms for it.
    ``fresh``: the results differ from the page's (not the same query again)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def visible_box():  # type: ignore[no-untyped-def]
        boxes = [b for b in d.find_elements(By.TAG_NAME, "textarea") if b.is_displayed()]
        if boxes:
            return boxes[0]
        for summary in d.find_elements(By.TAG_NAME, "summary"):
            if "Change the query" in summary.text:
                summary.click()  # after a search the form sits in this expander
        return None

    def typed():  # type: ignore[no-untyped-def]
        box = visible_box()
        if box is None:
            return False
        box.send_keys(Keys.CONTROL, "a", Keys.DELETE)  # clear() does not reach React's state
        box.send_keys(text)  # in a form the value is sent when "Search" is pressed
        return True

    _until(typed)  # retried: an expander still opening holds a box not yet interactable
    button = _until(
        lambda: next(
            (
                b
                for b in d.find_elements(By.TAG_NAME, "button")
                if b.text == "Search" and b.is_displayed()
            ),
            None,
        )
    )
    d.execute_script(_WATCH_JS, text, images, fresh)
    d.execute_script("window.__bench.t0 = performance.now(); arguments[0].click();", button)
    try:
        # Polled slowly: the page keeps its own times, and a busy driver would slow it.
        _until(
            lambda: d.execute_script("window.__bench.soon(); return window.__bench.done"), every=0.1
        )
    except TimeoutError:
        d.save_screenshot("/tmp/bench_console_timeout.png")
        print(d.find_element(By.TAG_NAME, "body").text[:3000])
        raise
    return d.execute_script(_STATS_JS)


_FLOOR_APP = """
import streamlit as st

n = st.session_state.get("n", 0)
if st.button("Go"):
    n = st.session_state["n"] = n + 1
st.write(f"run {n}")
"""


def _floor(d, clicks: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Click-to-rendered on a page that holds one button and one line: Streamlit's own round
    trip (websocket message, script run, delta, React render) with nothing else in it."""
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "floor.py"
        script.write_text(_FLOOR_APP)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc)
            d.get(url)
            times = []
            for i in range(1, clicks + 2):
                button = _until(
                    lambda: next(
                        (b for b in d.find_elements(By.TAG_NAME, "button") if b.text == "Go"), None
                    )
                )
                d.execute_script(_FLOOR_JS, f"run {i}", button)
                _until(lambda: d.execute_script("return window.__floor.done"), every=0.1)
                times.append(d.execute_script("return window.__floor.done - window.__floor.t0"))
            return times[1:]  # the first click warms up
        finally:
            proc.terminate()
            proc.wait(10)


_FLOOR_JS = """
const [want, button] = arguments;
const app = document.querySelector('[data-testid="stApp"]');
const w = window.__floor = {t0: null, done: null};
const check = () => {
  if (w.done === null && document.body.textContent.includes(want)
      && app.getAttribute('data-test-script-state') !== 'running') {
    w.done = performance.now();
    obs.disconnect();
  }
};
const obs = new MutationObserver(check);
obs.observe(document.body, {subtree: true, childList: true, characterData: true,
  attributes: true, attributeFilter: ['data-test-script-state']});
w.t0 = performance.now();
button.click();
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--searches", type=int, default=10)
    ap.add_argument(
        "--floor-clicks", type=int, default=10, help="clicks on an empty Streamlit page (0: skip)"
    )
    ap.add_argument(
        "--reruns", type=int, default=10, help="the last query submitted again (cached page)"
    )
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ckpt = _gallery(home, args.images)
        proc, url = _console(home, ckpt)
        d = _browser()
        try:
            d.get(url)
            _until(lambda: d.find_element(By.CSS_SELECTOR, "input[type='password']")).send_keys(
                KEY, "\n"
            )
            _until(lambda: d.find_element(By.TAG_NAME, "textarea"))
            per_page = min(args.images, 24)
            # The first search warms caches (fonts, crops); it is not counted.
            _search_once(d, "warm-up search", per_page)
            runs = [
                _search_once(d, f"a person, search {i}", per_page) for i in range(args.searches)
            ]
            # The last query submitted again: the console re-renders its cached page without
            # calling the API, i.e. what a search costs beyond the API's own time.
            again = [
                _search_once(d, f"a person, search {args.searches - 1}", per_page, fresh=False)
                for _ in range(args.reruns)
            ]
            proc.terminate()
            proc.wait(10)
            floor = _floor(d, args.floor_clicks) if args.floor_clicks else []
        finally:
            d.quit()
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    def median(name: str) -> float:
        return round(statistics.median(float(r[name]) for r in runs), 1)

    console_ms, api_ms = median("done_ms"), median("api_took_ms")
    result = {
        "images": args.images,
        "searches": args.searches,
        "console_click_to_results_ms_median": console_ms,
        "console_click_to_query_and_pager_ms_median": median("text_ms"),
        "api_took_ms_median": api_ms,
        "ratio": round(console_ms / max(api_ms, 1e-3), 2),
        "page_elements_median": median("dom_elements"),
        "streamlit_elements_median": median("st_elements"),
        "images_on_page_median": median("images"),
        "image_requests_per_search_median": median("image_requests"),
        "image_bytes_per_search_median": median("image_bytes"),
        "cached_page_rerun_ms_median": (
            round(statistics.median(r["done_ms"] for r in again), 1) if again else None
        ),
        "empty_page_round_trip_ms_median": (round(statistics.median(floor), 1) if floor else None),
        "runs": runs,
        "cached_page_reruns": again,
        "empty_page_round_trips_ms": [round(t, 1) for t in floor],
    }
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
