"""What this build of pvsim is: its version and its build date.

The build date is the date of the newest entry of ``debian/changelog`` — what
dpkg-buildpackage exports as ``SOURCE_DATE_EPOCH`` for a reproducible build.  No
correct clock can be earlier, so meterd trusts no timestamp before it and pvsimd judges
"ahead of its own clock" only with a clock past it.

* Built (``setup.py build``, as the Debian package does): the build writes the date into
  ``pvsim/_build_date.py`` (:data:`GENERATED`) — ``SOURCE_DATE_EPOCH`` when set, else the
  changelog of the source tree.
* Run from a clone: the changelog beside the package, ``debian/changelog``.

Neither (an unusual install): :func:`build_epoch` is None and the daemons say so.
"""

from __future__ import annotations

import email.utils
import os
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from pvsim import __version__

VERSION = __version__
GENERATED = "_build_date.py"  # written next to this module by setup.py's build step
CHANGELOG = Path(__file__).resolve().parents[1] / "debian" / "changelog"

_TRAILER = re.compile(r"^ -- .+?<[^>]*>  (.+)$", re.M)


def changelog_epoch(text: str) -> int | None:
    """The date of the newest entry of a Debian changelog (its first trailer line,
    `` -- Name <mail>  Tue, 24 Nov 2026 09:30:00 +0000``), in seconds since the epoch."""
    m = _TRAILER.search(text)
    if m is None:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(m.group(1).strip()).timestamp())
    except (TypeError, ValueError):
        return None


def source_epoch(environ: dict[str, str] | os._Environ = os.environ) -> int | None:
    """The build date a build should record: ``SOURCE_DATE_EPOCH``, else the changelog
    of the source tree (setup.py calls this)."""
    value = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isdigit():
        return int(value)
    try:
        return changelog_epoch(CHANGELOG.read_text(encoding="utf-8"))
    except OSError:
        return None


def generated_module(epoch: int) -> str:
    """The text of :data:`GENERATED` for a build date."""
    return (
        '"""Written by setup.py at build time (pvsim/build_info.py): the build date."""\n\n'
        f"EPOCH = {epoch}\n"
    )


@cache
def build_epoch() -> int | None:
    """The build date in seconds since the epoch (None when it cannot be known)."""
    try:
        from pvsim import _build_date  # type: ignore[attr-defined]

        return int(_build_date.EPOCH)
    except (ImportError, AttributeError, ValueError):
        pass
    try:
        return changelog_epoch(CHANGELOG.read_text(encoding="utf-8"))
    except OSError:
        return None


def build_date_text() -> str:
    """The build date as ``YYYY-MM-DD`` (``unknown`` without one)."""
    epoch = build_epoch()
    if epoch is None:
        return "unknown"
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()
