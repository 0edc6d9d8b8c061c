"""The ``aioixy`` command (``python -m aioixy``)."""

from aioixy.cli.main import EPILOG, EXIT_DEVICE, EXIT_JOB_DIED, main

__all__ = ["EPILOG", "EXIT_DEVICE", "EXIT_JOB_DIED", "main"]
