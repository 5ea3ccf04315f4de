"""What every daemon's metrics share: naming, build info, the registry, label spellings.

One module so a new daemon (gateway, bridge, exec, ...) exports the same way as the
producer and the consumer (docs/metrics.md, "Conventions", says the same for humans):

* names: ``tradingd_<daemon>_<what>_<unit>`` for a daemon's own metrics; the few facts
  every daemon has are one family across all of them, told apart by a ``daemon`` label
  (:data:`BUILD_INFO`: ``tradingd_build_info{daemon="producer", version=..., ...}``);
* no ``_created`` series: :func:`daemon_registry` turns them off process-wide (the
  producer's counters had them, the consumer's custom collector had none: a half-populated
  set nobody queries);
* one spelling of a generation: :func:`generation_label` (16 lowercase hex digits, no
  ``0x``; empty while there is none), so producer and consumer series join on it.

Plumbing: imports nothing from the daemons' wings.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.core import InfoMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from tradingd import __version__

#: Prefix of every tradingd metric.
NAMESPACE = "tradingd"
#: The build-info family every daemon serves (the exposition adds ``_info``).
BUILD_INFO = f"{NAMESPACE}_build"


def prefix(daemon: str) -> str:
    """``tradingd_<daemon>_``: the prefix of a daemon's own metrics."""
    return f"{NAMESPACE}_{daemon}_"


def generation_label(generation: int) -> str:
    """A segment generation as a label value: 16 lowercase hex digits, ``""`` for none."""
    return f"{generation:016x}" if generation else ""


class BuildInfoCollector(Collector):
    """``tradingd_build_info{daemon, version, python_version, ...}`` (value 1)."""

    def __init__(self, daemon: str, extra: Mapping[str, str]) -> None:
        self._labels = {"daemon": daemon, "version": __version__,
                        "python_version": platform.python_version(), **extra}

    def collect(self) -> Iterable[Metric]:
        yield InfoMetricFamily(BUILD_INFO, "tradingd daemon, version and runtime (value 1).",
                               value=self._labels)


def daemon_registry(daemon: str, *, build: Mapping[str, str] | None = None,
                    process: bool = True) -> CollectorRegistry:
    """A daemon's own registry: build info, and the client library's process/platform/GC
    collectors (``process=False`` leaves them out, for tests comparing exact output).

    Never the library's global REGISTRY, so each daemon and each test has its own.
    """
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BuildInfoCollector(daemon, build or {}))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


__all__ = ["BUILD_INFO", "NAMESPACE", "BuildInfoCollector", "daemon_registry",
           "generation_label", "prefix"]
