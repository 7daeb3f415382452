"""Throwaway certificate authorities and certificates for TLS tests, made with openssl.

:func:`make_pki` writes, under one directory::

    ca.pem / ca.key                 the test CA
    server.pem / server.key         for "localhost" (SAN DNS:localhost, IP:127.0.0.1)
    expired.pem / expired.key       the same names, valid 2020-01-01 .. 2020-01-02 only
    client.pem / client.key         a client certificate (CN=house-a) signed by the CA
    other-ca.pem / other-ca.key     an unrelated CA that signed nothing we use

OpenSSL 3.0 (Debian 12) has no ``x509 -not_before``; the expired certificate is issued
with ``openssl ca -startdate/-enddate``, which takes any dates.  Elliptic-curve keys keep
it quick.  Private keys are written with mode 0600.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    directory: Path

    def __getattr__(self, name: str) -> Path:  # pki.ca_pem -> <dir>/ca.pem
        if name.startswith("_"):
            raise AttributeError(name)
        stem, _, ext = name.rpartition("_")
        return self.directory / f"{stem.replace('_', '-')}.{ext}"


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

_CA_CONF = """\
[ ca ]
default_ca = testca
[ testca ]
dir = .
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
"""


def _ca(d: Path, name: str, cn: str) -> None:
    _openssl(
        "req", "-x509", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-days", "30", "-subj", f"/CN={cn}", cwd=d,
    )  # fmt: skip


def _csr(d: Path, name: str, cn: str) -> None:
    _openssl(
        "req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN={cn}", cwd=d,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "issued").mkdir(exist_ok=True)
    (d / "index.txt").write_text("")
    (d / "serial").write_text("1000\n")
    (d / "ca.cnf").write_text(_CA_CONF)
    (d / "server.ext").write_text(
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "extendedKeyUsage = serverAuth\n"
        "basicConstraints = CA:FALSE\n"
    )
    (d / "client.ext").write_text("extendedKeyUsage = clientAuth\nbasicConstraints = CA:FALSE\n")
    _ca(d, "ca", "pvsim test CA")
    _ca(d, "other-ca", "some other CA")
    _csr(d, "server", "localhost")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "server.ext", "-out", "server.pem", cwd=d,
    )  # fmt: skip
    _csr(d, "expired", "localhost")
    _openssl(
        "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
        "-in", "expired.csr", "-out", "expired.pem", "-notext", "-extfile", "server.ext",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", cwd=d,
    )  # fmt: skip
    _csr(d, "client", "house-a")
    _openssl(
        "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "30", "-extfile", "client.ext", "-out", "client.pem", cwd=d,
    )  # fmt: skip
    for key in d.glob("*.key"):
        os.chmod(key, 0o600)
    return Pki(d)
