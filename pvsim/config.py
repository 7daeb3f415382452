"""INI configuration: a main file plus sorted drop-ins, validated against a schema on load.

Layering (later wins, key by key): the main file, then ``<main file>.d/*.ini`` in sorted
order.  Every key of every file is checked: unknown sections and keys are errors, and
each error names the file that set the offending value.  A bad configuration raises
:class:`ConfigError`, whose ``str()`` is the one line the daemons print before exiting
with :data:`EX_CONFIG`.

The schema is typed: each section is a frozen dataclass (:class:`Section`) whose fields
are declared with :func:`key` — parser, default and meaning in one place — and a
daemon's :class:`Config` subclass has one field per section, so the daemons read
``config.site.latitude``, never a string key.
"""

from __future__ import annotations

import configparser
import math
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EX_CONFIG = 78  # sysexits.h: configuration error

Parser = Callable[[str], Any]
C = TypeVar("C", bound="Config")


class ConfigError(Exception):
    """A configuration problem, located as precisely as possible."""

    def __init__(self, file: str | Path, section: str | None, key: str | None, problem: str):
        super().__init__(problem)
        self.file = str(file)
        self.section = section
        self.key = key
        self.problem = problem

    def __str__(self) -> str:
        where = self.file
        if self.section is not None:
            where += f": [{self.section}]"
            if self.key is not None:
                where += f" {self.key}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True)
class Option:
    """One key: how to parse it, its default as written in an INI file (None: required),
    and what it means — the text of the README's configuration tables, which a test
    compares with it."""

    parse: Parser
    default: str | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


def key(parse: Parser, default: str | None = None, doc: str = "") -> Any:
    """A field of a :class:`Section`: the key's :class:`Option`, and its parsed default
    as the field's default (so code and tests can build a section with a few keys)."""
    metadata = {"option": Option(parse, default, doc)}
    if default is None:
        return field(metadata=metadata)
    value = parse(default)
    if isinstance(value, list | dict | set):
        return field(default_factory=lambda: parse(default), metadata=metadata)
    return field(default=value, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Section:
    """A config section: a frozen dataclass whose fields are :func:`key`\\ s."""

    @classmethod
    def options(cls) -> dict[str, Option]:
        return {f.name: f.metadata["option"] for f in fields(cls) if "option" in f.metadata}


@dataclass(frozen=True, kw_only=True)
class Config:
    """A daemon's validated configuration: subclasses declare one field per section (a
    :class:`Section` subclass, named like the INI section); ``files`` and ``sources`` say
    where the values came from."""

    files: tuple[Path, ...] = ()
    sources: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def sections(cls) -> dict[str, type[Section]]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls) if f.name not in _CONFIG_FIELDS}

    def source(self, section: str, key: str) -> str:
        """The file that set section.key (``default`` when nothing did)."""
        return self.sources.get((section, key), "default")

    def get(self, section: str, key: str) -> Any:
        """The value of section.key (for code that walks the schema)."""
        return getattr(getattr(self, section), key)


_CONFIG_FIELDS = {"files", "sources"}
Schema = type[Config]


def dropin_dir(main: Path) -> Path:
    """The drop-in directory of a main config file: ``<file>.d``."""
    return main.with_name(main.name + ".d")


def config_files(main: Path) -> list[Path]:
    """The main file followed by its drop-ins, in the order they are applied."""
    d = dropin_dir(main)
    dropins = sorted(p for p in d.glob("*.ini") if p.is_file()) if d.is_dir() else []
    return [main, *dropins]


def _read_one(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        interpolation=None,
        default_section="\x00no-default-section",  # so [DEFAULT] is an ordinary, unknown section
        strict=True,
        empty_lines_in_values=False,
    )
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh, source=str(path))
    except FileNotFoundError:
        raise ConfigError(path, None, None, "file not found") from None
    except PermissionError:
        raise ConfigError(path, None, None, "permission denied") from None
    except IsADirectoryError:
        raise ConfigError(path, None, None, "is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not valid UTF-8 ({exc.reason})") from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(
            path, exc.section, None, f"section appears twice (line {exc.lineno})"
        ) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(
            path, exc.section, exc.option, f"key appears twice (line {exc.lineno})"
        ) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            path, None, None, f"line {exc.lineno}: key outside of any [section]"
        ) from None
    except configparser.ParsingError as exc:
        lineno = exc.errors[0][0] if exc.errors else "?"
        raise ConfigError(path, None, None, f"line {lineno}: not a 'key = value' line") from None
    except configparser.Error as exc:
        raise ConfigError(path, None, None, exc.message.splitlines()[0]) from None
    return parser


def read_values(path: str | Path) -> dict[tuple[str, str], str]:
    """The raw text of every (section, key) one file sets (for checks that look at each
    file, such as a secret in a file others may read); raises ConfigError like load()."""
    parser = _read_one(Path(path))
    return {(s, k): v for s in parser.sections() for k, v in parser.items(s)}


def load(main: str | Path, schema: type[C]) -> C:
    """Read ``main`` and its drop-ins, check them against ``schema``, return the values."""
    main = Path(main)
    files = config_files(main)
    sections = schema.sections()
    raw: dict[tuple[str, str], tuple[str, str]] = {}  # (section, key) -> (value, file)
    for path in files:
        parser = _read_one(path)
        for section in parser.sections():
            if section not in sections:
                known = ", ".join(f"[{s}]" for s in sections)
                raise ConfigError(path, section, None, f"unknown section (known: {known})")
            options = sections[section].options()
            for key, value in parser.items(section):
                if key not in options:
                    known = ", ".join(options)
                    raise ConfigError(path, section, key, f"unknown key (known: {known})")
                raw[(section, key)] = (value, str(path))

    values: dict[str, Section] = {}
    sources: dict[tuple[str, str], str] = {}
    for section, section_cls in sections.items():
        parsed: dict[str, Any] = {}
        for key, option in section_cls.options().items():
            if (section, key) in raw:
                text, source = raw[(section, key)]
                sources[(section, key)] = source
            elif option.required:
                raise ConfigError(main, section, key, "required key is missing")
            else:
                text, source = option.default, f"default of [{section}] {key}"
            try:
                parsed[key] = option.parse(text.strip())
            except ValueError as exc:
                raise ConfigError(source, section, key, str(exc)) from None
        values[section] = section_cls(**parsed)
    return schema(files=tuple(files), sources=sources, **values)


# --- value parsers: each takes the raw text and returns a value or raises ValueError ---


def string(text: str) -> str:
    return text


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise ValueError(f"must be a whole number, got {text!r}") from None
        _check_range(value, minimum, maximum)
        return value

    return parse


def number(
    minimum: float | None = None, maximum: float | None = None, *, above: float | None = None
) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {text!r}")
        if above is not None and not value > above:
            raise ValueError(f"must be greater than {above:g}, got {text}")
        _check_range(value, minimum, maximum)
        return value

    return parse


def _num(value: float) -> str:
    """A bound or value as written: whole numbers in full, others short (%g)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _check_range(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"must be between {_num(minimum)} and {_num(maximum)}, got {_num(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {_num(minimum)}, got {_num(value)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {_num(maximum)}, got {_num(value)}")


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def boolean(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"must be yes or no, got {text!r}")


def choice(*allowed: str) -> Parser:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


def pattern(regex: str, what: str) -> Parser:
    compiled = re.compile(regex)

    def parse(text: str) -> str:
        if not compiled.fullmatch(text):
            raise ValueError(f"must be {what}, got {text!r}")
        return text

    return parse


def url(*schemes: str) -> Parser:
    def parse(text: str) -> str:
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            # not the exception's text: it may quote part of a password
            raise ValueError(
                "is not a valid URL (a bad port or host; '/', '#', '?' or '@' in the user "
                "or password must be %-encoded)"
            ) from None
        if parts.scheme not in schemes:
            raise ValueError(
                f"must start with {' or '.join(s + '://' for s in schemes)}, "
                f"got {parts.scheme + '://' if parts.scheme else 'no scheme'}"
            )
        if not parts.hostname:
            raise ValueError("must name a host")
        return text

    return parse


def urls(*schemes: str) -> Parser:
    """One URL, or several separated by spaces: the nodes of one cluster, so the same
    scheme, user, password and virtual host in each, each node once.  Returns the URLs
    joined by single spaces (one URL: exactly as written)."""
    one = url(*schemes)

    def parse(text: str) -> str:
        items = text.split()
        if len(items) <= 1:
            return one(text)
        seen: dict[tuple[str, int | None], int] = {}
        first = None
        for number, item in enumerate(items, 1):
            try:
                one(item)
            except ValueError as exc:
                raise ValueError(f"URL {number} of {len(items)} {exc}") from None
            parts = urlsplit(item)
            node = (parts.hostname.lower(), parts.port)
            if node in seen:
                raise ValueError(f"URL {number} names the same node as URL {seen[node]}")
            seen[node] = number
            shape = (parts.scheme, parts.username, parts.password, parts.path)
            if first is None:
                first = shape
            elif shape != first:
                what = [
                    name
                    for name, a, b in zip(
                        ("scheme", "user", "password", "virtual host"), shape, first, strict=True
                    )
                    if a != b
                ]
                raise ValueError(
                    f"URL {number} differs from URL 1 in its {' and '.join(what)}: the URLs "
                    "are the nodes of one cluster, reached with the same scheme, credentials "
                    "and virtual host"
                )
        return " ".join(items)

    return parse


def timezone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: e.g. "Europe", a directory
        raise ValueError(
            f"must be an IANA time zone name such as Europe/Berlin, got {text!r}"
        ) from None


def path(text: str) -> Path:
    if not text:
        raise ValueError("must not be empty")
    return Path(text)


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def size(minimum: int = 0) -> Parser:
    """Bytes, with an optional K, M or G suffix (powers of 1024): ``64M``."""

    def parse(text: str) -> int:
        m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)[bB]?", text)
        if m is None:
            raise ValueError(f"must be a size such as 512K, 64M or 1G, got {text!r}")
        value = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        _check_range(value, minimum, None)
        return value

    return parse


def duration(minimum: float = 0) -> Parser:
    """Seconds, with an optional s, m, h or d suffix: ``90``, ``15m``, ``7d``."""

    def parse(text: str) -> float:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
        if m is None:
            raise ValueError(f"must be a duration such as 90, 15m, 12h or 7d, got {text!r}")
        value = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        _check_range(value, minimum, None)
        return value

    return parse


def optional(parse: Parser) -> Parser:
    """Empty text means None; anything else goes through ``parse``."""

    def wrapped(text: str) -> Any:
        return None if text == "" else parse(text)

    return wrapped


def describe(schema: Schema) -> Iterable[tuple[str, str, Option]]:
    """All (section, key, option) of a schema, in schema order."""
    for section, section_cls in schema.sections().items():
        for key, option in section_cls.options().items():
            yield section, key, option
