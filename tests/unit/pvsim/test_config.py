"""Configuration: the shipped files, defaults, drop-ins and one-line errors."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterd.settings import SCHEMA as METERD
from pvsim import config as c
from pvsimd.settings import SCHEMA as PVSIMD

ROOT = Path(__file__).resolve().parents[3]
METERD_INI = ROOT / "etc" / "meterd" / "meterd.ini"
PVSIMD_INI = ROOT / "etc" / "pvsimd" / "pvsimd.ini"

METERD_MIN = "[meter]\nid = house-a\n"
PVSIMD_MIN = "[site]\nlatitude = 52.5\nlongitude = 13.4\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, schema: c.Schema) -> c.ConfigError:
    with pytest.raises(c.ConfigError) as info:
        c.load(path, schema)
    return info.value


def assert_one_line(err: c.ConfigError, *parts: str) -> None:
    text = str(err)
    assert "\n" not in text and "\r" not in text
    for part in parts:
        assert part in text, f"{part!r} not in {text!r}"


# --- the shipped configs and defaults ---------------------------------------------------


def test_shipped_meterd_config_loads():
    config = c.load(METERD_INI, METERD)
    assert config.meter.id == "house-a"
    assert config.meter.interval == 10.0
    assert config.meter.seed is None
    assert config.broker.url.startswith("amqp://")
    assert config.spool.fsync is True


def test_shipped_pvsimd_config_loads():
    config = c.load(PVSIMD_INI, PVSIMD)
    assert config.site.latitude == 52.52
    assert config.site.timezone == ZoneInfo("Europe/Berlin")
    assert config.output.fsync == "batch"
    assert config.output.max_open_files == 16384


def test_meterd_defaults_fill_every_key_not_set(tmp_path):
    config = c.load(write(tmp_path / "m.ini", METERD_MIN), METERD)
    assert asdict(config.meter) == {
        "id": "house-a",
        "interval": 10.0,
        "profile": "household",
        "annual_kwh": 3500.0,
        "timezone": ZoneInfo("Europe/Berlin"),
        "max_step": 300.0,
        "seed": None,
        "state_directory": Path("/var/lib/meterd"),
    }
    assert config.broker.url == "amqp://guest:guest@localhost:5672/%2F"
    assert config.broker.exchange == "meter.readings"
    assert config.broker.heartbeat == 30
    assert config.broker.publish_window == 1000
    assert asdict(config.spool) == {
        "fsync": True,
        "max_bytes": 32 * 1024**2,
        "max_age": 7 * 86400.0,
    }
    assert asdict(config.logging) == {"level": "info", "file": None}
    assert config.source("meter", "id") == str(tmp_path / "m.ini")
    assert config.source("meter", "interval") == "default"


def test_pvsimd_defaults_fill_every_key_not_set(tmp_path):
    config = c.load(write(tmp_path / "p.ini", PVSIMD_MIN), PVSIMD)
    assert config.site.timezone == ZoneInfo("UTC")
    assert config.broker.queue == "pvsimd.readings"
    assert config.broker.prefetch == 1000
    assert config.broker.dead_letter_queue == "pvsimd.readings.invalid"
    assert config.broker.delivery_limit == 20
    assert asdict(config.output) == {
        "directory": Path("/var/lib/pvsimd"),
        "fsync": "batch",
        "flush_interval": 0.1,
        "max_open_files": 16384,
    }


def test_values_are_parsed_to_their_types(tmp_path):
    path = write(
        tmp_path / "m.ini",
        METERD_MIN + "interval = 0.02\nseed = 42\n[spool]\nfsync = off\n"
        "[logging]\nlevel = debug\nfile = /tmp/m.log\n",
    )
    config = c.load(path, METERD)
    assert config.meter.interval == 0.02
    assert config.meter.seed == 42
    assert config.spool.fsync is False
    assert asdict(config.logging) == {"level": "debug", "file": Path("/tmp/m.log")}


# --- drop-ins ----------------------------------------------------------------------------


def test_dropins_apply_in_sorted_order_after_the_main_file(tmp_path):
    main = write(tmp_path / "meterd.ini", METERD_MIN + "interval = 1\nmax_step = 100\n")
    write(tmp_path / "meterd.ini.d" / "20-late.ini", "[meter]\ninterval = 3\n")
    write(tmp_path / "meterd.ini.d" / "10-early.ini", "[meter]\ninterval = 2\nmax_step = 50\n")
    config = c.load(main, METERD)
    assert config.meter.interval == 3.0  # 20-late wins over 10-early and the main file
    assert config.meter.max_step == 50.0  # only 10-early set it: later wins key by key
    assert config.meter.id == "house-a"  # only the main file set it
    assert list(config.files) == [
        main,
        tmp_path / "meterd.ini.d" / "10-early.ini",
        tmp_path / "meterd.ini.d" / "20-late.ini",
    ]
    assert config.source("meter", "interval") == str(tmp_path / "meterd.ini.d" / "20-late.ini")


def test_dropins_ignore_files_not_ending_in_ini(tmp_path):
    main = write(tmp_path / "meterd.ini", METERD_MIN)
    write(tmp_path / "meterd.ini.d" / "50-x.ini.dpkg-old", "[meter]\ninterval = 7\n")
    write(tmp_path / "meterd.ini.d" / "README", "not an ini file at all")
    write(tmp_path / "meterd.ini.d" / "60-y.conf", "[bogus]\n")
    config = c.load(main, METERD)
    assert config.meter.interval == 10.0
    assert list(config.files) == [main]


def test_dropin_can_supply_a_required_key(tmp_path):
    main = write(tmp_path / "meterd.ini", "[meter]\ninterval = 5\n")
    write(tmp_path / "meterd.ini.d" / "id.ini", "[meter]\nid = house-b\n")
    assert c.load(main, METERD).meter.id == "house-b"


def test_bad_value_in_a_dropin_names_the_dropin(tmp_path):
    main = write(tmp_path / "pvsimd.ini", PVSIMD_MIN)
    dropin = write(tmp_path / "pvsimd.ini.d" / "10-site.ini", "[site]\nlatitude = 91\n")
    err = load_error(main, PVSIMD)
    assert err.file == str(dropin)
    assert_one_line(err, str(dropin), "[site] latitude", "between -90 and 90")


def test_unknown_key_in_a_dropin_names_the_dropin(tmp_path):
    main = write(tmp_path / "meterd.ini", METERD_MIN)
    dropin = write(tmp_path / "meterd.ini.d" / "x.ini", "[meter]\ncolour = blue\n")
    err = load_error(main, METERD)
    assert_one_line(err, str(dropin), "[meter] colour", "unknown key")


def test_bad_value_in_main_file_overridden_by_dropin_is_fine(tmp_path):
    main = write(tmp_path / "meterd.ini", METERD_MIN + "interval = soon\n")
    write(tmp_path / "meterd.ini.d" / "fix.ini", "[meter]\ninterval = 10\n")
    assert c.load(main, METERD).meter.interval == 10.0


# --- error paths: each a ConfigError whose str() is one line ---------------------------

# (schema, file text, parts the one-line message must contain)
BAD_VALUES = {
    "unknown section": (METERD, METERD_MIN + "[extra]\na = 1\n", ["[extra]", "unknown section"]),
    "unknown key": (METERD, METERD_MIN + "colour = blue\n", ["[meter] colour", "unknown key"]),
    "missing meter id": (METERD, "[meter]\ninterval = 10\n", ["[meter] id", "required"]),
    "missing latitude": (PVSIMD, "[site]\nlongitude = 1\n", ["[site] latitude", "required"]),
    "bad number": (METERD, METERD_MIN + "interval = ten\n", ["[meter] interval", "number"]),
    "out of range": (
        PVSIMD,
        "[site]\nlatitude = 91\nlongitude = 0\n",
        ["[site] latitude", "between -90 and 90", "91"],
    ),
    "below range": (
        PVSIMD,
        "[site]\nlatitude = 0\nlongitude = -180.5\n",
        ["[site] longitude", "between -180 and 180"],
    ),
    "nan": (PVSIMD, "[site]\nlatitude = nan\nlongitude = 0\n", ["[site] latitude", "finite"]),
    "infinity": (METERD, METERD_MIN + "max_step = inf\n", ["[meter] max_step", "finite"]),
    "zero interval": (
        METERD,
        METERD_MIN + "interval = 0\n",
        ["[meter] interval", "between 0.001 and 86400"],
    ),
    "bad integer": (
        METERD,
        METERD_MIN + "[broker]\nheartbeat = 1.5\n",
        ["[broker] heartbeat", "whole number"],
    ),
    "bad seed": (METERD, METERD_MIN + "seed = abc\n", ["[meter] seed", "whole number"]),
    "integer out of range": (
        PVSIMD,
        PVSIMD_MIN + "[output]\nmax_open_files = 0\n",
        ["[output] max_open_files", "between 1 and 1048576"],
    ),
    "bad boolean": (
        METERD,
        METERD_MIN + "[spool]\nfsync = maybe\n",
        ["[spool] fsync", "yes or no"],
    ),
    "bad size": (
        METERD,
        METERD_MIN + "[spool]\nmax_bytes = 32 MiB please\n",
        ["[spool] max_bytes", "size"],
    ),
    "bad duration": (
        METERD,
        METERD_MIN + "[spool]\nmax_age = a week\n",
        ["[spool] max_age", "duration"],
    ),
    "bad choice": (
        PVSIMD,
        PVSIMD_MIN + "[output]\nfsync = always\n",
        ["[output] fsync", "one of batch, file, off", "'always'"],
    ),
    "bad log level": (
        METERD,
        METERD_MIN + "[logging]\nlevel = loud\n",
        ["[logging] level", "one of debug, info, warning, error"],
    ),
    "meter id too long": (METERD, "[meter]\nid = " + "a" * 65 + "\n", ["[meter] id", "1-64"]),
    "meter id with slash": (METERD, "[meter]\nid = a/b\n", ["[meter] id", "'a/b'"]),
    "meter id with dot": (METERD, "[meter]\nid = house.a\n", ["[meter] id", "'house.a'"]),
    "meter id dot-dot": (METERD, "[meter]\nid = ..\n", ["[meter] id", "'..'"]),
    "meter id empty": (METERD, "[meter]\nid =\n", ["[meter] id", "''"]),
    "http url": (
        METERD,
        METERD_MIN + "[broker]\nurl = http://localhost:5672/\n",
        ["[broker] url", "amqp://", "got http://"],
    ),
    "url without host": (
        PVSIMD,
        PVSIMD_MIN + "[broker]\nurl = amqp:///%2F\n",
        ["[broker] url", "must name a host"],
    ),
    "url with bad port": (
        METERD,
        METERD_MIN + "[broker]\nurl = amqp://localhost:port/\n",
        ["[broker] url", "not a valid URL"],
    ),
    "bad queue name": (
        PVSIMD,
        PVSIMD_MIN + "[broker]\nqueue = my queue\n",
        ["[broker] queue", "'my queue'"],
    ),
    "bad timezone": (
        PVSIMD,
        PVSIMD_MIN + "timezone = Mars/Olympus_Mons\n",
        ["[site] timezone", "IANA time zone", "'Mars/Olympus_Mons'"],
    ),
    "timezone is a directory of zones": (
        PVSIMD,
        PVSIMD_MIN + "timezone = Europe\n",
        ["[site] timezone", "IANA time zone", "'Europe'"],
    ),
    "timezone is a path": (
        PVSIMD,
        PVSIMD_MIN + "timezone = ../../etc/passwd\n",
        ["[site] timezone", "IANA time zone"],
    ),
    "timezone is not a zone file": (
        PVSIMD,
        PVSIMD_MIN + "timezone = zone.tab\n",
        ["[site] timezone", "IANA time zone"],
    ),
    "duplicate key": (
        METERD,
        "[meter]\nid = house-a\nid = house-b\n",
        ["[meter] id", "twice", "line 3"],
    ),
    "duplicate key differing in case": (
        METERD,
        "[meter]\nid = house-a\nID = house-b\n",
        ["[meter] id", "twice"],
    ),
    "duplicate section": (
        METERD,
        METERD_MIN + "[spool]\nfsync = yes\n[meter]\ninterval = 5\n",
        ["[meter]", "section appears twice", "line 5"],
    ),
    "key outside section": (
        METERD,
        "id = house-a\n[meter]\n",
        ["line 1", "outside of any [section]"],
    ),
    "line that is not key = value": (
        METERD,
        METERD_MIN + "just some words\n",
        ["line 3", "not a 'key = value' line"],
    ),
    "DEFAULT section": (
        METERD,
        METERD_MIN + "[DEFAULT]\nlevel = debug\n",
        ["[DEFAULT]", "unknown section"],
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES, ids=list(BAD_VALUES))
def test_bad_config_raises_one_line_error_naming_file_section_key(tmp_path, case):
    schema, text, parts = BAD_VALUES[case]
    path = write(tmp_path / "bad.ini", text)
    err = load_error(path, schema)
    assert err.file == str(path)
    assert_one_line(err, str(path), *parts)


def test_error_attributes_locate_the_problem(tmp_path):
    path = write(tmp_path / "p.ini", "[site]\nlatitude = 91\nlongitude = 0\n")
    err = load_error(path, PVSIMD)
    assert (err.file, err.section, err.key) == (str(path), "site", "latitude")
    assert str(err) == f"{path}: [site] latitude: must be between -90 and 90, got 91"


def test_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "nope.ini"
    err = load_error(path, METERD)
    assert_one_line(err, str(path), "not found")


def test_directory_instead_of_file_is_a_config_error(tmp_path):
    path = tmp_path / "dir.ini"
    path.mkdir()
    err = load_error(path, METERD)
    assert_one_line(err, str(path), "directory")


def test_unreadable_file_is_a_config_error(tmp_path, monkeypatch):
    path = write(tmp_path / "secret.ini", METERD_MIN)
    real_open = open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny)
    err = load_error(path, METERD)
    assert_one_line(err, str(path), "permission denied")


def test_invalid_utf8_is_a_config_error(tmp_path):
    path = write(tmp_path / "latin1.ini", b"[meter]\nid = h\xe4user\n")
    err = load_error(path, METERD)
    assert_one_line(err, str(path), "UTF-8")


def test_invalid_utf8_in_a_dropin_names_the_dropin(tmp_path):
    main = write(tmp_path / "m.ini", METERD_MIN)
    dropin = write(tmp_path / "m.ini.d" / "bad.ini", b"[meter]\nid = \xff\n")
    err = load_error(main, METERD)
    assert_one_line(err, str(dropin), "UTF-8")


def test_multiline_value_still_gives_a_one_line_error(tmp_path):
    path = write(tmp_path / "m.ini", "[meter]\nid = house-a\n  continued\n")
    err = load_error(path, METERD)
    assert_one_line(err, "[meter] id")


# --- value parsers ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "yes", "YES", "true", "On"])
def test_boolean_true_spellings(text):
    assert c.boolean(text) is True


@pytest.mark.parametrize("text", ["0", "no", "False", "off"])
def test_boolean_false_spellings(text):
    assert c.boolean(text) is False


def test_amqps_url_is_accepted():
    assert c.url("amqp", "amqps")("amqps://u:p@broker.example:5671/v") == (
        "amqps://u:p@broker.example:5671/v"
    )


def test_optional_empty_is_none():
    assert c.optional(c.integer())("") is None
    assert c.optional(c.integer())("7") == 7


# --- the command line: --check-config ----------------------------------------------------


def cli_main(daemon: str):
    if daemon == "meterd":
        from meterd.cli import main
    else:
        from pvsimd.cli import main
    return main


@pytest.mark.parametrize(
    ("daemon", "shipped"), [("meterd", METERD_INI), ("pvsimd", PVSIMD_INI)], ids=str
)
def test_check_config_of_shipped_file_exits_0(capsys, daemon, shipped):
    assert cli_main(daemon)(["--check-config", "--config", str(shipped)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "configuration OK" in out


@pytest.mark.parametrize(
    ("daemon", "text", "parts"),
    [
        ("meterd", "[meter]\nid = a/b\n", ["[meter] id"]),
        ("meterd", "[meter]\n", ["[meter] id", "required"]),
        ("meterd", b"\xff\xfe", ["UTF-8"]),
        ("pvsimd", "[site]\nlatitude = 91\nlongitude = 0\n", ["[site] latitude"]),
        ("pvsimd", PVSIMD_MIN + "timezone = Nowhere/Land\n", ["[site] timezone"]),
        ("pvsimd", PVSIMD_MIN + "[broker]\nurl = http://x/\n", ["[broker] url"]),
        (
            "pvsimd",
            PVSIMD_MIN + "[broker]\nshards = 2\nshard = 2\n",
            ["[broker] shard", "less than shards = 2"],
        ),
        (
            "pvsimd",
            PVSIMD_MIN + "[broker]\nurl = amqp://localhost/ amqp://localhost/\n",
            ["[broker] url", "URL 2 names the same node as URL 1"],
        ),
    ],
)
def test_check_config_of_bad_file_exits_78_with_one_line(tmp_path, capsys, daemon, text, parts):
    path = write(tmp_path / f"{daemon}.ini", text)
    assert cli_main(daemon)(["--check-config", "--config", str(path)]) == 78
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n")
    assert err.startswith(f"{daemon}: {path}")
    for part in parts:
        assert part in err


@pytest.mark.parametrize("daemon", ["meterd", "pvsimd"])
def test_check_config_of_missing_file_exits_78(tmp_path, capsys, daemon):
    path = tmp_path / "missing.ini"
    assert cli_main(daemon)(["--check-config", "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(path) in err and "not found" in err


def test_check_config_names_the_bad_dropin(tmp_path, capsys):
    main = write(tmp_path / "meterd.ini", METERD_MIN)
    dropin = write(tmp_path / "meterd.ini.d" / "90-local.ini", "[spool]\nfsync = sometimes\n")
    assert cli_main("meterd")(["--check-config", "--config", str(main)]) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{dropin}: [spool] fsync" in err


# --- several URLs: the nodes of one cluster ------------------------------------------------

URLS = c.urls("amqp", "amqps")


def test_several_urls_separated_by_spaces_are_the_nodes_of_one_cluster():
    text = "amqps://h@rabbit-1:5671/pvsim   amqps://h@rabbit-2:5671/pvsim\n amqps://h@rabbit-3/pvsim"
    assert URLS(text) == (
        "amqps://h@rabbit-1:5671/pvsim amqps://h@rabbit-2:5671/pvsim amqps://h@rabbit-3/pvsim"
    )
    assert URLS("amqp://guest:guest@localhost:5672/%2F") == "amqp://guest:guest@localhost:5672/%2F"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("amqps://h@a/v http://h@b/v", "URL 2 of 2 must start with amqp:// or amqps://"),
        ("amqps://h@a/v amqp://h@b/v", "differs from URL 1 in its scheme"),
        ("amqps://h@a/v amqps://other@b/v", "differs from URL 1 in its user"),
        ("amqps://h:pw@a/v amqps://h:other@b/v", "differs from URL 1 in its password"),
        ("amqps://h@a/v amqps://h@b/w", "differs from URL 1 in its virtual host"),
        ("amqps://h@a:5671/v amqps://h@A:5671/v", "URL 2 names the same node as URL 1"),
        ("amqps://h@a/v amqps://h@b:99999/v", "URL 2 of 2 is not a valid URL"),
    ],
)
def test_the_urls_of_a_cluster_must_agree(text, problem):
    with pytest.raises(ValueError, match=problem):
        URLS(text)


def test_an_error_in_one_of_several_urls_does_not_quote_a_password():
    with pytest.raises(ValueError) as err:
        URLS("amqp://h:s3cr3t-pw@a/v amqp://h:s3cr3t-pw@b/w")
    assert "s3cr3t" not in str(err.value)
