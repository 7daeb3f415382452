"""A real Prometheus (Debian's prometheus package) scrapes both daemons: every metric the
daemons declare — and the README lists — arrives as a series, with the values a user
expects, and Prometheus loads and evaluates the shipped alerting rules."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from meterd.service import MeterDaemon
from pvsim import build_info
from pvsimd.service import PvSimDaemon
from tests.support.daemons import REPO, publish_raw
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

RULES = REPO / "docs" / "prometheus" / "pvsim-rules.yml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A Prometheus server of the test's own, scraping ``targets`` every second."""

    def __init__(self, root: Path, targets: dict[str, int]):
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus missing: run scripts/install-deps (Debian package)")
        self.port = free_port()
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            for job, port in targets.items()
        )
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES}\n"
            f"scrape_configs:\n{jobs}"
        )
        self.log_path = root / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={root / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            doc = json.load(response)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> dict[str, float]:
        """An instant query: {labels as text: value}."""
        result = self.get("/api/v1/query", query=promql)["result"]
        return {
            ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(
                r["value"][1]
            )
            for r in result
        }

    def names(self, prefix: str) -> set[str]:
        return {n for n in self.get("/api/v1/label/__name__/values") if n.startswith(prefix)}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def prometheus_of(tmp_path):
    servers: list[Prometheus] = []

    def start(targets: dict[str, int]) -> Prometheus:
        server = Prometheus(tmp_path, targets)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_prometheus_scrapes_every_metric_of_both_daemons(site, prometheus_of):
    ports = {"meterd": free_port(), "pvsimd": free_port()}
    pvsimd = site.start_pvsimd(metrics={"listen": f"127.0.0.1:{ports['pvsimd']}"})
    meterd = site.start_meterd(
        "house-a", interval=0.2, metrics={"listen": f"127.0.0.1:{ports['meterd']}"}
    )
    wait_until(lambda: len(site.rows("house-a")) >= 5, timeout=30, message="rows of house-a")
    prometheus = prometheus_of(ports)
    try:
        up = wait_until(
            lambda: (got := prometheus.query("up")) and len(got) == 2 and all(got.values()) and got,
            timeout=30,
            message="both daemons up in Prometheus",
        )
        assert set(up) == {f"instance=127.0.0.1:{p},job={job}" for job, p in ports.items()}
        for daemon in (MeterDaemon, PvSimDaemon):
            want = {m.name for m in daemon.all_metrics()}
            wait_until(
                lambda d=daemon, w=want: prometheus.names(d.name + "_") == w,
                timeout=20,
                message=f"{daemon.name}'s series: {sorted(want ^ prometheus.names(daemon.name))}",
            )
        meterd_job = f"instance=127.0.0.1:{ports['meterd']},job=meterd"
        pvsimd_job = f"instance=127.0.0.1:{ports['pvsimd']},job=pvsimd"
        # values as a user would check them
        assert prometheus.query("meterd_readings_confirmed_total")[meterd_job] >= 5
        assert prometheus.query("pvsimd_readings_written_total")[pvsimd_job] >= 5
        assert prometheus.query("meterd_clock_state")[f"{meterd_job},state=ok"] == 1
        assert prometheus.query("meterd_broker_connected")[meterd_job] == 1
        assert prometheus.query("pvsimd_broker_connected")[pvsimd_job] == 1
        assert prometheus.query("meterd_sample_interval_seconds")[meterd_job] == 0.2
        assert prometheus.query("pvsimd_dead_letters_total") == {
            f"{pvsimd_job},reason={reason}": 0.0 for reason in ("forged", "future", "invalid")
        }
        build = prometheus.query("pvsimd_build_info")
        assert build == {
            f"build_date={build_info.build_date_text()},{pvsimd_job},"
            f"version={build_info.VERSION}": 1.0
        }
        # the shipped rules are loaded and evaluated, and none fires
        groups = wait_until(
            lambda: (g := prometheus.get("/api/v1/rules")["groups"])
            and all(r.get("lastEvaluation", "").startswith("20") for r in g[0]["rules"])
            and g,
            timeout=20,
            message="rules evaluated",
        )
        (group,) = groups
        assert group["name"] == "pvsim" and len(group["rules"]) == 7
        assert all(r["health"] == "ok" for r in group["rules"]), group["rules"]
        assert all(r["state"] == "inactive" for r in group["rules"]), group["rules"]
        # a message that is no reading: counted, and the alert fires
        publish_raw(site.broker_url, site.exchange, "reading.house-a", b"not a reading")
        wait_until(
            lambda: prometheus.query('pvsimd_dead_letters_total{reason="invalid"}')
            == {f"{pvsimd_job},reason=invalid": 1.0},
            timeout=20,
            message="the dead letter counted",
        )
        alerts = wait_until(
            lambda: prometheus.get("/api/v1/alerts")["alerts"],
            timeout=20,
            message="no alert for the dead letter",
        )
        got = [(a["labels"]["alertname"], a["labels"].get("reason"), a["state"]) for a in alerts]
        assert got == [("PvsimDeadLettersRising", "invalid", "firing")]
    except AssertionError:
        print(prometheus.log()[-3000:])
        raise
    assert meterd.stop() == 0 and pvsimd.stop() == 0
    assert "metrics on http://127.0.0.1:" in meterd.log()
