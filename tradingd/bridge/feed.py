"""A feed: one origin segment's stream on NATS (its subjects, its JetStream stream).

Subjects (``<prefix>`` = ``bridge.subject_prefix``, ``<feed>`` = ``bridge.feed``, by default
the origin segment's name)::

    <prefix>.<feed>.records   records messages, in origin ring order (codec kind 1)
    <prefix>.<feed>.state     upstream state + symbol table (codec kind 2)

One subject for all of a segment's records rather than one per symbol: the segment's
contract is ONE sequence across symbols (ring order), which a mirror must reproduce;
per-symbol subjects would split every ring batch into per-symbol messages (64 symbols:
64 small messages instead of one), and the mirror would have to merge them back. A
symbol is also not always a valid subject token (``BRK.B``). Sharding by symbol, when
one connection is not enough, is done with several feeds (docs/multi-host.md).

The stream ``<PREFIX>_<FEED>`` (upper case; JetStream names allow no dots) holds both
subjects, with the retention of ``bridge.stream`` and a 2-minute duplicate window (the
publisher sets ``Nats-Msg-Id`` = generation:first_seq, so a batch re-sent after an
outage is stored once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError

from tradingd.daemon.config import BridgeConfig

DUPLICATE_WINDOW_S = 120.0


@dataclass(frozen=True)
class Feed:
    """The names of one feed on NATS."""

    prefix: str
    name: str

    @property
    def records_subject(self) -> str:
        return f"{self.prefix}.{self.name}.records"

    @property
    def state_subject(self) -> str:
        return f"{self.prefix}.{self.name}.state"

    @property
    def all_subjects(self) -> str:
        return f"{self.prefix}.{self.name}.*"

    @property
    def stream(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.prefix}_{self.name}").upper()


def feed_of(config: BridgeConfig, segment: str, override: str | None = None) -> Feed:
    """The feed named by ``--feed``, else ``bridge.feed``, else the segment's name."""
    name = override or config.feed or re.sub(r"[^A-Za-z0-9_-]", "_", segment)
    return Feed(config.subject_prefix, name)


async def ensure_stream(js: JetStreamContext, feed: Feed, config: BridgeConfig) -> None:
    """Create the feed's stream if it does not exist (the publish bridge does this)."""
    s = config.stream
    try:
        await js.stream_info(feed.stream)
        return
    except NotFoundError:
        pass
    await js.add_stream(api.StreamConfig(
        name=feed.stream, subjects=[feed.all_subjects], max_bytes=s.max_bytes,
        max_age=s.max_age, num_replicas=s.replicas, discard=api.DiscardPolicy.OLD,
        storage=api.StorageType.FILE if s.storage == "file" else api.StorageType.MEMORY,
        duplicate_window=DUPLICATE_WINDOW_S,
        description="tradingd segment feed (tradingd-bridge)"))


__all__ = ["DUPLICATE_WINDOW_S", "Feed", "ensure_stream", "feed_of"]
