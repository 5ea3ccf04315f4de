"""The bridge: a segment beyond one host, over NATS JetStream (``tradingd-bridge``).

This wing owns moving a segment's stream between hosts, and nothing about the segment's
format (that is :mod:`tradingd.segment`'s) or about analysing it:

* :mod:`.codec`: the wire format (records batched into messages, state messages);
* :mod:`.feed`: subjects and the JetStream stream of one origin segment;
* :mod:`.connection`: credentials, TLS, connecting with backoff, auth errors;
* :mod:`.publish`: ``tradingd-bridge publish`` (local segment -> NATS);
* :mod:`.mirror`: ``tradingd-bridge mirror`` (NATS -> a local segment it produces);
* :mod:`.metrics`, :mod:`.cli`: the daemons' metrics and command line.

Imports point one way: this wing uses the segment wing (reader, writer, ownership), the
consumer's follower and latency histogram, and the daemon plumbing; nothing imports it.
The design and the operator's view are in docs/multi-host.md.
"""

from tradingd.bridge.codec import Batch, DecodeError, UpstreamState
from tradingd.bridge.feed import Feed, feed_of
from tradingd.bridge.mirror import Mirror
from tradingd.bridge.publish import PublishBridge

__all__ = ["Batch", "DecodeError", "Feed", "Mirror", "PublishBridge", "UpstreamState",
           "feed_of"]
