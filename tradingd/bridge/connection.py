"""Connecting to NATS: credentials from a file, TLS when offered, retry with backoff.

Credentials never sit in the YAML config: they come from a small file of ``key=value``
lines (``user=`` + ``password=``, or ``token=``), named by ``bridge.nats.credentials_file``
or, when that is null, ``$CREDENTIALS_DIRECTORY/nats`` (systemd's ``LoadCredential=nats:...``
puts it there, readable by the unit only). TLS: when the server's INFO says
``tls_required`` (or a ``tls://`` URL is used) the client upgrades the connection, with the
configured CA/certificate or the system's default trust store.

The bridge reconnects by itself (:class:`Connector`), not through the client's built-in
reconnect loop, so that every outage is seen by the daemon: STATUS says "NATS
unreachable, retrying in N s", the reconnect is counted, and the publish bridge resyncs
from the stream before publishing again. An authorization failure is permanent
(:class:`~tradingd.errors.NatsAuthError`, exit 85): the daemon stops instead of
hammering the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from tradingd import constants as C
from tradingd.daemon.config import NatsConfig
from tradingd.errors import ConfigError, NatsAuthError

log = logging.getLogger(__name__)

_AUTH_WORDS = ("authorization violation", "authentication", "user authentication expired",
               "account authentication")
_CRED_KEYS = ("user", "password", "token")


@dataclass(frozen=True)
class Credentials:
    """What the credentials file holds (all None: connect without credentials)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    source: str = "none"

    def connect_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.user is not None:
            opts["user"] = self.user
            opts["password"] = self.password or ""
        if self.token is not None:
            opts["token"] = self.token
        return opts


def credentials_path(config: NatsConfig, env: dict[str, str] | None = None) -> str | None:
    """The credentials file: the configured one, else ``$CREDENTIALS_DIRECTORY/nats``."""
    if config.credentials_file:
        return config.credentials_file
    env = dict(os.environ) if env is None else env
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = os.path.join(directory, C.BRIDGE_CREDENTIAL_NAME)
        try:
            os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:  # there, but not ours to read: say so, never connect without
            raise ConfigError(f"NATS credentials {path} ($CREDENTIALS_DIRECTORY, from the "
                              f"unit's LoadCredential=): {exc.strerror or exc}") from None
        return path
    return None


def load_credentials(path: str | None) -> Credentials:
    """Parse a credentials file (``key=value`` lines, ``#`` comments); ConfigError if bad."""
    if path is None:
        return Credentials()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"NATS credentials file {path}: cannot read it: "
                          f"{exc.strerror or exc}") from None
    values: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or key not in _CRED_KEYS:
            raise ConfigError(f"{path}:{lineno}: expected user=, password= or token=, got "
                              f"{key or line[:20]!r}")
        values[key] = value.strip()
    if "token" in values and ("user" in values or "password" in values):
        raise ConfigError(f"{path}: give either user= and password=, or token=, not both")
    if "password" in values and "user" not in values:
        raise ConfigError(f"{path}: password= without user=")
    return Credentials(values.get("user"), values.get("password"), values.get("token"),
                       source=path)


def tls_context(config: NatsConfig) -> ssl.SSLContext | None:
    """An SSL context for the configured CA/client certificate (None: the defaults)."""
    t = config.tls
    if not (t.ca_file or t.cert_file):
        return None
    try:
        ctx = ssl.create_default_context(cafile=t.ca_file)
        if t.cert_file:
            ctx.load_cert_chain(t.cert_file, t.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"bridge.nats.tls: {exc}") from None
    return ctx


def is_auth_error(exc: BaseException) -> bool:
    """True if the server refused our credentials (a permanent problem)."""
    text = str(exc).lower()
    return any(w in text for w in _AUTH_WORDS) or isinstance(exc, ssl.SSLCertVerificationError)


class Connector:
    """Connects (and reconnects) with exponential backoff; tells the daemon what happens.

    ``on_status`` gets a human line for STATUS= on each attempt ("NATS unreachable at
    ...: retrying in 0.8 s"); ``stop`` (an asyncio.Event) ends the retrying.
    """

    def __init__(self, config: NatsConfig, name: str, *,
                 on_status: Callable[[str], None], stop: asyncio.Event,
                 credentials: Credentials | None = None) -> None:
        self.config = config
        self.name = name
        self.credentials = credentials if credentials is not None else load_credentials(
            credentials_path(config))
        self._tls = tls_context(config)
        self._on_status = on_status
        self._stop = stop
        self.attempts = 0
        self.connects = 0
        self.last_error = ""
        self.disconnected = asyncio.Event()

    async def connect(self) -> NATS | None:
        """A connected client, or None if ``stop`` was set first. NatsAuthError if refused."""
        delay = 0.05
        servers = list(self.config.servers)
        while not self._stop.is_set():
            self.attempts += 1
            try:
                nc = await self._connect_once(servers)
            except NatsAuthError:
                raise
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                if is_auth_error(exc):
                    raise self._auth_error(exc) from None
                self.last_error = str(exc) or type(exc).__name__
                text = (f"NATS unreachable at {', '.join(servers)} ({self.last_error}); "
                        f"retrying in {delay:.2g} s")
                self._on_status(text)
                if self.attempts == 1 or self.attempts % 20 == 0:
                    log.warning("%s (attempt %d)", text, self.attempts)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                delay = min(delay * 2, self.config.reconnect_wait_max)
                continue
            self.connects += 1
            self.disconnected.clear()
            log.info("connected to NATS %s (server %s, %s%s)", nc.connected_url.netloc
                     if nc.connected_url else "?", nc._server_info.get("version", "?"),
                     "TLS" if nc._server_info.get("tls_required") else "no TLS",
                     f", credentials from {self.credentials.source}"
                     if self.credentials.source != "none" else "")
            self.attempts = 0
            return nc
        return None

    async def _connect_once(self, servers: list[str]) -> NATS:
        errors: list[BaseException] = []

        async def error_cb(exc: Exception) -> None:
            errors.append(exc)

        async def disconnected_cb() -> None:
            self.disconnected.set()

        opts: dict[str, Any] = dict(self.credentials.connect_options())
        if self._tls is not None:
            opts["tls"] = self._tls
        try:
            return await asyncio.wait_for(nats.connect(
                servers, name=self.name, allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=max(1, round(self.config.connect_timeout)),
                error_cb=error_cb, disconnected_cb=disconnected_cb, closed_cb=disconnected_cb,
                pending_size=64 << 20, **opts), self.config.connect_timeout * 2 + 1)
        except TimeoutError:
            for e in errors:
                if is_auth_error(e):
                    raise self._auth_error(e) from None
            raise TimeoutError(str(errors[-1]) if errors else "connect timed out") \
                from None

    def _auth_error(self, exc: BaseException) -> NatsAuthError:
        how = (f"credentials from {self.credentials.source}" if self.credentials.source != "none"
               else "no credentials (bridge.nats.credentials_file / LoadCredential=nats)")
        return NatsAuthError(f"NATS server {', '.join(self.config.servers)} refused the "
                             f"connection: {exc} (with {how}); fix the credentials and "
                             f"restart")


async def close_quietly(nc: NATS | None) -> None:
    """Close a client without raising (it may already be closed or broken)."""
    if nc is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.close(), 2.0)


def _nats_task(context: dict[str, Any]) -> str | None:
    """The qualified name of the coroutine of the task in an asyncio error context, if
    the NATS client (the ``nats`` package) made that task; else None."""
    task = context.get("future") or context.get("task")
    get_coro = getattr(task, "get_coro", None)
    coro = get_coro() if callable(get_coro) else None
    code = getattr(coro, "cr_code", None)
    if code is None or f"{os.sep}nats{os.sep}" not in code.co_filename:
        return None
    return str(getattr(coro, "__qualname__", code.co_name))


def quiet_nats_client_tasks(loop: asyncio.AbstractEventLoop,
                            context: dict[str, Any]) -> None:
    """The bridge's asyncio exception handler: what a dropped connection leaves behind in
    the NATS client's own tasks, one log line each, no traceback.

    When the server goes away, nats-py's read loop task can end with the socket error
    (``ConnectionResetError``) that nobody retrieves, and the tasks of the abandoned
    client's subscriptions are destroyed pending; asyncio would log each as an ERROR with
    a traceback. The :class:`Connector` has seen the outage already (it reconnects and
    says so), so these are a warning (the error) and debug (the pending tasks). Anything
    else goes to asyncio's default handler.
    """
    name = _nats_task(context)
    exc = context.get("exception")
    if name is not None and (exc is None or isinstance(exc, (OSError, nats.errors.Error))):
        if exc is None:
            log.debug("NATS client task %s of a dropped connection: %s", name,
                      context.get("message", "?"))
        else:
            log.warning("NATS client task %s ended after the connection dropped: %s (%s); "
                        "the bridge reconnects by itself", name, type(exc).__name__, exc)
        return
    loop.default_exception_handler(context)


Starter = Callable[[NATS], Awaitable[None]]

__all__ = ["Connector", "Credentials", "close_quietly", "credentials_path", "is_auth_error",
           "load_credentials", "quiet_nats_client_tasks", "tls_context"]
