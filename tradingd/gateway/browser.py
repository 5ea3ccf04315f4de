"""Open the live page in a real headless browser: Debian's chromium through chromium-driver.

Used by the page test (tests/gateway/test_gateway_page.py) and by ``make demo-screenshot``.
Selenium (the ``test`` extra, ~10 MB, pure Python) drives the system's ``chromium`` through
the system's ``chromedriver``: nothing is downloaded, no browser bundle is installed
(Playwright's driver would add a Node.js runtime of its own). The flags are those that keep
a root, offline, headless chromium from hanging on blocked network calls.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tradingd.errors import TradingdError

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")

#: JavaScript returning what the page shows: symbol rows, status and the page's state.
PAGE_STATE_JS = """
const rows = Array.from(document.querySelectorAll('tr[data-symbol]')).map(r => ({
  symbol: r.dataset.symbol, price: r.dataset.price || null, seq: r.dataset.seq || null,
  gen: r.dataset.gen || null, text: r.querySelector('.price').textContent,
  vwap: r.querySelector('.vwap').textContent, volume: r.querySelector('.volume').textContent,
  chart: r.querySelector('polyline').getAttribute('points').split(' ').length}));
const st = document.getElementById('status').dataset;
return {rows, producer: st.producer || null, gen: st.gen || null,
        conn: document.getElementById('conn').textContent};
"""


class BrowserUnavailable(TradingdError):
    """chromium, chromedriver or selenium is missing: ``make test-deps`` installs them
    (apt-get install chromium chromium-driver as root; pip install '.[test]')."""


def missing() -> str | None:
    """What is missing to run the browser, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (Debian packages chromium, chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install '.[test]')"
    return None


class Browser:
    """One headless chromium with a fresh profile; ``close`` ends it and removes the profile."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        why = missing()
        if why:
            raise BrowserUnavailable(why)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="tdchromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={self._profile}",
                     f"--window-size={width},{height}"):
            options.add_argument(flag)
        self.driver: Any = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def state(self) -> dict[str, Any]:
        return dict(self.driver.execute_script(PAGE_STATE_JS))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 what: str) -> dict[str, Any]:
        """Poll the page state until ``predicate`` holds (AssertionError with the state)."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while not predicate(state):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page did not show {what} in {timeout:g} s: {state}")
            time.sleep(0.1)
            state = self.state()
        return state

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(path)):
            raise TradingdError(f"chromium could not write the screenshot {path}")
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def all_prices_shown(state: dict[str, Any], symbols: list[str]) -> bool:
    """Every symbol has a row with a price."""
    shown = {r["symbol"]: r for r in state["rows"]}
    return all(s in shown and shown[s]["price"] for s in symbols)


__all__ = ["PAGE_STATE_JS", "Browser", "BrowserUnavailable", "all_prices_shown", "missing"]
