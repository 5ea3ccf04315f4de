"""The gateway: the segment served to web clients over WebSocket, and a live page.

:mod:`.protocol` declares the wire protocol once (channels, message shapes, error and close
codes; docs/websocket-api.md describes it); :mod:`.hub` is the fan-out engine (subscriptions,
batched frames, conflation, slow clients), independent of any socket library;
:mod:`.server` puts it behind picows (HTTP routing, the page, Origin/token/connection-limit
checks); :mod:`.daemon` is ``tradingd-gateway`` (config, follower, sd_notify, signals) and
:mod:`.metrics` its Prometheus collector. ``page/`` holds the live page (plain JS + SVG),
shipped as package data. The segment is followed with the consumer's
:class:`~tradingd.consumer.follower.Follower`, read-only.
"""

from tradingd.gateway.hub import Client, Hub, Limits, Peer
from tradingd.gateway.protocol import (
    PROTOCOL_VERSION,
    RECORD_FIELDS,
    Channel,
    CloseCode,
    ErrorCode,
    parse_request,
)

__all__ = ["PROTOCOL_VERSION", "RECORD_FIELDS", "Channel", "Client", "CloseCode", "ErrorCode",
           "Hub", "Limits", "Peer", "parse_request"]
