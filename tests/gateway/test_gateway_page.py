"""The live page in a real headless browser (Debian's chromium via chromium-driver).

A real producer replays the bundled data once (``at_end: stop``) so the latest slots stop
moving; the page must show every symbol's price equal to its slot, exactly. Then the producer
is killed (-9): the page shows it down; a new producer (new generation) replays again and the
page recovers to the new generation with the new slots. A screenshot is saved under the
test's temporary directory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from gateway_support import TIMEOUT, Stack, write_config

from tradingd.errors import TradingdError
from tradingd.gateway import browser
from tradingd.segment import layout as L
from tradingd.segment.reader import SegmentReader

pytestmark = pytest.mark.slow

SYMBOLS = ["AAPL", "TSLA", "BTC-USD", "EURUSD"]


def finished_slots(segment: str, timeout: float = TIMEOUT) -> tuple[str, dict[str, float]]:
    """Wait for the replay to finish; then the generation and every symbol's slot price."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with SegmentReader.attach(segment) as r:
                if r.state == L.STATE_FINISHED:
                    names = [s.name for s in r.symbols()]
                    prices = {n: v.price for n, v in zip(names, r.latest_all(), strict=True)
                              if v is not None}
                    return f"{r.generation:016x}", prices
        except TradingdError:  # not there yet: the producer is starting
            pass
        assert time.monotonic() < deadline, "the replay did not finish"
        time.sleep(0.1)


def shows(state: dict[str, object], gen: str, prices: dict[str, float]) -> bool:
    rows = {r["symbol"]: r for r in state["rows"]}  # type: ignore[attr-defined]
    return (state["gen"] == gen and all(
        s in rows and rows[s]["gen"] == gen and rows[s]["price"]
        and float(rows[s]["price"]) == prices[s] for s in prices))


def test_page_shows_the_segment_and_recovers_from_a_producer_restart(
        stack: Stack, workdir: Path, tmp_path: Path) -> None:
    why = browser.missing()
    if why:
        pytest.skip(f"no browser: {why} (make test installs it as root)")
    config = write_config(workdir, replay={"speed": 2.0e9, "at_end": "stop"})
    producer = stack.producer(config)
    producer.wait_ready()
    gateway = stack.gateway(config)
    gateway.wait_ready()
    gen, prices = finished_slots(stack.segment)
    assert set(prices) == set(SYMBOLS)
    with browser.Browser(1280, 720) as b:
        b.open(gateway.url)
        state = b.wait_for(lambda s: browser.all_prices_shown(s, SYMBOLS), TIMEOUT,
                           "a price for every symbol")
        state = b.wait_for(lambda s: shows(s, gen, prices), TIMEOUT,
                           f"the segment's latest prices {prices}")
        assert state["producer"] == "up"
        assert all(r["chart"] > 2 and r["vwap"] != "–" for r in state["rows"]), state
        shot = b.screenshot(tmp_path / "gateway-page.png")
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        os.kill(producer.pid, signal.SIGKILL)
        b.wait_for(lambda s: s["producer"] == "down", TIMEOUT, "the producer down")
        stack.producer(config).wait_ready()
        new_gen, new_prices = finished_slots(stack.segment)
        assert new_gen != gen
        state = b.wait_for(lambda s: shows(s, new_gen, new_prices), TIMEOUT,
                           "the new generation's prices")
        assert state["producer"] == "up" and state["conn"] == "connected"
        b.screenshot(tmp_path / "gateway-page-after-restart.png")
        print(f"\nscreenshots: {shot} and {tmp_path / 'gateway-page-after-restart.png'}")
    assert gateway.alive() and "Traceback" not in gateway.log


def test_page_reconnects_when_the_gateway_restarts(stack: Stack, workdir: Path) -> None:
    why = browser.missing()
    if why:
        pytest.skip(f"no browser: {why} (make test installs it as root)")
    config = write_config(workdir)
    stack.producer(config).wait_ready()
    first = stack.gateway(config)
    first.wait_ready()
    port = first.port
    with browser.Browser(1024, 600) as b:
        b.open(first.url)
        b.wait_for(lambda s: browser.all_prices_shown(s, SYMBOLS), TIMEOUT, "prices")
        first.stop()
        b.wait_for(lambda s: s["conn"].startswith("disconnected"), TIMEOUT, "the disconnect")
        # the same port again (the page reconnects to where it came from), with backoff
        again = write_config(workdir, gateway={"port": port}, name="again.yaml")
        second = stack.gateway(again)
        second.wait_ready()
        state = b.wait_for(lambda s: s["conn"] == "connected"
                           and browser.all_prices_shown(s, SYMBOLS), TIMEOUT,
                           "the page reconnected")
        assert state["producer"] == "up"
