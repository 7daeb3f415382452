"""The installed units start only after time-sync.target (issue 16: a board without a
real-time clock boots in 1970 or at its last shutdown, until NTP sets the clock), and
the README's way to make that target wait for NTP exists: systemd-time-wait-sync.

A module of its own, small: one container, the packages installed, the units asked."""

from __future__ import annotations

import pytest

from tests.system.container import Container, log
from tests.system.helpers import BrokerNames, booted, install_packages, preseed_config

pytestmark = pytest.mark.system

UNITS = (
    "meterd.service",
    "meterd@house-b.service",
    "pvsimd.service",
    "pvsimd@shard0.service",
)


@pytest.fixture(scope="module")
def box(cached_root, debs, request):
    names = BrokerNames.new("timesync")
    with booted(cached_root, request) as c:
        try:
            preseed_config(c, names)
            install_packages(c, debs)
            log(f"packages installed in {c.timings['install']:.1f}s")
            yield c
        finally:
            c.run("systemctl", "stop", "meterd.service", "pvsimd.service", check=False)
            names.delete()


@pytest.mark.parametrize("unit", UNITS)
def test_unit_is_ordered_after_time_sync_target(box: Container, unit: str):
    after = box.prop(unit, "After").split()
    assert "time-sync.target" in after, f"{unit}: After={after}"
    assert "network-online.target" in after
    # ordered, not pulled in: the NTP client pulls the target in (systemd.special(7))
    assert "time-sync.target" not in box.prop(unit, "Wants").split()


def test_the_readmes_command_makes_time_sync_target_wait_for_ntp(box: Container):
    unit = "systemd-time-wait-sync.service"
    props = box.show(unit, "LoadState", "Before")
    assert props["LoadState"] == "loaded"
    assert "time-sync.target" in props["Before"].split()
    box.run("systemctl", "enable", unit)  # as the README prints it
    assert box.run("systemctl", "is-enabled", unit).stdout.strip() == "enabled"
