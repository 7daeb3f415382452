"""A broker connection's set-up steps fail as BrokerUnavailable, never as a crash."""

from __future__ import annotations

import socket

import pytest

from meterd.settings import SCHEMA
from pvsim import config as c
from pvsim.broker import BrokerSettings
from pvsim.reconnect import BrokerUnavailable
from pvsim.session import Session


def _settings(tmp_path, port: int) -> BrokerSettings:
    ini = tmp_path / "meterd.ini"
    ini.write_text(
        f"[meter]\nid = house-a\n[broker]\nurl = amqp://guest:guest@127.0.0.1:{port}/%2F\n"
        "connect_timeout = 3\n"
    )
    ini.chmod(0o600)
    return c.load(ini, SCHEMA).broker


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    yield srv.getsockname()[1]
    srv.close()


def test_a_peer_reset_right_after_the_tcp_connect_is_broker_unavailable(
    tmp_path, listener, monkeypatch
):
    # the reset lands between pika's connect check and its getpeername() call
    def getpeername(_sock):
        raise OSError(107, "Transport endpoint is not connected")

    monkeypatch.setattr(socket.socket, "getpeername", getpeername)
    session = Session(_settings(tmp_path, listener), "test", tick=lambda: None)
    with pytest.raises(BrokerUnavailable, match="reset while connecting"):
        session.connect()


def test_nothing_listening_is_broker_unavailable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    session = Session(_settings(tmp_path, port), "test", tick=lambda: None)
    with pytest.raises(BrokerUnavailable, match="refused"):
        session.connect()


def test_a_session_connects_to_the_node_it_is_given(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = BrokerSettings(
        url=f"amqp://guest:guest@127.0.0.1:1/%2F amqp://guest:guest@127.0.0.1:{port}/%2F",
        connect_timeout=3,
    )
    session = Session(settings, "test", tick=lambda: None)
    with pytest.raises(BrokerUnavailable, match="refused") as err:
        session.connect(settings.urls[1])
    assert session.url == settings.urls[1] and not err.value.answered
