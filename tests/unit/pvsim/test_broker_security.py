"""[broker] security rules: TLS, plaintext only to loopback, secrets kept private and out of
every line the daemons print."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pika
import pika.exceptions
import pytest

from meterd.settings import SCHEMA as METERD
from pvsim import broker
from pvsim import config as c
from pvsim.lifecycle import check_config
from pvsim.session import describe
from pvsimd.settings import SCHEMA as PVSIMD
from tests.support.tls import make_pki

ROOT = Path(__file__).resolve().parents[3]
SECRET = "Sup3r-Secret-pw"


def write(path: Path, text: str, mode: int = 0o640) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def meterd_ini(tmp_path: Path, broker_lines: str, mode: int = 0o640) -> Path:
    return write(tmp_path / "meterd.ini", f"[meter]\nid = house-a\n[broker]\n{broker_lines}", mode)


def checked(path: Path, schema: c.Schema = METERD) -> c.Config:
    config = c.load(path, schema)
    broker.check(config)
    return config


def check_error(path: Path, schema: c.Schema = METERD) -> str:
    with pytest.raises(c.ConfigError) as info:
        checked(path, schema)
    text = str(info.value)
    assert "\n" not in text
    assert SECRET not in text
    return text


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


# --- secrets in files others may read ----------------------------------------------------


def test_a_url_with_a_password_in_a_world_readable_file_is_refused(tmp_path):
    ini = meterd_ini(tmp_path, f"url = amqp://house-a:{SECRET}@localhost/pvsim\n", 0o644)
    text = check_error(ini)
    assert str(ini) in text and "[broker] url" in text and "mode 0644" in text


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_private_modes_are_fine(tmp_path, mode):
    checked(meterd_ini(tmp_path, f"url = amqp://house-a:{SECRET}@localhost/pvsim\n", mode))


@pytest.mark.parametrize("mode", [0o660, 0o604, 0o641, 0o740])
def test_anything_beyond_0640_is_refused(tmp_path, mode):
    check_error(meterd_ini(tmp_path, f"url = amqp://house-a:{SECRET}@localhost/pvsim\n", mode))


def test_guest_guest_and_urls_without_password_need_no_private_file(tmp_path):
    checked(meterd_ini(tmp_path, "url = amqp://guest:guest@localhost/%2F\n", 0o644))
    checked(meterd_ini(tmp_path, "url = amqps://house-a@broker.example/pvsim\n", 0o644))


def test_a_password_in_an_overridden_main_file_still_counts(tmp_path):
    ini = meterd_ini(tmp_path, f"url = amqp://house-a:{SECRET}@localhost/pvsim\n", 0o644)
    write(tmp_path / "meterd.ini.d" / "50-site.ini", "[broker]\nurl = amqp://localhost/\n")
    assert str(ini) in check_error(ini)


def test_a_loose_dropin_is_named(tmp_path):
    ini = meterd_ini(tmp_path, "url = amqp://localhost/\n", 0o644)
    dropin = write(
        tmp_path / "meterd.ini.d" / "60-broker.ini",
        f"[broker]\nurl = amqp://house-a:{SECRET}@localhost/\n",
        0o664,
    )
    assert check_error(ini).startswith(f"{dropin}: [broker] url: ")


def test_a_loose_password_file_is_refused(tmp_path):
    secret = write(tmp_path / "house-a.password", SECRET + "\n", 0o644)
    ini = meterd_ini(tmp_path, f"url = amqps://house-a@broker.example/\npassword_file = {secret}\n")
    text = check_error(ini)
    assert "[broker] password_file" in text and "mode 0644" in text and str(secret) in text


def test_a_missing_or_empty_password_file_is_refused(tmp_path):
    ini = meterd_ini(tmp_path, f"url = amqps://h@b.example/\npassword_file = {tmp_path}/nope\n")
    assert "cannot read" in check_error(ini)
    empty = write(tmp_path / "empty", "\n", 0o600)
    ini = meterd_ini(tmp_path, f"url = amqps://h@b.example/\npassword_file = {empty}\n")
    assert "is empty" in check_error(ini)


def test_the_password_comes_from_the_file_then_the_credential_then_the_url(tmp_path, monkeypatch):
    secret = write(tmp_path / "pw", "from-file\n", 0o600)
    creds = tmp_path / "creds"
    write(creds / broker.CREDENTIAL_NAME, "from-credential\n", 0o400)
    base = dict(exchange="x", heartbeat=0, connect_timeout=1, blocked_timeout=1)
    base |= dict(retry_initial=1, retry_max=1)
    s = broker.BrokerSettings(url="amqp://house-a:from-url@localhost/v", **base)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert s.parameters("t").credentials.password == "from-url"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    creds_params = s.parameters("t")
    assert creds_params.credentials == pika.PlainCredentials("house-a", "from-credential")
    s = broker.BrokerSettings(url="amqp://house-a@localhost/v", password_file=secret, **base)
    params = s.parameters("t")
    assert params.credentials == pika.PlainCredentials("house-a", "from-file")
    assert params.virtual_host == "v" and params.host == "localhost"
    # a user without any password is fine for pika too (empty password)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    s = broker.BrokerSettings(url="amqp://house-a@localhost/v", **base)
    assert s.parameters("t").credentials == pika.PlainCredentials("house-a", "")
    assert s.username == "house-a"
    assert broker.BrokerSettings(url="amqp://localhost/", **base).username == "guest"


# --- plaintext and TLS -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["broker.example", "10.0.0.5", "[2001:db8::1]", "localhost.example.com"]
)
def test_plaintext_to_another_host_is_refused(tmp_path, host):
    text = check_error(meterd_ini(tmp_path, f"url = amqp://guest:guest@{host}/\n"))
    assert "[broker] url" in text and "amqps://" in text and "allow_plaintext" in text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "[::1]"])
def test_plaintext_to_loopback_is_fine(tmp_path, host):
    config = checked(meterd_ini(tmp_path, f"url = amqp://guest:guest@{host}/\n"))
    assert broker.warnings(config) == []


def test_allow_plaintext_is_allowed_with_a_warning(tmp_path):
    config = checked(
        meterd_ini(tmp_path, "url = amqp://guest:guest@broker.example/\nallow_plaintext = yes\n")
    )
    (warning,) = broker.warnings(config)
    assert "unencrypted" in warning and "broker.example" in warning


def test_tls_files_need_amqps(tmp_path, pki):
    text = check_error(meterd_ini(tmp_path, f"url = amqp://localhost/\nca_file = {pki.ca_pem}\n"))
    assert "[broker] ca_file" in text and "amqps://" in text


def test_key_file_needs_cert_file(tmp_path, pki):
    text = check_error(
        meterd_ini(tmp_path, f"url = amqps://b.example/\nkey_file = {pki.client_key}\n")
    )
    assert "[broker] key_file" in text and "cert_file" in text


def test_tls_files_are_loaded_when_the_config_is_checked(tmp_path, pki):
    good = f"url = amqps://b.example/\nca_file = {pki.ca_pem}\n"
    good += f"cert_file = {pki.client_pem}\nkey_file = {pki.client_key}\n"
    checked(meterd_ini(tmp_path, good))
    missing = meterd_ini(tmp_path, f"url = amqps://b.example/\nca_file = {tmp_path}/none.pem\n")
    assert "no such file" in check_error(missing)
    wrong_key = f"url = amqps://b.example/\ncert_file = {pki.client_pem}\n"
    wrong_key += f"key_file = {pki.server_key}\n"
    assert "cannot load the TLS files" in check_error(meterd_ini(tmp_path, wrong_key))
    not_pem = write(tmp_path / "ca.txt", "not a certificate\n")
    assert "[broker] ca_file" in check_error(
        meterd_ini(tmp_path, f"url = amqps://b.example/\nca_file = {not_pem}\n")
    )


def test_a_loose_private_key_is_refused(tmp_path, pki):
    key = tmp_path / "client.key"
    key.write_bytes(pki.client_key.read_bytes())
    os.chmod(key, 0o644)
    lines = f"url = amqps://b.example/\ncert_file = {pki.client_pem}\nkey_file = {key}\n"
    text = check_error(meterd_ini(tmp_path, lines))
    assert "[broker] key_file" in text and "mode 0644" in text


def test_amqps_verifies_the_certificate_and_the_host_name(pki):
    s = broker.BrokerSettings(
        url="amqps://house-a@broker.example:5671/pvsim",
        exchange="x", heartbeat=0, connect_timeout=1, blocked_timeout=1,
        retry_initial=1, retry_max=1,
        ca_file=pki.ca_pem, cert_file=pki.client_pem, key_file=pki.client_key,
    )  # fmt: skip
    params = s.parameters("t")
    context = params.ssl_options.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert params.ssl_options.server_hostname == "broker.example"
    assert params.port == 5671


# --- nothing secret in what the daemons print ---------------------------------------------


def test_check_config_never_prints_the_password(tmp_path):
    ini = meterd_ini(tmp_path, f"url = amqp://house-a:{SECRET}@localhost/pvsim\n", 0o600)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ok = subprocess.run(
        [sys.executable, "-m", "meterd", "--check-config", "--config", str(ini)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    os.chmod(ini, 0o644)
    bad = subprocess.run(
        [sys.executable, "-m", "meterd", "--check-config", "--config", str(ini)],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == c.EX_CONFIG
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    for out in (ok.stdout, ok.stderr, bad.stdout, bad.stderr):
        assert SECRET not in out


def test_a_bad_url_does_not_quote_the_password(tmp_path):
    # a '/' in the password cuts the URL at the wrong place
    text = check_error(meterd_ini(tmp_path, "url = amqp://house-a:pw/" + SECRET + "@host/\n"))
    assert "not a valid URL" in text or "must name a host" in text


def test_redact_and_scrub():
    s = broker.BrokerSettings(
        url=f"amqps://house-a:{SECRET}@b.example:5671/pvsim",
        exchange="x", heartbeat=0, connect_timeout=1, blocked_timeout=1,
        retry_initial=1, retry_max=1,
    )  # fmt: skip
    assert SECRET not in s.display_url and "house-a:***@b.example:5671" in s.display_url
    assert s.scrub(f"login failed for {SECRET}!") == "login failed for ***!"


def test_describe_tls_and_auth_errors_in_one_line():
    expired = ssl.SSLCertVerificationError(1, "certificate verify failed")
    expired.verify_message = "certificate has expired"
    assert (
        describe(expired)
        == "TLS: the broker's certificate was not accepted: certificate has expired"
    )
    wrapped = pika.exceptions.IncompatibleProtocolError(
        "StreamLostError: (\"Stream connection lost: SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_"
        "REQUIRED] tlsv13 alert certificate required (_ssl.c:2546)')\",)"
    )
    assert describe(wrapped).startswith("TLS: tlsv13 alert certificate required")
    auth = pika.exceptions.ProbableAuthenticationError("ACCESS_REFUSED - Login was refused")
    assert describe(auth) == "authentication refused by the broker"


def test_both_daemons_run_the_checks(tmp_path):
    loose = f"url = amqp://house-a:{SECRET}@localhost/\n"
    with pytest.raises(c.ConfigError):
        check_config(type("D", (), {"check": classmethod(lambda cls, cfg: None)}),
                     c.load(meterd_ini(tmp_path, loose, 0o644), METERD))  # fmt: skip
    pv = write(
        tmp_path / "pvsimd.ini",
        f"[site]\nlatitude = 1\nlongitude = 2\n[broker]\n{loose}",
        0o644,
    )
    with pytest.raises(c.ConfigError):
        checked(pv, PVSIMD)


# --- several nodes: every rule holds for each URL ------------------------------------------


def test_plaintext_to_any_node_that_is_not_this_machine_is_refused(tmp_path):
    urls = "amqp://guest:guest@127.0.0.1:5672/ amqp://guest:guest@rabbit-2.example:5672/"
    text = check_error(meterd_ini(tmp_path, f"url = {urls}\n"))
    assert "[broker] url" in text and "rabbit-2.example" in text and "allow_plaintext" in text
    config = checked(meterd_ini(tmp_path, f"url = {urls}\nallow_plaintext = yes\n"))
    (warning,) = broker.warnings(config)
    assert "rabbit-2.example" in warning


def test_a_password_in_any_of_the_urls_needs_a_private_file(tmp_path):
    urls = " ".join(f"amqps://house-a:{SECRET}@rabbit-{i}.example/pvsim" for i in (1, 2))
    text = check_error(meterd_ini(tmp_path, f"url = {urls}\n", 0o644))
    assert "mode 0644" in text
    config = checked(meterd_ini(tmp_path, f"url = {urls}\n", 0o600))
    settings = config.broker
    assert settings.urls == tuple(urls.split()) and settings.username == "house-a"
    assert SECRET not in settings.display_url and settings.display_url.count("***") == 2
    assert settings.scrub(f"oops {SECRET}") == "oops ***"


def test_each_node_gets_its_own_parameters_and_tls_host_name(tmp_path, pki):
    urls = "amqps://house-a@rabbit-1.example:5671/pvsim amqps://house-a@rabbit-2.example/pvsim"
    config = checked(meterd_ini(tmp_path, f"url = {urls}\nca_file = {pki.ca_pem}\n"))
    settings = config.broker
    one = settings.parameters("t", settings.urls[0])
    two = settings.parameters("t", settings.urls[1])
    assert (one.host, one.port) == ("rabbit-1.example", 5671)
    assert (two.host, two.port) == ("rabbit-2.example", 5671)
    assert two.ssl_options.server_hostname == "rabbit-2.example"
    assert broker.node_name(settings.urls[1]) == "rabbit-2.example:5671"
    assert broker.node_name("amqp://[::1]/v") == "[::1]:5672"
