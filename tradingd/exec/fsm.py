"""The order life cycle as an explicit transition table (FIX 4.4 OrdStatus).

As nautilus_trader keeps its order state machine: a table keyed by (current status,
event) giving the next status. Anything not in the table is a bug in the caller: it is
refused (``next_status`` returns None), and the engine counts and logs it and leaves the
order as it was.

::

    PENDING_NEW --accept--> NEW --partial_fill--> PARTIALLY_FILLED --fill--> FILLED
    PENDING_NEW --reject--> REJECTED         NEW/PARTIALLY_FILLED --cancel--> CANCELED
    NEW --fill--> FILLED                     NEW/PARTIALLY_FILLED --expire--> EXPIRED
    PARTIALLY_FILLED --partial_fill--> PARTIALLY_FILLED
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType

from tradingd.exec.protocol import OrdStatus


class Event(Enum):
    """What can happen to an order."""

    ACCEPT = "accept"
    REJECT = "reject"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCEL = "cancel"
    EXPIRE = "expire"


S = OrdStatus
TRANSITIONS = MappingProxyType({
    (S.PENDING_NEW, Event.ACCEPT): S.NEW,
    (S.PENDING_NEW, Event.REJECT): S.REJECTED,
    (S.NEW, Event.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NEW, Event.FILL): S.FILLED,
    (S.NEW, Event.CANCEL): S.CANCELED,
    (S.NEW, Event.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, Event.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, Event.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, Event.CANCEL): S.CANCELED,
    (S.PARTIALLY_FILLED, Event.EXPIRE): S.EXPIRED,
})


def next_status(status: OrdStatus, event: Event) -> OrdStatus | None:
    """The status after ``event``, or None if the table does not allow it."""
    return TRANSITIONS.get((status, event))


def legal(status: OrdStatus, event: Event) -> bool:
    return (status, event) in TRANSITIONS


__all__ = ["TRANSITIONS", "Event", "legal", "next_status"]
