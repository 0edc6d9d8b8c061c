# The cffi extension is declared here because pyproject.toml has no cffi_modules key.
from setuptools import setup

setup(cffi_modules=["aioixy/_native/build.py:ffibuilder"])
