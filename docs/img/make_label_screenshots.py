"""Screenshots of the labelling page for the docs: docs/img/label_{pair,rank,dagger,tamer}.png.

    python docs/img/make_label_screenshots.py [--out docs/img]

Builds the demo store of the browser tests (tests/label/browser_data.py) in a temporary directory, serves
it with uvicorn on a free loopback port and drives the system chromium (Playwright) through one query of
each kind, at a 1100x760 viewport.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "label"))  # browser_data and the chromium settings of conftest.py

import browser_data as data  # noqa: E402
import uvicorn  # noqa: E402
from conftest import CHROMIUM_ARGS, _chromium_path, _free_port  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from irlhf.label.server import create_app  # noqa: E402

VIEWPORT = {"width": 1100, "height": 760}


def _serve(app: object) -> tuple[uvicorn.Server, str]:
    """Run ``app`` with uvicorn in a daemon thread; returns the server and its base URL once it answers."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=1):
                return server, url
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {port} did not start") from None
            time.sleep(0.05)


def _loaded(page: object, selector: str) -> None:
    """Wait until every image matching ``selector`` has decoded."""
    page.wait_for_function(  # type: ignore[attr-defined]
        "s => { const a = Array.from(document.querySelectorAll(s)); "
        "return a.length > 0 && a.every(i => i.complete && i.naturalWidth > 0); }", arg=selector)


def make_screenshots(out: Path) -> list[Path]:
    """Write the four PNGs into ``out`` and return their paths."""
    executable = _chromium_path()
    if executable is None:
        raise SystemExit("no chromium binary (apt-get install chromium)")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        store, _ = data.build_store(Path(tmp) / "labels.db")
        server, base = _serve(create_app(store, session=data.SESSION))
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(10_000)
            expect.set_options(timeout=10_000)

            def shot(name: str) -> None:
                path = out / f"label_{name}.png"
                page.screenshot(path=str(path))
                written.append(path)

            page.goto(f"{base}/label?annotator=Ada")
            expect(page.locator("h2.qtitle")).to_contain_text("Pair 1")
            _loaded(page, ".pair img")
            page.wait_for_timeout(600)  # let the GIFs play a few frames: the carts have moved apart
            shot("pair")
            page.keyboard.press("1")
            expect(page.locator("h2.qtitle")).to_contain_text("Pair 2")
            page.keyboard.press("2")
            expect(page.locator(".two")).to_be_visible()
            page.keyboard.press("3")
            expect(page.locator("ol.rank > li")).to_have_count(4)
            for _ in range(2):  # a ranking in progress: D moved up under A, and tied with it
                page.locator("ol.rank > li[data-index='3'] button.up").click()
            page.locator("ol.rank > li[data-index='3'] input.tie").check()
            page.mouse.move(0, 0)
            shot("rank")
            page.locator("#main .actions button", has_text="Submit").click()
            expect(page.locator("h2.qtitle")).to_contain_text("CartPole")
            _loaded(page, ".frame img")
            shot("dagger")
            page.keyboard.press("2")
            expect(page.locator("h2.qtitle")).to_contain_text("MountainCar")
            page.locator("#main .actions button", has_text="Start").click()
            expect(page.locator("#main button.good")).to_be_enabled()
            page.keyboard.press("g")
            page.wait_for_timeout(400)
            page.keyboard.press("b")
            page.wait_for_timeout(400)
            page.keyboard.press("g")
            page.wait_for_timeout(300)
            shot("tamer")
        finally:
            browser.close()
            server.should_exit = True
            store.close()
    return written


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    for path in make_screenshots(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
