"""Screenshot of the console's search page for the README, over an existing embedded home
(e.g. the demo's ``var/demo/platform``), taken with Debian's chromium (selenium, dev extra).

    python -m aioreid.ui.screenshot --home var/demo/platform --out docs/console-search.png \\
        --text "a man in a red t-shirt and blue jeans"
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--home", type=Path, required=True, help="embedded profile home")
    ap.add_argument("--checkpoint", type=Path, required=True, help="the encoder of that home")
    ap.add_argument("--out", type=Path, default=Path("docs/console-search.png"))
    ap.add_argument("--text", default="", help="description typed into the query")
    ap.add_argument("--rgb", type=Path, default=None, help="RGB photo uploaded with the query")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1300)
    args = ap.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    key = "shot-" + secrets.token_hex(12)
    port = _free_port()
    env = {
        **os.environ,
        "AIOREID_HOME": str(args.home),
        "AIOREID_ENCODER__CHECKPOINT": str(args.checkpoint),
        "AIOREID_API__BOOTSTRAP_API_KEY": key,
    }
    exe = Path(sys.executable).parent / "aioreid"
    proc = subprocess.Popen([str(exe), "ui", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            opts.add_argument(arg)
        opts.add_argument(f"--window-size={args.width},{args.height}")
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        wait = WebDriverWait(d, 180, poll_frequency=0.5)
        try:
            d.get(url)
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type='password']"))
            d.find_element(By.CSS_SELECTOR, "input[type='password']").send_keys(key)
            next(b for b in d.find_elements(By.TAG_NAME, "button") if b.text == "Sign in").click()
            box = wait.until(lambda d: d.find_element(By.TAG_NAME, "textarea"))
            if args.text:
                box.send_keys(args.text)
                box.send_keys(Keys.CONTROL, Keys.ENTER)
            if args.rgb is not None:  # the first file input is the RGB photo
                d.find_elements(By.CSS_SELECTOR, "input[type='file']")[0].send_keys(
                    str(args.rgb.resolve())
                )
                time.sleep(2)
            wait.until(
                lambda d: any(
                    b.text == "Search" and b.is_enabled()
                    for b in d.find_elements(By.TAG_NAME, "button")
                )
            )
            next(b for b in d.find_elements(By.TAG_NAME, "button") if b.text == "Search").click()
            wait.until(lambda d: "sightings in" in d.find_element(By.TAG_NAME, "body").text)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "img")) >= 12)
            time.sleep(2)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(str(args.out))
            print(f"screenshot written to {args.out}")
        finally:
            d.quit()
    finally:
        proc.terminate()
        proc.wait(15)


if __name__ == "__main__":
    main()
