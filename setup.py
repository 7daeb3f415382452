# Kept for dh-python's pybuild (distutils plugin); all metadata lives in setup.cfg.
# The build step also records the build date (pvsim/build_info.py): SOURCE_DATE_EPOCH,
# which dpkg-buildpackage sets from debian/changelog, else that changelog itself.
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pvsim import build_info  # noqa: E402 - from this source tree


class BuildWithDate(build_py):
    def run(self):
        super().run()
        epoch = build_info.source_epoch()
        if epoch is not None and not self.dry_run:
            target = Path(self.build_lib) / "pvsim" / build_info.GENERATED
            target.write_text(build_info.generated_module(epoch))


setup(cmdclass={"build_py": BuildWithDate})
