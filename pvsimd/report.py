"""``pvsimd report``: energy balances per house, read from the CSV day files.

    pvsimd report [--date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD] [--meter ID ...]
                  [--config FILE] [--plot FILE.png] [--directory DIR [--timezone ZONE]]

``--from`` and ``--to`` (both days included) report a period instead of one day: for
each house a table by day and one by month — consumed, produced, self-consumed,
self-consumption and self-sufficiency, with totals (:mod:`pvsimd.balance`); ``--plot``
then draws the monthly bars (a period of one day: that day's curves, as below).  Days
without a file are left out and named on standard error.  The rest of this describes
one day (``--date``):

It reads ``<output directory>/<meter>/<date>.csv`` (directory and site timezone from the
pvsimd configuration, or from ``--directory`` and ``--timezone`` without reading it) and
prints one line per house:

* ``consumed_kWh`` / ``produced_kWh``: the meter's and the PV's energy.  Each row's power
  is held until the next row's timestamp; the last row's for the median spacing of the
  rows (not beyond midnight).  So a gap counts the power before it for its whole length.
* ``self_use_%``: the share of the PV energy the house used at the same time,
  sum over rows of min(meter, PV) x duration / PV energy (empty without PV energy).
* ``peak_meter_W``, ``peak_pv_W``, ``peak_sum_W``: the largest values of the day.
* ``missing_seq``: readings really missing — sampled (a seq taken) but never arrived.
  Taking the rows in time order, each pair of neighbours adds its seq jump - 1 when
  that is at most the time grid's ticks - 1 between them (:func:`missing_readings`).
  A lost reading leaves both a seq and a time gap, and counts; a meter that was off
  took no samples, leaves a time gap only, and does not count; seqs that ran ahead of
  the time grid were spent on other timestamps — a replay (``meterd --replay``, while
  the live meter was stopped) or readings already delivered, dropped as repeats — and
  do not count either.  ``missing_time``: ticks missing from the time grid, its
  interval being the median spacing of the rows (between the first and the last row),
  whatever the reason.

``--plot`` draws meter, PV and sum over the day, one panel per house, with matplotlib
(imported only then; without it: exit 69).  Exit codes: 0, 66 when there is no file for
the day, 69 without matplotlib, 78 for a bad configuration.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from pvsim import config as c
from pvsimd import balance, csv_format
from pvsimd.csv_format import Row
from pvsimd.settings import PvSettings, PvsimdConfig, SecuritySettings

EX_OK = 0
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_CONFIG = c.EX_CONFIG


@dataclass(frozen=True)
class Summary:
    """One house's day: rows, energies, peaks and gaps."""

    meter_id: str
    rows: int
    first: datetime | None
    last: datetime | None
    interval_s: float | None
    consumed_kwh: float
    produced_kwh: float
    self_consumed_kwh: float
    peak_meter_w: float
    peak_pv_w: float
    peak_sum_w: float
    missing_seq: int
    missing_time: int

    @property
    def self_use_share(self) -> float | None:
        """Part of the PV energy used by the house at the same time (None: no PV)."""
        if self.produced_kwh <= 0:
            return None
        return self.self_consumed_kwh / self.produced_kwh


def read_rows(path: Path) -> tuple[list[Row], int]:
    """The rows of a day file (:mod:`pvsimd.csv_format`), and how many lines could not
    be read."""
    rows: list[Row] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if csv_format.is_header(line) or not line.strip():
                continue
            try:
                rows.append(csv_format.parse_row(line))
            except ValueError:
                bad += 1
    return rows, bad


def summarise(meter_id: str, rows: Sequence[Row], day_end: datetime | None = None) -> Summary:
    """The day's figures from its rows (in any order; a repeated timestamp counts once)."""
    unique: dict[datetime, Row] = {}
    for row in rows:
        unique.setdefault(row.ts, row)
    ordered = sorted(unique.values(), key=lambda r: r.ts)
    if not ordered:
        return Summary(meter_id, 0, None, None, None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0)
    spacings = [(b.ts - a.ts).total_seconds() for a, b in pairwise(ordered)]
    interval = statistics.median(spacings) if spacings else None
    consumed = produced = both = 0.0  # Ws
    for i, row in enumerate(ordered):
        if i + 1 < len(ordered):
            held = spacings[i]
        else:
            held = interval or 0.0
            if day_end is not None:
                held = max(0.0, min(held, (day_end - row.ts).total_seconds()))
        consumed += row.meter_w * held
        produced += row.pv_w * held
        both += min(row.meter_w, row.pv_w) * held
    missing_time = 0
    if interval:
        missing_time = sum(max(0, round(s / interval) - 1) for s in spacings)
    missing_seq = missing_readings(ordered, interval) if interval else 0
    return Summary(
        meter_id=meter_id,
        rows=len(ordered),
        first=ordered[0].ts,
        last=ordered[-1].ts,
        interval_s=interval,
        consumed_kwh=consumed / 3.6e6,
        produced_kwh=produced / 3.6e6,
        self_consumed_kwh=both / 3.6e6,
        peak_meter_w=max(r.meter_w for r in ordered),
        peak_pv_w=max(r.pv_w for r in ordered),
        peak_sum_w=max(r.sum_w for r in ordered),
        missing_seq=missing_seq,
        missing_time=missing_time,
    )


def missing_readings(ordered: Sequence[Row], interval: float) -> int:
    """Readings sampled but not in the file, from rows in time order (one per timestamp).

    Between two neighbouring rows with seqs a and b, spaced t ticks of ``interval``
    apart, the meter took b - a - 1 samples that are not here, and t - 1 ticks passed
    without a row.  When b - a <= t those samples were taken on the ticks in between
    and are missing (fewer seqs than ticks: the meter was also off for a while).  When
    b - a > t the meter spent seqs on other timestamps meanwhile — a replay, which runs
    only while the live meter is stopped, or readings already delivered and dropped as
    repeats — so nothing here tells of a loss and the pair counts 0 (a gap in time still
    shows in ``missing_time``).  Rows without a seq, or a seq going back, count 0."""
    missing = 0
    for a, b in pairwise(ordered):
        if a.seq is None or b.seq is None:
            continue
        jump = b.seq - a.seq
        ticks = round((b.ts - a.ts).total_seconds() / interval)
        if 1 < jump <= ticks:
            missing += jump - 1
    return missing


COLUMNS = (
    "meter",
    "rows",
    "from",
    "to",
    "interval_s",
    "consumed_kWh",
    "produced_kWh",
    "self_use_%",
    "peak_meter_W",
    "peak_pv_W",
    "peak_sum_W",
    "missing_seq",
    "missing_time",
)


def table(summaries: Sequence[Summary], tz: tzinfo) -> str:
    """The summaries as an aligned text table, one line per house."""

    def hhmmss(ts: datetime | None) -> str:
        return "-" if ts is None else ts.astimezone(tz).strftime("%H:%M:%S")

    lines = [list(COLUMNS)]
    for s in summaries:
        share = s.self_use_share
        lines.append(
            [
                s.meter_id,
                str(s.rows),
                hhmmss(s.first),
                hhmmss(s.last),
                "-" if s.interval_s is None else f"{s.interval_s:g}",
                f"{s.consumed_kwh:.3f}",
                f"{s.produced_kwh:.3f}",
                "-" if share is None else f"{100 * share:.1f}",
                f"{s.peak_meter_w:.1f}",
                f"{s.peak_pv_w:.1f}",
                f"{s.peak_sum_w:.1f}",
                str(s.missing_seq),
                str(s.missing_time),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def load_pyplot():  # noqa: ANN201 - matplotlib.pyplot, or None when it is not installed
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot(
    path: Path,
    day: date,
    tz: tzinfo,
    days: Sequence[tuple[Summary, Sequence[Row]]],
    plt,  # noqa: ANN001 - matplotlib.pyplot
) -> None:
    """Meter, PV and sum over the day, one panel per house, written to ``path``."""
    import matplotlib.dates as mdates

    fig, axes = plt.subplots(
        len(days), 1, figsize=(11, 3.2 * len(days)), sharex=True, squeeze=False
    )
    start = datetime.combine(day, time(), tz)
    for ax, (summary, rows) in zip(axes[:, 0], days, strict=True):
        ordered = sorted(rows, key=lambda r: r.ts)
        xs = [r.ts.astimezone(tz).replace(tzinfo=None) for r in ordered]
        ax.plot(xs, [r.sum_w for r in ordered], lw=0.7, label="sum", color="tab:blue")
        ax.plot(xs, [r.meter_w for r in ordered], lw=0.7, label="meter", color="tab:red")
        ax.plot(xs, [r.pv_w for r in ordered], lw=1.0, label="PV", color="tab:orange")
        ax.set_ylabel("W")
        ax.set_title(
            f"{summary.meter_id}: consumed {summary.consumed_kwh:.2f} kWh, "
            f"PV {summary.produced_kwh:.2f} kWh",
            fontsize=10,
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    last = axes[-1, 0]
    last.set_xlim(start.replace(tzinfo=None), (start + timedelta(days=1)).replace(tzinfo=None))
    last.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    last.set_xlabel(f"{day.isoformat()} ({tz})")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pvsimd report",
        description="One day's energy per house (meter, PV, self-consumption, peaks, "
        "missing readings), or a period's by day and by month (consumed, produced, "
        "self-consumption, self-sufficiency), from pvsimd's CSV day files.",
    )
    p.add_argument(
        "--date",
        type=date.fromisoformat,
        help="the day, YYYY-MM-DD in the site's timezone (default: today there)",
    )
    p.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        metavar="DATE",
        help="with --to: report the days from DATE (YYYY-MM-DD) on, by day and by month",
    )
    p.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        metavar="DATE",
        help="with --from: the last day of the period (included)",
    )
    p.add_argument(
        "--meter",
        action="append",
        metavar="ID",
        help="only this house (may be given more than once; default: every house)",
    )
    p.add_argument(
        "--config",
        default="/etc/pvsimd/pvsimd.ini",
        help="pvsimd's config, for the output directory and the timezone (default: %(default)s)",
    )
    p.add_argument(
        "--directory",
        type=Path,
        metavar="DIR",
        help="read the CSV files from DIR instead, without reading the config "
        "(for users who may read the data but not the config's drop-ins)",
    )
    p.add_argument(
        "--timezone",
        type=c.timezone,
        metavar="ZONE",
        help="with --directory: the site's IANA timezone (default: UTC)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw the day (or the period's months) into FILE (PNG)",
    )
    return p


@dataclass(frozen=True, kw_only=True)
class _PvSettingsUnread(PvSettings):
    """[pv] with the weather file's path kept as text."""

    weather: str = c.key(c.string, "", "the weather file's path, not read by the report")


@dataclass(frozen=True, kw_only=True)
class _SecuritySettingsUnread(SecuritySettings):
    """[security] with a sender_map file's path kept as text."""

    sender_map: str = c.key(c.string, "", "the senders, not read by the report")


@dataclass(frozen=True, kw_only=True)
class ReportConfig(PvsimdConfig):
    """pvsimd's schema with the files it names (``[pv] weather``, a ``[security]
    sender_map`` file) taken as their paths: the report needs the output directory and
    the timezone, not those files (nor read access to them)."""

    pv: _PvSettingsUnread
    security: _SecuritySettingsUnread


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if (args.first is None) != (args.last is None):
        p.error("--from and --to go together")
    if args.first is not None:
        if args.date is not None:
            p.error("--date or --from/--to, not both")
        if args.last < args.first:
            p.error(f"--to {args.last} is before --from {args.first}")
    if args.directory is not None:
        tz, directory = args.timezone or ZoneInfo("UTC"), args.directory
    elif args.timezone is not None:
        p.error("--timezone goes with --directory (otherwise it comes from the config)")
    else:
        try:
            config = c.load(args.config, ReportConfig)
        except c.ConfigError as exc:
            print(f"pvsimd report: {exc}", file=sys.stderr)
            return EX_CONFIG
        tz, directory = config.site.timezone, config.output.directory
    plt = None
    if args.plot is not None:
        plt = load_pyplot()
        if plt is None:
            print("pvsimd report: install python3-matplotlib to draw plots", file=sys.stderr)
            return EX_UNAVAILABLE
    if args.first is not None:
        return period_report(args, directory, tz, plt)
    day = args.date or datetime.now(tz).date()
    day_end = datetime.combine(day + timedelta(days=1), time(), tz)
    name = f"{day.isoformat()}.csv"
    if args.meter:
        paths = [directory / meter / name for meter in args.meter]
    else:
        paths = sorted(directory.glob(f"*/{name}"))
    found = [p for p in paths if p.is_file()]
    for path in paths:
        if path not in found:
            print(f"pvsimd report: no file {path}", file=sys.stderr)
    if not found:
        print(f"pvsimd report: no CSV files for {day} in {directory}", file=sys.stderr)
        return EX_NOINPUT
    days = []
    for path in found:
        try:
            rows, bad = read_rows(path)
        except OSError as exc:
            print(f"pvsimd report: cannot read {path}: {exc}", file=sys.stderr)
            return EX_NOINPUT
        if bad:
            print(f"pvsimd report: {path}: skipped {bad} unreadable rows", file=sys.stderr)
        days.append((summarise(path.parent.name, rows, day_end), rows))
    print(f"{day.isoformat()} ({tz}), {directory}")
    print(table([s for s, _rows in days], tz))
    if plt is not None:
        plot(args.plot, day, tz, days, plt)
        print(f"plot written to {args.plot}")
    return EX_OK


def day_balance(path: Path, day: date, tz: tzinfo) -> tuple[balance.Balance, int]:
    """The energies of one day file, and how many of its lines could not be read."""
    rows, bad = read_rows(path)
    s = summarise(path.parent.name, rows, datetime.combine(day + timedelta(days=1), time(), tz))
    return balance.Balance(s.consumed_kwh, s.produced_kwh, s.self_consumed_kwh, 1), bad


def period_report(
    args: argparse.Namespace,
    directory: Path,
    tz: tzinfo,
    plt,  # noqa: ANN001 - matplotlib.pyplot or None
) -> int:
    """``--from``/``--to``: each house's days and months (exit code as :func:`main`)."""
    first, last = args.first, args.last
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    if args.meter:
        meters = list(dict.fromkeys(args.meter))
    else:
        meters = sorted(d.name for d in directory.glob("*") if d.is_dir())
    houses: list[tuple[str, list[tuple[date, balance.Balance]]]] = []
    for meter in meters:
        found = [d for d in days if (directory / meter / f"{d.isoformat()}.csv").is_file()]
        if not found:
            if args.meter:
                print(f"pvsimd report: no file for {meter} from {first} to {last}", file=sys.stderr)
            continue
        if len(found) < len(days):
            missing = [d for d in days if d not in set(found)]
            print(
                f"pvsimd report: {meter}: no file for {len(missing)} of {len(days)} days "
                f"(the first: {missing[0]})",
                file=sys.stderr,
            )
        balances, unreadable = [], 0
        for day in found:
            path = directory / meter / f"{day.isoformat()}.csv"
            try:
                b, bad = day_balance(path, day, tz)
            except OSError as exc:
                print(f"pvsimd report: cannot read {path}: {exc}", file=sys.stderr)
                return EX_NOINPUT
            balances.append((day, b))
            unreadable += bad
        if unreadable:
            print(f"pvsimd report: {meter}: skipped {unreadable} unreadable rows", file=sys.stderr)
        houses.append((meter, balances))
    if not houses:
        print(f"pvsimd report: no CSV files from {first} to {last} in {directory}", file=sys.stderr)
        return EX_NOINPUT
    print(f"{first.isoformat()} to {last.isoformat()} ({tz}), {directory}")
    for meter, balances in houses:
        print(f"\n{meter}, by day")
        print(balance.table("day", [(d.isoformat(), b) for d, b in balances]))
        print(f"\n{meter}, by month")
        print(balance.table("month", balance.by_month(balances), days=True))
    if plt is not None:
        if first == last:
            day_end = datetime.combine(first + timedelta(days=1), time(), tz)
            curves = []
            for meter, _ in houses:
                rows, _bad = read_rows(directory / meter / f"{first.isoformat()}.csv")
                curves.append((summarise(meter, rows, day_end), rows))
            plot(args.plot, first, tz, curves, plt)
        else:
            months = [(meter, balance.by_month(balances)) for meter, balances in houses]
            balance.plot_months(args.plot, months, f"{first} to {last} ({tz})", plt)
        print(f"plot written to {args.plot}")
    return EX_OK
