"""Take a documentation picture: one page (a local file or a server on 127.0.0.1) in headless
Chromium, the way the report's test renders it, saved as a small PNG.

    python docs/screenshot.py http://127.0.0.1:5000/#/compare-runs?... docs/images/mlflow-compare.png \
        --wait-for "text=Parallel Coordinates Plot" --width 1280 --height 800

It needs playwright (the dev extra) and Debian's chromium (the Makefile's set-up installs both).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="http(s)://127.0.0.1:... or a local file path")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--wait-for", help="a playwright selector that shows the page has rendered")
    parser.add_argument("--settle-ms", type=int, default=1500, help="extra wait for charts to draw")
    parser.add_argument("--click", action="append", default=[], help="a selector to click first (repeatable)")
    parser.add_argument("--scroll-to", help="a selector to scroll into view before the picture")
    parser.add_argument("--full-page", action="store_true")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        sys.exit("screenshot: no chromium on PATH (Debian: apt-get install chromium)")
    url = args.url if "://" in args.url else Path(args.url).resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(url, wait_until="load", timeout=180_000)  # not networkidle: MLflow and Prefect poll
        if args.wait_for:
            page.wait_for_selector(args.wait_for, timeout=60_000)
        for selector in args.click:
            page.click(selector, timeout=30_000)
            page.wait_for_timeout(500)
        if args.scroll_to:
            page.locator(args.scroll_to).first.scroll_into_view_if_needed(timeout=30_000)
        page.wait_for_timeout(args.settle_ms)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=args.full_page)
        browser.close()
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
