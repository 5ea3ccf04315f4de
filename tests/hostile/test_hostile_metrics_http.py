"""The bounded metrics server: fresh for a lone scraper, bounded work under a flood."""

from __future__ import annotations

import threading
import time
import urllib.request

from prometheus_client import CollectorRegistry, Gauge

from tradingd.daemon import metrics_http as M


def test_a_lone_scraper_always_gets_a_fresh_rendering() -> None:
    reg = CollectorRegistry()
    g = Gauge("td12_value", "a value", registry=reg)
    server, thread = M.start_metrics_server(0, "127.0.0.1", reg)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        for i in range(5):
            g.set(i)
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert f"td12_value {float(i)}" in resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_flood_is_paced_and_shares_renderings() -> None:
    reg = CollectorRegistry()
    Gauge("td12_value", "a value", registry=reg).set(1)
    server, thread = M.start_metrics_server(0, "127.0.0.1", reg)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    stop = threading.Event()
    answered = [0]

    def scrape() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    if b"td12_value 1.0" in resp.read():
                        answered[0] += 1
            except OSError:
                pass

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(30)]
    t0 = time.monotonic()
    try:
        for t in threads:
            t.start()
        deadline = t0 + 30
        while answered[0] < 60:  # to a count, with a generous cap
            assert time.monotonic() < deadline
            time.sleep(0.01)
        took = time.monotonic() - t0
        served, renders = answered[0], server.renders.renders  # type: ignore[attr-defined]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        for t in threads:
            t.join(15)
    # an upper bound (a slow machine only lowers it): the daemon's work is paced
    assert served <= M.REQUEST_BURST + M.MAX_REQUESTS_PER_S * took + 5, (served, took)
    assert renders <= served  # concurrent requests share renderings, never add any
