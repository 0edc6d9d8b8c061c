"""The long-running jobs behind the ``aioixy`` command, the control plane and the examples:
pktgen, fwd, dump, replay, the demo.

Each is a coroutine taking open ports and a :class:`Job` (the shared stop flag and counters), so
the CLI, the control plane, the examples and the tests run the very same code.
"""

from aioixy.jobs.capture import dump, load_pcap, replay
from aioixy.jobs.forward import forward
from aioixy.jobs.job import Job
from aioixy.jobs.pktgen import pktgen
from aioixy.jobs.rate import RateLimiter, check_rate
from aioixy.jobs.send import send_frames
from aioixy.jobs.stopping import stop_on_signals, until_stopped

__all__ = ["Job", "RateLimiter", "check_rate", "dump", "forward", "load_pcap", "pktgen",
           "replay", "send_frames", "stop_on_signals", "until_stopped"]
