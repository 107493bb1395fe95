"""Console search latency in a real browser against the API's own time for the same query.

    python benchmarks/bench_console.py [--images 30] [--searches 10]

Starts `aioreid ui` (embedded profile, a tiny untrained encoder, ``--images`` person crops
ingested) and drives headless Chromium: each search types a new description, submits it and
waits until that query's result page is rendered with every thumbnail loaded. The API's own
time is the ``took_ms`` the API reports for the same search (server side, shown on the page).
Prints the medians and their ratio; writes JSON. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the console did not start")


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


def _until(cond, timeout: float = 60):  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = cond()
            if got:
                return got
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        time.sleep(0.005)
    raise TimeoutError("the page did not show the results in time")


def _search_once(d, text: str, images: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Seconds from the click to the rendered page, and the API's took_ms for it."""
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

    box = _until(visible_box)
    box.send_keys(Keys.CONTROL, "a", Keys.DELETE)  # clear() does not reach React's state
    box.send_keys(text)  # in a form the value is sent when "Search" is pressed
    button = _until(
        lambda: next(
            b
            for b in d.find_elements(By.TAG_NAME, "button")
            if b.text == "Search" and b.is_displayed()
        )
    )
    t0 = time.perf_counter()
    button.click()

    def rendered():  # type: ignore[no-untyped-def]
        body = d.find_element(By.TAG_NAME, "body").text
        if f"“{text}”" not in body or "tracks ranked" not in body:
            return None
        loaded = d.execute_script(
            "return [...document.images].filter(i => i.complete && i.naturalWidth > 0).length"
        )
        return body if loaded >= images else None

    try:
        body = _until(rendered)
    except TimeoutError:
        d.save_screenshot("/tmp/bench_console_timeout.png")
        print(d.find_element(By.TAG_NAME, "body").text[:3000])
        raise
    elapsed = time.perf_counter() - t0
    took = float(re.search(r"· (\d+) ms ·", body).group(1))  # type: ignore[union-attr]
    return elapsed, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--searches", type=int, default=10)
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
            per_page = min(args.images, 48)
            # The first search warms caches (fonts, crops); it is not counted.
            _search_once(d, "warm-up search", min(per_page, 24))
            runs = [
                _search_once(d, f"a person, search {i}", min(per_page, 24))
                for i in range(args.searches)
            ]
        finally:
            d.quit()
            proc.terminate()
            proc.wait(10)
    console_ms = statistics.median(r[0] for r in runs) * 1000
    api_ms = statistics.median(r[1] for r in runs)
    result = {
        "images": args.images,
        "searches": args.searches,
        "console_click_to_results_ms_median": round(console_ms, 1),
        "api_took_ms_median": round(api_ms, 1),
        "ratio": round(console_ms / max(api_ms, 1e-3), 2),
        "runs": [{"console_s": round(a, 3), "api_ms": b} for a, b in runs],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
