"""pvsimd report --from --to: each house's days and months, checked against hand-computed
CSV files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pvsimd import balance, cli, report

HEADER = "timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"


def day_file(meter: str, day: str, rows: list[tuple[float, float]]) -> str:
    """Rows an hour apart from noon on: each is held for an hour (the median spacing)."""
    lines = [
        f"{day}T{12 + k:02d}:00:00+00:00,{meter},{m},{p},{m + p},{k}\n"
        for k, (m, p) in enumerate(rows)
    ]
    return HEADER + "".join(lines)


# Every row is held for 3600 s, so W becomes Wh:
#   house a, 2026-01-31: (1000, 600), (200, 800)   consumed 1.2  produced 1.4  used at once 0.8
#                                                  self-consumption 0.8/1.4 = 57.1 %,
#                                                  self-sufficiency 0.8/1.2 = 66.7 %
#   house a, 2026-02-01: (3000, 0), (3000, 1200)   6.0  1.2  1.2   100.0 %  20.0 %
#   house a, 2026-02-02: (0, 0), (0, 0)            0    0    0     -        -
#   house a, January: 1 day  1.2 1.4 0.8  57.1 66.7; February: 2 days  6.0 1.2 1.2  100.0 20.0
#   house a, total: 7.2 2.6 2.0  2.0/2.6 = 76.9 %  2.0/7.2 = 27.8 %
#   house b, 2026-02-01 only: (500, 1000), (500, 1000)   1.0 2.0 1.0  50.0 %  100.0 %
FILES = {
    ("a", "2026-01-31"): [(1000.0, 600.0), (200.0, 800.0)],
    ("a", "2026-02-01"): [(3000.0, 0.0), (3000.0, 1200.0)],
    ("a", "2026-02-02"): [(0.0, 0.0), (0.0, 0.0)],
    ("b", "2026-02-01"): [(500.0, 1000.0), (500.0, 1000.0)],
}


@pytest.fixture
def out(tmp_path) -> Path:
    directory = tmp_path / "csv"
    for (meter, day), rows in FILES.items():
        (directory / meter).mkdir(parents=True, exist_ok=True)
        (directory / meter / f"{day}.csv").write_text(day_file(meter, day, rows))
    return directory


def run(out: Path, capsys, *args: str) -> tuple[int, list[list[str]], str]:
    code = report.main(["--directory", str(out), *args])
    captured = capsys.readouterr()
    return code, [line.split() for line in captured.out.splitlines()], captured.err


def test_a_period_by_day_and_by_month_with_totals(out, capsys):
    code, lines, err = run(out, capsys, "--from", "2026-01-31", "--to", "2026-02-02")
    assert code == 0
    assert lines[0] == ["2026-01-31", "to", "2026-02-02", "(UTC),", str(out)]
    columns = list(balance.COLUMNS)
    assert lines[1:] == [
        [],
        ["a,", "by", "day"],
        ["day", *columns],
        ["2026-01-31", "1.200", "1.400", "0.800", "57.1", "66.7"],
        ["2026-02-01", "6.000", "1.200", "1.200", "100.0", "20.0"],
        ["2026-02-02", "0.000", "0.000", "0.000", "-", "-"],
        ["total", "7.200", "2.600", "2.000", "76.9", "27.8"],
        [],
        ["a,", "by", "month"],
        ["month", "days", *columns],
        ["2026-01", "1", "1.200", "1.400", "0.800", "57.1", "66.7"],
        ["2026-02", "2", "6.000", "1.200", "1.200", "100.0", "20.0"],
        ["total", "3", "7.200", "2.600", "2.000", "76.9", "27.8"],
        [],
        ["b,", "by", "day"],
        ["day", *columns],
        ["2026-02-01", "1.000", "2.000", "1.000", "50.0", "100.0"],
        ["total", "1.000", "2.000", "1.000", "50.0", "100.0"],
        [],
        ["b,", "by", "month"],
        ["month", "days", *columns],
        ["2026-02", "1", "1.000", "2.000", "1.000", "50.0", "100.0"],
        ["total", "1", "1.000", "2.000", "1.000", "50.0", "100.0"],
    ]
    assert err == "pvsimd report: b: no file for 2 of 3 days (the first: 2026-01-31)\n"


def test_the_shares_of_a_month_are_those_of_its_energies_not_the_mean_of_its_days():
    days = [balance.Balance(1.0, 10.0, 1.0, 1), balance.Balance(9.0, 0.0, 0.0, 1)]
    whole = balance.total(days)
    assert whole.self_consumption == pytest.approx(0.1)  # the days' mean would be 0.1 too …
    assert whole.self_sufficiency == pytest.approx(0.1)  # … but this one would be 0.5
    assert days[1].self_consumption is None
    assert balance.Balance().self_sufficiency is None


def test_the_meter_option_picks_houses_and_a_range_without_files_is_exit_66(out, capsys):
    code, lines, err = run(
        out, capsys, "--from", "2026-02-01", "--to", "2026-02-01", "--meter", "b"
    )
    assert code == 0 and err == ""
    assert [line[0] for line in lines if line[:1] == ["total"]] == ["total", "total"]
    assert ["b,", "by", "day"] in lines and ["a,", "by", "day"] not in lines
    code, _, err = run(out, capsys, "--from", "2026-03-01", "--to", "2026-03-31")
    assert code == 66
    assert f"no CSV files from 2026-03-01 to 2026-03-31 in {out}" in err
    code, _, err = run(out, capsys, "--from", "2026-01-31", "--to", "2026-01-31", "--meter", "b")
    assert code == 66
    assert "no file for b from 2026-01-31 to 2026-01-31" in err


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2026-01-01"],
        ["--to", "2026-01-01"],
        ["--from", "2026-01-02", "--to", "2026-01-01"],
        ["--date", "2026-01-01", "--from", "2026-01-01", "--to", "2026-01-02"],
        ["--from", "2026-02-30", "--to", "2026-03-01"],
    ],
)
def test_a_bad_period_is_a_usage_error(out, capsys, args):
    with pytest.raises(SystemExit) as exc:
        report.main(["--directory", str(out), *args])
    assert exc.value.code == 2
    assert "usage: pvsimd report" in capsys.readouterr().err


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # IHDR: width, height


def test_plot_draws_monthly_bars_for_a_period_and_the_curves_for_one_day(out, tmp_path, capsys):
    months = tmp_path / "months.png"
    args = ["--from", "2026-01-31", "--to", "2026-02-02", "--plot", str(months)]
    code, lines, _ = run(out, capsys, *args)
    assert code == 0
    assert lines[-1] == ["plot", "written", "to", str(months)]
    assert png_size(months) == (1100, 680)  # 11 × 3.4 inches per house, two houses, 100 dpi
    day = tmp_path / "day.png"
    code, _, _ = run(out, capsys, "--from", "2026-02-01", "--to", "2026-02-01", "--plot", str(day))
    assert code == 0
    assert png_size(day) == (1100, 640)  # the day's curves: 11 × 3.2 inches per house


def test_through_the_pvsimd_command_with_a_config_whose_weather_file_it_need_not_read(
    out, tmp_path, capsys
):
    config = tmp_path / "pvsimd.ini"
    config.write_text(
        "[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = Europe/Berlin\n"
        "[pv]\nweather = /nonexistent/tmy.csv\n"
        "[security]\nsender_map = /nonexistent/senders\n"  # nor a sender map it cannot read
        f"[output]\ndirectory = {out}\n"
    )
    args = ["report", "--config", str(config), "--from", "2026-01-31", "--to", "2026-02-02"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"2026-01-31 to 2026-02-02 (Europe/Berlin), {out}"
    lines = [line.split() for line in captured.out.splitlines()]
    assert ["total", "7.200", "2.600", "2.000", "76.9", "27.8"] in lines
