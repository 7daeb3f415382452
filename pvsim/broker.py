"""Broker settings shared by both daemons: the ``[broker]`` config section and pika parameters.

Security (docs/security.md): ``amqps://`` verifies the broker's certificate and host name
(``ca_file``; optionally a client certificate, ``cert_file``/``key_file``); plaintext
``amqp://`` is only for loopback unless ``allow_plaintext``; the password comes from
``password_file``, else the systemd credential ``broker-password``, else the URL.  A file
holding a secret (a config file whose URL has a password, the password file, the private
key) must not be readable by others: mode 0640 at most.  :func:`check` enforces all of
that when the configuration is loaded.

A cluster: ``url`` may list several nodes of one RabbitMQ cluster, separated by spaces
(the same scheme, credentials and virtual host in each; every rule above holds for each
URL).  Which node a daemon uses, and in what order it tries them, is
:mod:`pvsim.nodes`' business.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika

from pvsim import config as c
from pvsim import topology

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"

_NAME = c.pattern(r"[A-Za-z0-9_.:-]{1,255}", "1-255 letters, digits, '.', '_', ':' or '-'")


#: systemd credential (LoadCredential=broker-password:...) read when no password_file is set
CREDENTIAL_NAME = "broker-password"
#: permission bits a file holding a secret must not have: anything beyond 0640
LOOSE_BITS = 0o137


queue_name = _NAME


@dataclass(frozen=True, kw_only=True)
class BrokerSettings(c.Section):
    """The ``[broker]`` section both daemons share (each adds keys of its own), and what
    follows from it: pika's parameters, the password, TLS."""

    url: str = c.key(
        c.urls("amqp", "amqps"),
        DEFAULT_URL,
        "broker URL: `amqps://` (TLS), or `amqp://` to this machine; a file whose URL holds "
        "a password must be mode 0640 at most; several URLs separated by spaces are the nodes "
        "of one cluster (same scheme, user, password and virtual host), tried in an order "
        "shuffled at start, the next one when the node in use goes away",
    )
    exchange: str = c.key(_NAME, topology.DEFAULT_EXCHANGE, "durable topic exchange of readings")
    heartbeat: int = c.key(c.integer(0, 600), "30", "AMQP heartbeat in seconds (0: off)")
    connect_timeout: float = c.key(c.number(above=0), "10", "seconds to open a connection")
    blocked_timeout: float = c.key(
        c.number(above=0), "60", "seconds a connection may stay blocked before reconnecting"
    )
    retry_initial: float = c.key(c.number(above=0), "1", "first reconnect delay, seconds")
    retry_max: float = c.key(c.number(above=0), "30", "longest reconnect delay, seconds")
    ca_file: Path | None = c.key(
        c.optional(c.path),
        "",
        "`amqps://`: CA certificates (PEM) the broker's certificate must chain to (empty: "
        "the system's); the host name is always checked",
    )
    cert_file: Path | None = c.key(
        c.optional(c.path),
        "",
        "`amqps://`: client certificate (PEM), for a broker that asks for one",
    )
    key_file: Path | None = c.key(
        c.optional(c.path),
        "",
        "`amqps://`: the client certificate's private key (PEM, mode 0640 at most)",
    )
    password_file: Path | None = c.key(
        c.optional(c.path),
        "",
        "file holding the broker password (mode 0640 at most); overrides the URL's; unset: "
        "the systemd credential `broker-password` if there is one, else the URL's",
    )
    allow_plaintext: bool = c.key(
        c.boolean,
        "no",
        "allow `amqp://` (no TLS) to a host that is not this machine; logs a WARNING at start",
    )

    @functools.cached_property
    def urls(self) -> tuple[str, ...]:
        """The nodes' URLs, as configured (one for a single broker)."""
        return tuple(self.url.split())

    @functools.cached_property
    def username(self) -> str:
        """The broker user (the URL's; pika's default ``guest`` when it names none).
        Parsed once: meterd puts it in every message's user_id."""
        name = urlsplit(self.urls[0]).username
        return unquote(name) if name else "guest"

    def password_source(self) -> Path | None:
        """Where the password comes from: password_file, the credential, or None (the URL)."""
        if self.password_file is not None:
            return self.password_file
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if directory and (Path(directory) / CREDENTIAL_NAME).is_file():
            return Path(directory) / CREDENTIAL_NAME
        return None

    def ssl_context(self) -> ssl.SSLContext:
        """Certificate and host name verification on; the client certificate if given."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(
                str(self.cert_file), str(self.key_file) if self.key_file is not None else None
            )
        return context

    def parameters(self, connection_name: str, url: str | None = None) -> pika.URLParameters:
        """pika's parameters for ``url`` (one of :attr:`urls`; the first by default);
        raises OSError/ValueError/ssl.SSLError for unusable files."""
        url = url or self.urls[0]
        parts = urlsplit(url)
        source = self.password_source()
        if source is not None or (parts.username and parts.password is None):
            # pika cannot parse a user without a password: give it an empty one, then
            # set the real credentials
            netloc = quote(self.username, safe="") + ":@" + parts.netloc.rpartition("@")[2]
            params = pika.URLParameters(urlunsplit(parts._replace(netloc=netloc)))
            password = read_secret(source) if source is not None else ""
            params.credentials = pika.PlainCredentials(self.username, password)
        else:
            params = pika.URLParameters(url)
        if parts.scheme == "amqps":
            params.ssl_options = pika.SSLOptions(self.ssl_context(), server_hostname=parts.hostname)
        params.heartbeat = self.heartbeat
        params.blocked_connection_timeout = self.blocked_timeout
        params.socket_timeout = self.connect_timeout
        params.stack_timeout = self.connect_timeout * 2
        params.connection_attempts = 1
        params.client_properties = {"connection_name": connection_name}
        return params

    @property
    def display_url(self) -> str:
        """The URLs without their password, for logs (several joined by ", ")."""
        return ", ".join(redact(u) for u in self.urls)

    def scrub(self, text: str) -> str:
        """``text`` with the broker password (URL or file) replaced by ``***``."""
        secrets = set()
        raw = urlsplit(self.urls[0]).password  # the same in every URL (config.urls)
        if raw:
            secrets.update({raw, unquote(raw)})
        source = self.password_source()
        if source is not None:
            try:
                secrets.add(read_secret(source))
            except (OSError, ValueError):
                pass
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text


def read_secret(path: Path) -> str:
    """A password file's content without its final newline; ValueError when empty."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read().rstrip("\r\n")
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def url_has_secret(url: str) -> bool:
    """True when the URL carries a password (RabbitMQ's well-known guest:guest is none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return False
    return (unquote(parts.username or ""), unquote(parts.password)) != ("guest", "guest")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in {"localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loose(path: Path) -> str | None:
    """'mode 0644' when a file holding a secret is readable or writable beyond 0640."""
    mode = os.stat(path).st_mode & 0o7777
    return f"mode {mode:04o}" if mode & LOOSE_BITS else None


def check(config: c.Config) -> None:
    """Security checks of the ``[broker]`` section; raises ConfigError (see module doc)."""
    section: BrokerSettings = config.broker
    parts = urlsplit(section.urls[0])  # scheme, user and password are the same in each

    def error(key: str, problem: str, file: str | Path | None = None) -> c.ConfigError:
        return c.ConfigError(file or config.source("broker", key), "broker", key, problem)

    for node in map(urlsplit, section.urls):
        if node.scheme == "amqp" and not is_loopback(node.hostname) and not section.allow_plaintext:
            raise error(
                "url",
                f"amqp:// would send the password and the readings unencrypted to "
                f"{node.hostname}, which is not this machine; use amqps:// (TLS), "
                "or set allow_plaintext = yes on a trusted network",
            )
    for path in config.files:  # every file, also one whose URL a later file overrides
        text = c.read_values(path).get(("broker", "url"))
        secret = text is not None and any(url_has_secret(u) for u in text.split())
        if secret and (loose := _loose(path)):
            raise error(
                "url",
                f"holds a password but the file has {loose} (others may read it); "
                "chmod 0640 or tighter, or move the password to password_file",
                path,
            )
    password_file = section.password_file
    if password_file is not None:
        _check_secret_file(password_file, config.source("broker", "password_file"), "password_file")
        try:
            read_secret(password_file)
        except ValueError:
            raise error("password_file", f"{password_file} is empty") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise error("password_file", f"cannot read {password_file}: {_why(exc)}") from None
    tls_keys = [k for k in ("ca_file", "cert_file", "key_file") if getattr(section, k)]
    if tls_keys and parts.scheme != "amqps":
        raise error(tls_keys[0], "is only used with amqps:// URLs (TLS)")
    if section.key_file is not None and section.cert_file is None:
        raise error("key_file", "needs cert_file (the client certificate it belongs to)")
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(section, key)
        if path is None:
            continue
        if not os.path.isfile(path):
            raise error(key, f"{path}: no such file")
        if key != "ca_file" and _holds_private_key(path):
            _check_secret_file(path, config.source("broker", key), key)
    if parts.scheme == "amqps":
        try:
            section.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            key = "cert_file" if section.cert_file is not None else "ca_file"
            raise error(key, f"cannot load the TLS files: {_why(exc)}") from None


def warnings(config: c.Config) -> list[str]:
    """What a daemon logs as WARNING at start (allow_plaintext in use)."""
    return [
        f"[broker] allow_plaintext = yes: the password and the readings travel "
        f"unencrypted to {parts.hostname}; use amqps:// outside a trusted network"
        for parts in map(urlsplit, config.broker.urls)
        if parts.scheme == "amqp" and not is_loopback(parts.hostname)
    ]


def _check_secret_file(path: Path, source: str, key: str) -> None:
    try:
        loose = _loose(path)
    except OSError as exc:
        raise c.ConfigError(source, "broker", key, f"cannot read {path}: {_why(exc)}") from None
    if loose:
        raise c.ConfigError(
            source,
            "broker",
            key,
            f"{path} holds a secret but has {loose} (others may read it); chmod 0600 or 0640",
        )


def _holds_private_key(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return b"PRIVATE KEY-----" in fh.read(1 << 20)
    except OSError:
        return False


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def node_name(url: str) -> str:
    """A node as STATUS names it: ``host:port`` (the scheme's port when none is given)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"{host}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"


def redact(url: str) -> str:
    """The URL without its password, for logs and status lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6
        netloc = f"[{netloc}]"
    if parts.username:
        netloc = f"{parts.username}:***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
