"""Energy balances of days and months per house — what ``pvsimd report --from --to``
prints and draws.

A :class:`Balance` holds a period's energies in kWh: *consumed* (the meter), *produced*
(the PV) and *self-consumed* (Σ min(meter, PV) × duration: the PV energy the house used
at once).  From them:

- **self-consumption** = self-consumed / produced: the share of the PV energy used at
  once (the rest is fed in);
- **self-sufficiency** = self-consumed / consumed: the share of the consumption covered
  by the PV at once (the rest comes from the grid).

Periods add up energy by energy, so a month's or the total's shares are those of its
summed energies (not an average of the days' shares).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class Balance:
    consumed_kwh: float = 0.0
    produced_kwh: float = 0.0
    self_consumed_kwh: float = 0.0
    days: int = 0  # days with a file

    def __add__(self, other: Balance) -> Balance:
        return Balance(
            self.consumed_kwh + other.consumed_kwh,
            self.produced_kwh + other.produced_kwh,
            self.self_consumed_kwh + other.self_consumed_kwh,
            self.days + other.days,
        )

    @property
    def self_consumption(self) -> float | None:
        """Share of the PV energy used at once (None without PV energy)."""
        return self.self_consumed_kwh / self.produced_kwh if self.produced_kwh > 0 else None

    @property
    def self_sufficiency(self) -> float | None:
        """Share of the consumption covered by PV at once (None without consumption)."""
        return self.self_consumed_kwh / self.consumed_kwh if self.consumed_kwh > 0 else None


def total(balances: Iterable[Balance]) -> Balance:
    result = Balance()
    for b in balances:
        result += b
    return result


def by_month(days: Iterable[tuple[date, Balance]]) -> list[tuple[str, Balance]]:
    """The days' balances summed per calendar month (``YYYY-MM``), in order."""
    months: dict[str, Balance] = {}
    for day, b in sorted(days):
        key = f"{day.year:04d}-{day.month:02d}"
        months[key] = months.get(key, Balance()) + b
    return list(months.items())


COLUMNS = (
    "consumed_kWh",
    "produced_kWh",
    "self_consumed_kWh",
    "self_consumption_%",
    "self_sufficiency_%",
)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}"


def table(first: str, periods: Sequence[tuple[str, Balance]], days: bool = False) -> str:
    """An aligned text table: one line per period, then their total; ``days`` adds the
    number of days with a file."""
    header = [first, *(["days"] if days else []), *COLUMNS]
    lines = [header]
    for label, b in [*periods, ("total", total(b for _, b in periods))]:
        lines.append(
            [
                label,
                *([str(b.days)] if days else []),
                f"{b.consumed_kwh:.3f}",
                f"{b.produced_kwh:.3f}",
                f"{b.self_consumed_kwh:.3f}",
                _percent(b.self_consumption),
                _percent(b.self_sufficiency),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            [line[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
        )
        for line in lines
    )


def plot_months(
    path: Path,
    houses: Sequence[tuple[str, Sequence[tuple[str, Balance]]]],
    title: str,
    plt,  # noqa: ANN001 - matplotlib.pyplot
) -> None:
    """Monthly bars — consumed, produced, self-consumed — one panel per house."""
    fig, axes = plt.subplots(len(houses), 1, figsize=(11, 3.4 * len(houses)), squeeze=False)
    width = 0.27
    for ax, (meter, months) in zip(axes[:, 0], houses, strict=True):
        xs = range(len(months))
        bars = (
            ("consumed", "tab:red", [b.consumed_kwh for _, b in months]),
            ("produced (PV)", "tab:orange", [b.produced_kwh for _, b in months]),
            ("PV used at once", "tab:green", [b.self_consumed_kwh for _, b in months]),
        )
        for k, (label, color, values) in enumerate(bars):
            ax.bar([x + (k - 1) * width for x in xs], values, width, label=label, color=color)
        ax.set_xticks(list(xs), [label for label, _ in months])
        ax.set_ylabel("kWh")
        whole = total(b for _, b in months)
        ax.set_title(
            f"{meter}: consumed {whole.consumed_kwh:.0f} kWh, produced "
            f"{whole.produced_kwh:.0f} kWh, self-consumption "
            f"{_percent(whole.self_consumption)} %, self-sufficiency "
            f"{_percent(whole.self_sufficiency)} %",
            fontsize=10,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
