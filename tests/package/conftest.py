import os
import shutil

import pytest

from tests.package.debs import Debs, build_debs_once


@pytest.fixture(scope="session")
def debs(tmp_path_factory) -> Debs:
    if not os.environ.get("PVSIM_TEST_DEBS"):
        missing = [t for t in ("dpkg-buildpackage", "dh", "fakeroot") if not shutil.which(t)]
        if missing:
            pytest.fail(f"build tools missing: {missing}; run scripts/install-deps")
    return build_debs_once(tmp_path_factory)
