"""Helpers for testing drivers and network functions: numbered traffic and the sequence checks
every driver is held to (:mod:`aioixy.testing.sequence`), and the pytest plugin
(:mod:`aioixy.testing.pytest_plugin`, loaded by pytest through its entry point)."""

from aioixy.testing.sequence import (
    MAX_FRAME,
    MIN_FRAME,
    SEQ_OFFSET,
    SequenceReport,
    check_frame,
    fill,
    frame_seq,
    make_frame,
    receive_sequence,
    send_sequence,
    sizes_for,
    transfer,
)

__all__ = [
    "MAX_FRAME", "MIN_FRAME", "SEQ_OFFSET", "SequenceReport", "check_frame", "fill",
    "frame_seq", "make_frame", "receive_sequence", "send_sequence", "sizes_for", "transfer",
]
