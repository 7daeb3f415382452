"""Verified senders: which broker user may send readings of which meter.

The broker sets nothing by itself, but it refuses a message whose AMQP ``user_id``
property is not the user of the connection that published it.  So a ``user_id`` that
arrives is the sender's real broker user, and pvsimd (``[security] verify_sender``)
accepts a reading only when that user may send for the reading's ``meter_id``:

* a user named in ``sender_map`` may send for exactly the meters listed for it;
* RabbitMQ's ``guest``, when the broker is on this machine (a loopback URL) and
  ``trust_local_guest`` is on (the default), for any meter — see below;
* any other user only for the meter of its own name (``pvsim-broker-setup`` makes one
  user per meter, named like the meter).

Everything else — no ``user_id``, another house's user — is dead-lettered as forged.

Why ``guest`` on a local broker may speak for every meter: RabbitMQ lets ``guest`` log in
only over a loopback connection (its default ``loopback_users = guest``), so a message
whose ``user_id`` is ``guest`` was published by a process on the broker's host — and when
pvsimd reaches its broker over loopback, that is pvsimd's own host: the single-host
install, where meterd and pvsimd run side by side with the shipped configs.  A house on
another machine cannot log in as ``guest``, so it still speaks only for its own meter.
The limits (a broker whose ``loopback_users`` was changed, a proxy or tunnel on the
broker's host, local users who know guest's password) are in docs/security.md.

``sender_map`` is either inline, ``user:meter`` pairs separated by commas or blanks
(``guest:house-a, guest:house-b``), or the absolute path of a file holding such pairs
(one or more a line, ``#`` starts a comment).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pvsim import config as c
from pvsim.broker import is_loopback
from pvsim.wire import METER_ID_RE

log = logging.getLogger("pvsimd.senders")

#: RabbitMQ's built-in user, which its default loopback_users lets log in only locally
LOCAL_GUEST = "guest"

SenderMap = Mapping[str, frozenset[str]]

_USER_RE = re.compile(r"[^\s,:#]{1,255}")


def parse_sender_map(text: str) -> SenderMap:
    """The ``[security] sender_map`` value: inline pairs or a file of them."""
    if text.startswith("/"):
        try:
            content = Path(text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot read {text}: {why}") from None
        lines = [line.split("#", 1)[0] for line in content.splitlines()]
        return _pairs(" ".join(lines), f" in {text}")
    return _pairs(text, "")


def _pairs(text: str, where: str) -> SenderMap:
    senders: dict[str, set[str]] = {}
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        user, sep, meter = item.partition(":")
        if not sep or not _USER_RE.fullmatch(user) or not METER_ID_RE.fullmatch(meter):
            raise ValueError(
                f"must be user:meter_id pairs separated by commas{where}, "
                f"such as 'guest:house-a, guest:house-b'; got {item!r}"
            )
        senders.setdefault(user, set()).add(meter)
    return {user: frozenset(meters) for user, meters in senders.items()}


@dataclass(frozen=True)
class SenderCheck:
    """Which broker user may send readings of which meter (module docstring)."""

    senders: SenderMap = field(default_factory=dict)
    #: users that may send for any meter (the local guest), unless sender_map names them
    any_meter: frozenset[str] = frozenset()

    def allowed(self, user_id: str | None, meter_id: str) -> bool:
        if not user_id:
            return False
        meters = self.senders.get(user_id)
        if meters is not None:
            return meter_id in meters
        return user_id in self.any_meter or user_id == meter_id

    def forged(self, user_id: str | None, meter_id: str) -> str | None:
        """None for a reading ``user_id`` may send; else the dead-letter reason."""
        if self.allowed(user_id, meter_id):
            return None
        if not user_id:
            return f"forged: no user_id, so the sender of meter {meter_id!r} is unknown"
        return f"forged: broker user {user_id!r} may not send readings of meter {meter_id!r}"


def sender_check(config: c.Config) -> SenderCheck | None:
    """The check pvsimd applies (``[security]``, and ``[broker] url`` for the local guest);
    None when ``verify_sender`` is off."""
    security = config.security
    if not security.verify_sender:
        return None
    senders = security.sender_map
    local_guest = (
        security.trust_local_guest
        and is_loopback(urlsplit(config.broker.url).hostname)
        and LOCAL_GUEST not in senders
    )
    if local_guest:
        log.info(
            "verified senders: the broker is on this machine, where RabbitMQ lets %r log in "
            "only locally, so readings sent as %r are accepted for any meter "
            "([security] trust_local_guest = no turns this off; see docs/security.md)",
            LOCAL_GUEST,
            LOCAL_GUEST,
        )
    return SenderCheck(senders, frozenset({LOCAL_GUEST}) if local_guest else frozenset())
