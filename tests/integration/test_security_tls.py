"""amqps:// on RabbitMQ nodes of our own with TLS listeners and a throwaway CA: readings
flow with certificate and host name checks on; a wrong CA, an expired certificate or a
missing client certificate fail with one clear line per attempt, and are retried."""

from __future__ import annotations

import shutil

import pytest

from tests.support.broker_node import BrokerNode, TlsListener
from tests.support.daemons import Site
from tests.support.tls import make_pki
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _node(base, pki, cert: str):
    return BrokerNode(
        base,
        tls=TlsListener(
            cacertfile=pki.ca_pem,
            certfile=pki.directory / f"{cert}.pem",
            keyfile=pki.directory / f"{cert}.key",
            verify_peer=True,
            fail_if_no_peer_cert=True,
        ),
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory, pki):
    base = tmp_path_factory.mktemp("tls") / "node"
    n = _node(base, pki, "server")
    try:
        n.start()
        yield n
    finally:
        n.kill()
        shutil.rmtree(base, ignore_errors=True)


def tls_keys(pki, ca: str = "ca", client_cert: bool = True) -> dict[str, object]:
    keys: dict[str, object] = {"ca_file": pki.directory / f"{ca}.pem"}
    if client_cert:
        keys |= {"cert_file": pki.client_pem, "key_file": pki.client_key}
    return keys


def assert_retried_with(meterd, text: str, attempts: int = 2) -> None:
    wait_until(
        lambda: meterd.log().count(text) >= attempts,
        timeout=60,
        message=f"{text!r} not logged {attempts} times",
    )
    log = meterd.log()
    assert meterd.running(), log
    assert "Traceback" not in log, log
    lines = [line for line in log.splitlines() if text in line]
    assert all("unavailable" in line and "retrying in" in line for line in lines), lines
    assert meterd.stop() == 0


def test_readings_flow_over_tls_with_a_client_certificate(node, pki, tmp_path):
    site = Site(root=tmp_path, broker_url=node.url, daemon_url=node.amqps_url)
    try:
        pvsimd = site.start_pvsimd(broker=tls_keys(pki))
        wait_until(lambda: "ready" in pvsimd.log(), timeout=30, message=pvsimd.log())
        site.start_meterd("house-a", broker=tls_keys(pki))
        wait_until(lambda: len(site.rows("house-a")) >= 5, timeout=60, message=pvsimd.log())
        # both connections really are TLS, with our client certificate
        out = node.ctl("list_connections", "name", "ssl", "peer_cert_subject", "-q").stdout
        tls_lines = [line for line in out.splitlines() if "\ttrue\t" in line]
        assert len(tls_lines) >= 2 and all("house-a" in line for line in tls_lines), out
        for proc in site.processes:
            assert "Traceback" not in proc.log()
            assert proc.stop() == 0
    finally:
        site.cleanup()


def test_a_broker_certificate_from_another_ca_is_refused(node, pki, tmp_path):
    site = Site(root=tmp_path, broker_url=node.url, daemon_url=node.amqps_url)
    try:
        meterd = site.start_meterd("house-a", broker=tls_keys(pki, ca="other-ca"))
        assert_retried_with(meterd, "TLS: the broker's certificate was not accepted")
    finally:
        site.cleanup()


def test_without_a_client_certificate_the_broker_refuses(node, pki, tmp_path):
    site = Site(root=tmp_path, broker_url=node.url, daemon_url=node.amqps_url)
    try:
        meterd = site.start_meterd("house-a", broker=tls_keys(pki, client_cert=False))
        assert_retried_with(meterd, "certificate required")
    finally:
        site.cleanup()


def test_an_expired_broker_certificate_is_refused(pki, tmp_path):
    with _node(tmp_path / "node", pki, "expired") as expired:
        site = Site(root=tmp_path / "site", broker_url=expired.url, daemon_url=expired.amqps_url)
        site.root.mkdir()
        try:
            meterd = site.start_meterd("house-a", broker=tls_keys(pki))
            assert_retried_with(
                meterd, "TLS: the broker's certificate was not accepted: certificate has expired"
            )
        finally:
            site.cleanup()
