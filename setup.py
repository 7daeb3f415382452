# Kept for dh-python's pybuild (distutils plugin); all metadata lives in setup.cfg.
from setuptools import setup

setup()
