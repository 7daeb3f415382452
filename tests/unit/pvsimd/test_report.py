"""pvsimd report: a day's energy per house from the CSV day files, checked by hand."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pvsimd import cli, csv_format, report

HEADER = "timestamp,meter_id,meter_w,pv_w,sum_w,seq\n"

# One minute apart, except a 3-minute hole at 12:02-12:05 (seq 3 and 4 never arrived).
# Each row's power is held until the next row; the last one for the median spacing (60 s):
#   held       60    60   180    60    60  s
#   meter    1000  1000   500  3000   200  W  -> 402 000 Ws = 0.111667 kWh
#   pv          0  2000  1500  1000   400  W  -> 474 000 Ws = 0.131667 kWh
#   min         0  1000   500  1000   200  W  -> 222 000 Ws; share 222/474 = 46.8 %
SMALL_DAY = HEADER + (
    "2026-06-21T12:00:00+00:00,h,1000.0,0.0,1000.0,0\n"
    "2026-06-21T12:01:00+00:00,h,1000.0,2000.0,3000.0,1\n"
    "2026-06-21T12:02:00+00:00,h,500.0,1500.0,2000.0,2\n"
    "2026-06-21T12:05:00+00:00,h,3000.0,1000.0,4000.0,5\n"
    "2026-06-21T12:06:00+00:00,h,200.0,400.0,600.0,6\n"
)


@pytest.fixture
def site(tmp_path):
    """A pvsimd config whose output directory holds house h's small day."""
    out = tmp_path / "csv"
    (out / "h").mkdir(parents=True)
    (out / "h" / "2026-06-21.csv").write_text(SMALL_DAY)
    config = tmp_path / "pvsimd.ini"
    config.write_text(
        f"[site]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = UTC\n[output]\ndirectory = {out}\n"
    )
    return config, out


def _summary(text: str, **kw) -> report.Summary:
    path = Path(kw.pop("path"))
    path.write_text(text)
    rows, bad = report.read_rows(path)
    assert bad == 0
    return report.summarise("h", rows, **kw)


def test_energies_self_use_peaks_and_gaps_of_a_hand_computed_day(tmp_path):
    s = _summary(SMALL_DAY, path=tmp_path / "d.csv")
    assert s.rows == 5
    assert s.interval_s == 60
    assert s.consumed_kwh == pytest.approx(402_000 / 3.6e6)
    assert s.produced_kwh == pytest.approx(474_000 / 3.6e6)
    assert s.self_consumed_kwh == pytest.approx(222_000 / 3.6e6)
    assert s.self_use_share == pytest.approx(222 / 474)
    assert (s.peak_meter_w, s.peak_pv_w, s.peak_sum_w) == (3000.0, 2000.0, 4000.0)
    assert s.missing_seq == 2  # seq 3 and 4
    assert s.missing_time == 2  # 12:03 and 12:04
    assert s.first == datetime(2026, 6, 21, 12, tzinfo=UTC)
    assert s.last == datetime(2026, 6, 21, 12, 6, tzinfo=UTC)


def test_order_and_repeats_do_not_change_the_figures(tmp_path):
    lines = SMALL_DAY.splitlines(keepends=True)
    shuffled = lines[0] + "".join(reversed(lines[1:])) + lines[2]  # reversed, one repeat
    s = _summary(shuffled, path=tmp_path / "d.csv")
    assert s.rows == 5
    assert s.consumed_kwh == pytest.approx(402_000 / 3.6e6)
    assert s.missing_seq == 2 and s.missing_time == 2


def test_the_last_row_is_held_for_the_interval_but_not_past_midnight(tmp_path):
    text = HEADER + (
        "2026-06-21T23:58:30+00:00,h,100.0,0.0,100.0,0\n"
        "2026-06-21T23:59:30+00:00,h,200.0,0.0,200.0,1\n"
    )
    end = datetime(2026, 6, 22, tzinfo=UTC)
    s = _summary(text, path=tmp_path / "d.csv", day_end=end)
    assert s.consumed_kwh == pytest.approx((100 * 60 + 200 * 30) / 3.6e6)


def test_rows_without_seq_and_without_pv_energy(tmp_path):
    text = HEADER + (
        "2026-06-21T00:00:00+00:00,h,100.0,0.0,100.0,\n"
        "2026-06-21T00:00:10+00:00,h,100.0,0.0,100.0,\n"
    )
    s = _summary(text, path=tmp_path / "d.csv")
    assert s.missing_seq == 0
    assert s.produced_kwh == 0
    assert s.self_use_share is None
    assert s.consumed_kwh == pytest.approx(100 * 20 / 3.6e6)


def test_unreadable_rows_are_counted_and_skipped(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(SMALL_DAY + "2026-06-21T12:07:00+00:00,h,oops\n12:08,h,1,1,2,8\n")
    rows, bad = report.read_rows(path)
    assert (len(rows), bad) == (5, 2)


def _rows(start_minute: int, seqs: range) -> str:
    """CSV rows a minute apart from 12:<start_minute>, one per seq."""
    return "".join(
        f"2026-06-21T{12 + (start_minute + i) // 60:02d}:{(start_minute + i) % 60:02d}:00+00:00,"
        f"h,100.0,0.0,100.0,{seq}\n"
        for i, seq in enumerate(seqs)
    )


def test_a_meter_that_was_off_misses_time_not_readings(tmp_path):
    # 12:00-12:04, off for 10 minutes, then 12:15-12:19: the seq just continues
    s = _summary(HEADER + _rows(0, range(0, 5)) + _rows(15, range(5, 10)), path=tmp_path / "d.csv")
    assert (s.rows, s.missing_seq, s.missing_time) == (10, 0, 10)


def test_lost_readings_and_an_off_meter_in_one_gap(tmp_path):
    # seq 5-7 were sampled at 12:05-12:07 and lost, then the meter was off until 12:15
    s = _summary(HEADER + _rows(0, range(0, 5)) + _rows(15, range(8, 13)), path=tmp_path / "d.csv")
    assert (s.missing_seq, s.missing_time) == (3, 10)


def test_a_rerun_of_an_interrupted_replay_is_no_gap(tmp_path):
    """The demo replays a day of 8 640 readings; stopped after 20 of them and run again,
    the replay takes 8 640 new seqs: the first 20 are repeats (dropped), the rest are
    written with seqs 8 640 higher.  The day has every tick: nothing is missing."""
    first = range(100, 120)
    rerun = range(120 + 20, 120 + 60)  # seq 120-139 went to the dropped repeats
    s = _summary(HEADER + _rows(0, first) + _rows(20, rerun), path=tmp_path / "d.csv")
    assert (s.rows, s.missing_seq, s.missing_time) == (60, 0, 0)
    # the same with a demo's full day: seqs 0-8639, rerun 8640-17279 from the 1000th on
    day = HEADER + "".join(
        f"{(datetime(2026, 6, 21, tzinfo=UTC) + timedelta(seconds=10 * i)).isoformat()},"
        f"h,100.0,0.0,100.0,{i if i < 1000 else i + 8640}\n"
        for i in range(8640)
    )
    s = _summary(day, path=tmp_path / "day.csv")
    assert (s.rows, s.interval_s, s.missing_seq, s.missing_time) == (8640, 10, 0, 0)


def test_a_rerun_of_the_demo_later_the_same_day_is_no_gap(tmp_path):
    """Live until 12:09 (seq 0-9), stopped; the rerun replays yesterday (seqs 10-8649,
    all repeats) and goes live at 12:20 with seq 8650: the meter was off, nothing lost."""
    text = HEADER + _rows(0, range(0, 10)) + _rows(20, range(8650, 8660))
    s = _summary(text, path=tmp_path / "d.csv")
    assert (s.missing_seq, s.missing_time) == (0, 10)
    # a real loss after the rerun still counts: 8662-8664 sampled at 12:32-12:34, lost
    text += _rows(30, range(8660, 8662)) + _rows(35, range(8665, 8667))
    s = _summary(text, path=tmp_path / "d.csv")
    assert (s.missing_seq, s.missing_time) == (3, 10 + 3)


def test_a_replay_of_an_earlier_part_of_the_day_is_no_gap(tmp_path):
    # live from 12:10 with seq 0-9; then 12:00-12:09 replayed with seq 10-19
    s = _summary(
        HEADER + _rows(10, range(0, 10)) + _rows(0, range(10, 20)), path=tmp_path / "d.csv"
    )
    assert (s.rows, s.missing_seq, s.missing_time) == (20, 0, 0)


def test_one_row_has_no_interval_and_no_energy():
    row = csv_format.Row(datetime(2026, 6, 21, tzinfo=UTC), "h", 500.0, 0.0, 500.0, 3)
    s = report.summarise("h", [row])
    assert (s.rows, s.interval_s, s.consumed_kwh, s.missing_time) == (1, None, 0.0, 0)
    assert report.summarise("h", []).rows == 0


# --- the command ---------------------------------------------------------------------


def test_report_prints_a_table_through_the_pvsimd_command(site, capsys):
    config, _out = site
    assert cli.main(["report", "--config", str(config), "--date", "2026-06-21"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2026-06-21 (UTC)")
    assert lines[1].split() == list(report.COLUMNS)
    assert lines[2].split() == [
        "h", "5", "12:00:00", "12:06:00", "60", "0.112", "0.132", "46.8",
        "3000.0", "2000.0", "4000.0", "2", "2",
    ]  # fmt: skip


def test_report_shows_local_times_and_picks_the_meter(site, capsys):
    config, out = site
    config.write_text(config.read_text().replace("UTC", "Europe/Berlin"))
    (out / "other").mkdir()
    (out / "other" / "2026-06-21.csv").write_text(SMALL_DAY.replace(",h,", ",other,"))
    assert report.main(["--config", str(config), "--date", "2026-06-21", "--meter", "h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[2].split()[:4] == ["h", "5", "14:00:00", "14:06:00"]
    assert report.main(["--config", str(config), "--date", "2026-06-21"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == [
        "h",
        "other",
    ]


def test_no_file_for_the_day_is_exit_66(site, capsys):
    config, _out = site
    assert report.main(["--config", str(config), "--date", "2026-06-22"]) == 66
    assert "no CSV files for 2026-06-22" in capsys.readouterr().err
    assert report.main(["--config", str(config), "--date", "2026-06-21", "--meter", "x"]) == 66


def test_bad_config_is_exit_78(tmp_path, capsys):
    bad = tmp_path / "bad.ini"
    bad.write_text("[site]\nlatitude = 91\nlongitude = 0\n")
    assert report.main(["--config", str(bad), "--date", "2026-06-21"]) == 78
    assert "latitude" in capsys.readouterr().err


def test_plot_writes_a_png(site, tmp_path, capsys):
    config, _out = site
    png = tmp_path / "day.png"
    args = ["--config", str(config), "--date", "2026-06-21", "--plot", str(png)]
    assert report.main(args) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000
    assert f"plot written to {png}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_what_to_install(site, tmp_path, monkeypatch, capsys):
    config, _out = site
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" fails
    png = tmp_path / "day.png"
    args = ["--config", str(config), "--date", "2026-06-21", "--plot", str(png)]
    assert report.main(args) == 69
    err = capsys.readouterr().err
    assert err.strip() == "pvsimd report: install python3-matplotlib to draw plots"
    assert not png.exists()


def test_directory_and_timezone_instead_of_the_config(site, capsys):
    _config, out = site
    args = ["--directory", str(out), "--timezone", "Europe/Berlin", "--date", "2026-06-21"]
    assert report.main([*args, "--config", "/nonexistent.ini"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2026-06-21 (Europe/Berlin), {out}"
    assert lines[2].split()[2] == "14:00:00"
    assert report.main(["--directory", str(out), "--date", "2026-06-21"]) == 0  # UTC
    assert capsys.readouterr().out.splitlines()[2].split()[2] == "12:00:00"
    with pytest.raises(SystemExit) as exc:
        report.main(["--timezone", "UTC", "--date", "2026-06-21"])
    assert exc.value.code == 2
