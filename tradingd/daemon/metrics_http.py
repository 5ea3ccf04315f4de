"""The metrics HTTP endpoint with a bounded number of threads.

``prometheus_client.start_http_server`` starts one thread per request. Fifty concurrent
scrapes are then fifty threads rendering the registry and competing for the GIL with the
daemon's main loop: measured, they cut the producer's fast-mode publishing by 63 %. Here a
fixed pool of :data:`WORKERS` threads serves requests; at most :data:`MAX_IN_FLIGHT` are
accepted or queued at a time, and a connection beyond that is closed at once (a scraper
retries at its next interval; Prometheus records the failed scrape). Every request has a
socket timeout, so a client that connects and sends nothing cannot hold a worker.

Same interface as ``start_http_server``: returns ``(server, thread)``; stop with
``server.shutdown()`` then ``server.server_close()`` (which also stops the pool).
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import _SilentHandler

#: Threads rendering scrapes (one is enough for one Prometheus; two absorb a slow client).
WORKERS = 2
#: Requests being served or waiting for a worker; more are refused (connection closed).
MAX_IN_FLIGHT = 8
#: Seconds a client may take to send its request or read the answer.
REQUEST_TIMEOUT_S = 5.0


class _Handler(_SilentHandler):
    """prometheus_client's quiet handler, with a socket timeout."""

    timeout = REQUEST_TIMEOUT_S


class PooledWSGIServer(WSGIServer):
    """A WSGI server whose requests run on a fixed thread pool (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # before binding: a failed bind calls server_close(), which stops the pool
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="metrics")
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self.refused = 0  # connections closed because MAX_IN_FLIGHT were in flight
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shut down: we are closing
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that hangs up or times out is not the daemon's error."""

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_metrics_server(port: int, addr: str,
                         registry: CollectorRegistry) -> tuple[PooledWSGIServer, threading.Thread]:
    """Serve ``registry`` on ``addr:port`` (port 0: a free one) from a bounded pool."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]

    class _Server(PooledWSGIServer):
        address_family = family

    httpd = make_server(str(sockaddr[0]), port, make_wsgi_app(registry), _Server,
                        handler_class=_Handler)
    assert isinstance(httpd, PooledWSGIServer)
    t = threading.Thread(target=httpd.serve_forever, name="metrics-accept", daemon=True)
    t.start()
    return httpd, t


__all__ = ["MAX_IN_FLIGHT", "WORKERS", "PooledWSGIServer", "start_metrics_server"]
