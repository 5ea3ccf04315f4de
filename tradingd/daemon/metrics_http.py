"""The metrics HTTP endpoint with a bounded number of threads.

``prometheus_client.start_http_server`` starts one thread per request. Fifty concurrent
scrapes are then fifty threads rendering the registry and competing for the GIL with the
daemon's main loop: measured, they cut the producer's fast-mode publishing by 63 %. Here a
fixed pool of :data:`WORKERS` threads serves requests; at most :data:`MAX_IN_FLIGHT` are
accepted at a time, and further connections wait in the kernel's listen backlog until a
worker is free (backpressure: closing them at once made clients reconnect in a tight loop,
which cost the publisher more). Every request has a socket timeout, so a client that
connects and sends nothing cannot hold a worker for long.

The accept loop is paced to :data:`MAX_REQUESTS_PER_S` (a token bucket), so a closed-loop
flood, whose clients ask again the moment they are answered, cannot turn the daemon into
an HTTP server: its total cost is bounded whatever the clients do. Renderings are shared
under load (:class:`SharedRenders`): one at a time, and a request that waited while a
rendering began after it arrived is served that rendering instead of rendering the registry
anew (a burst of concurrent scrapes shares one; it is as fresh as one of its own). A
rendering that began before a request arrived is never reused, so a lone scraper
(Prometheus, a test polling) always gets a fresh one. (An earlier rule, "reuse one younger
than MIN_RENDER_INTERVAL_S while others are in flight", served a sequential scraper a
stale rendering when the previous request's worker had not finished yet.)

Same interface as ``start_http_server``: returns ``(server, thread)``; stop with
``server.shutdown()`` then ``server.server_close()`` (which also stops the pool).
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import _SilentHandler

from tradingd.errors import MetricsUnavailable

#: Threads rendering scrapes (one is enough for one Prometheus; two absorb a slow client).
WORKERS = 2
#: Requests accepted (served or waiting for a worker); more wait in the listen backlog.
MAX_IN_FLIGHT = 4
#: Seconds a client may take to send its request or read the answer.
REQUEST_TIMEOUT_S = 5.0
#: Requests served per second at most (bursts of REQUEST_BURST): Prometheus scrapes every
#: 15 s; a flood beyond this waits in the listen backlog and costs the daemon nothing.
MAX_REQUESTS_PER_S = 50
REQUEST_BURST = 20
#: While other requests wait, a rendering younger than this is served again.
MIN_RENDER_INTERVAL_S = 0.1
#: WSGI request keys that change what is rendered (name[] filters, gzip, OpenMetrics).
_RENDER_KEYS = ("PATH_INFO", "QUERY_STRING", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING")


class SharedRenders:
    """Wrap a WSGI app: one rendering at a time, reused while others wait (module doc)."""

    def __init__(self, app: Any, busy: Any) -> None:
        self._app = app
        self._busy = busy  # () -> bool: other requests are in flight
        self._lock = threading.Lock()
        self._last: dict[tuple[str, ...], tuple[float, str, list[Any], bytes]] = {}
        self.renders = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        key = tuple(str(environ.get(k, "")) for k in _RENDER_KEYS)
        arrived = time.monotonic()
        with self._lock:
            hit = self._last.get(key)
            if hit is not None and hit[0] >= arrived:  # begun after we arrived: fresh
                _, status, headers, body = hit
            else:
                captured: list[Any] = []

                def capture(status: str, headers: list[Any], exc_info: Any = None) -> Any:
                    captured[:] = [status, headers]
                    return lambda data: None

                began = time.monotonic()
                body = b"".join(self._app(environ, capture))
                status, headers = captured
                if len(self._last) >= 8:  # query strings are the client's: keep few
                    self._last.clear()
                self._last[key] = (began, status, headers, body)
                self.renders += 1
        start_response(status, headers)
        return [body]


class _Handler(_SilentHandler):
    """prometheus_client's quiet handler, with a socket timeout."""

    timeout = REQUEST_TIMEOUT_S


class PooledWSGIServer(WSGIServer):
    """A WSGI server whose requests run on a fixed thread pool (see the module docstring)."""

    request_queue_size = 128  # the listen backlog: where a flood waits, in the kernel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # before binding: a failed bind calls server_close(), which stops the pool
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="metrics")
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._closing = False
        self._tokens = float(REQUEST_BURST)
        self._refilled = time.monotonic()
        self.in_flight = 0  # accepted requests not yet answered
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _pace(self) -> None:
        """Token bucket: at most MAX_REQUESTS_PER_S, bursts of REQUEST_BURST (sleeps)."""
        now = time.monotonic()
        self._tokens = min(float(REQUEST_BURST),
                           self._tokens + (now - self._refilled) * MAX_REQUESTS_PER_S)
        self._refilled = now
        if self._tokens < 1.0:
            time.sleep((1.0 - self._tokens) / MAX_REQUESTS_PER_S)
            self._tokens = 1.0
            self._refilled = time.monotonic()
        self._tokens -= 1.0

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pace()
        # Backpressure, not refusal: while MAX_IN_FLIGHT requests are in flight the accept
        # loop waits here, so further clients queue in the kernel's listen backlog (no CPU,
        # no GIL of ours). Closing them at once instead made clients reconnect in a tight
        # loop, and the accepts and closes cost the publisher more than serving them.
        while not self._slots.acquire(timeout=0.2):
            if self._closing:
                self.shutdown_request(request)
                return
        with self._count_lock:
            self.in_flight += 1
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shut down: we are closing
            self._done()
            self.shutdown_request(request)

    def _done(self) -> None:
        with self._count_lock:
            self.in_flight -= 1
        self._slots.release()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._done()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up or times out is not the daemon's error."""

    def shutdown(self) -> None:
        self._closing = True
        super().shutdown()

    def server_close(self) -> None:
        self._closing = True
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_metrics_server(port: int, addr: str,
                         registry: CollectorRegistry) -> tuple[PooledWSGIServer, threading.Thread]:
    """Serve ``registry`` on ``addr:port`` (port 0: a free one) from a bounded pool."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]

    class _Server(PooledWSGIServer):
        address_family = family

    holder: list[PooledWSGIServer] = []
    app = SharedRenders(make_wsgi_app(registry), lambda: holder[0].in_flight > 1)
    httpd = make_server(str(sockaddr[0]), port, app, _Server, handler_class=_Handler)
    assert isinstance(httpd, PooledWSGIServer)
    holder.append(httpd)
    httpd.renders = app  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, name="metrics-accept", daemon=True)
    t.start()
    return httpd, t


class MetricsServer:
    """``/metrics`` of ``registry`` in daemon threads (:func:`start_metrics_server`).

    ``config_key`` names the daemon's port setting (``exec.metrics.port``,
    ``bridge.mirror.metrics.port``) in the error raised when the port cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, address: str, port: int,
                 config_key: str) -> None:
        try:
            self._server, self._thread = start_metrics_server(port, address, registry)
        except OSError as exc:
            raise MetricsUnavailable(f"cannot serve metrics on {address}:{port}: "
                                     f"{exc.strerror or exc} ({config_key} or "
                                     f"--metrics-port: 0 picks a free port; --no-metrics)"
                                     ) from None
        self.address = address
        self.port: int = self._server.server_port
        self._lock = threading.Lock()
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


__all__ = ["MAX_IN_FLIGHT", "MIN_RENDER_INTERVAL_S", "WORKERS", "MetricsServer",
           "PooledWSGIServer", "SharedRenders", "start_metrics_server"]
