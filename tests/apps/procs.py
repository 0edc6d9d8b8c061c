"""Running the CLI and the examples as real processes, reading their output as it comes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


class Proc:
    """A background process whose stdout and stderr lines are queued by reader threads."""

    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.err_seen: list[str] = []
        #: set once stdout reached its end (the process closed it: everything is queued)
        self.out_closed = threading.Event()
        threading.Thread(target=self._pump, args=(self.p.stdout, self.out, self.out_closed),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err, None),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, q: queue.Queue[str], done: threading.Event | None) -> None:
        for line in stream:
            q.put(line.rstrip("\n"))
        if done is not None:
            done.set()

    def line(self, q: queue.Queue[str] | None = None, timeout: float = 15) -> str:
        try:
            line = (q or self.out).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s; stderr: {self.stderr()}") from None
        return line

    def wait_line(self, prefix: str, q: queue.Queue[str] | None = None,
                  timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(q, max(0.1, deadline - time.monotonic()))
            if q is self.err:
                self.err_seen.append(line)
            if line.startswith(prefix):
                return line

    def stderr(self) -> str:
        while not self.err.empty():
            self.err_seen.append(self.err.get_nowait())
        return "\n".join(self.err_seen)

    def interrupt(self, timeout: float = 15) -> int:
        self.p.send_signal(signal.SIGINT)
        return self.p.wait(timeout)

    def rest(self) -> list[str]:
        lines = []
        while not self.out.empty():
            lines.append(self.out.get_nowait())
        return lines

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def control_url(line: str) -> tuple[str, str]:
    """(base URL, token) from the printed "... on http://HOST:PORT/?token=TOKEN" line."""
    parts = urllib.parse.urlsplit(line.split(" on ", 1)[1] if " on " in line
                                  else line.split(": ", 1)[1])
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    return f"{parts.scheme}://{parts.netloc}", token


def http(method: str, url: str, body: object = None, token: str | None = None
         ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            status = r.status
            ctype = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raw, status, ctype = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()
