"""Runs inside the test VM: executes what the host asks over the virtio-serial channel.

One JSON object per line in each direction (stdlib only; started with -I -S by guest_init.sh):
  {"kind": "ping"}                                   -> {"kind": "pong", "uptime": s}
  {"kind": "run", "id": n, "argv": [...], "timeout": s, "env": {...}}
                                                     -> {"kind": "done", "id": n, "rc": int,
                                                         "out": b64, "err": b64}
  {"kind": "spawn", "id": n, "argv": [...], "log": path}  -> {"kind": "spawned", "id": n, "pid": p}
  {"kind": "signal", "id": n, "pid": p, "sig": k}    -> {"kind": "signalled", "id": n}
  {"kind": "reap", "id": n, "pid": p, "timeout": s}  -> {"kind": "reaped", "id": n, "rc": int|null}
  {"kind": "halt"}                                   -> {"kind": "bye"}, then the VM powers off
Lines that do not parse are ignored: the host repeats its first ping until the guest has opened
the port, and the guest kernel drops whatever arrived before that, possibly mid-line.
"""

import base64
import json
import os
import subprocess
import sys
import time


def main() -> int:
    chan, cwd = sys.argv[1], sys.argv[2]
    fd = os.open(chan, os.O_RDWR)
    pending = b""
    children: dict[int, subprocess.Popen] = {}

    def send(msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    while True:
        while b"\n" not in pending:
            chunk = os.read(fd, 65536)
            if not chunk:  # nobody connected on the host side yet
                time.sleep(0.05)
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        try:
            req = json.loads(line)
        except ValueError:
            continue
        kind = req.get("kind")
        env = dict(os.environ, **req.get("env", {}))
        if kind == "ping":
            with open("/proc/uptime") as f:
                send({"kind": "pong", "uptime": float(f.read().split()[0])})
        elif kind == "run":
            try:
                p = subprocess.run(req["argv"], cwd=req.get("cwd") or cwd, env=env,
                                   stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=req.get("timeout"))
                rc, out, err = p.returncode, p.stdout, p.stderr
            except subprocess.TimeoutExpired as e:
                rc, out = 124, e.stdout or b""
                err = (e.stderr or b"") + f"\nagent: timed out after {e.timeout}s\n".encode()
            except OSError as e:
                rc, out, err = 127, b"", f"agent: {e}\n".encode()
            send({"kind": "done", "id": req["id"], "rc": rc, "out": b64(out), "err": b64(err)})
        elif kind == "spawn":
            log = open(req["log"], "wb")  # noqa: SIM115 - the child keeps it
            p = subprocess.Popen(req["argv"], cwd=req.get("cwd") or cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            log.close()
            children[p.pid] = p
            send({"kind": "spawned", "id": req["id"], "pid": p.pid})
        elif kind == "signal":
            p = children.get(req["pid"])
            if p is not None and p.poll() is None:
                os.kill(p.pid, req["sig"])
            send({"kind": "signalled", "id": req["id"]})
        elif kind == "reap":
            p = children.get(req["pid"])
            rc = None
            if p is not None:
                try:
                    rc = p.wait(req.get("timeout"))
                    del children[req["pid"]]
                except subprocess.TimeoutExpired:
                    rc = None
            send({"kind": "reaped", "id": req["id"], "rc": rc})
        elif kind == "halt":
            for p in children.values():
                if p.poll() is None:
                    p.kill()
            send({"kind": "bye"})
            return 0


if __name__ == "__main__":
    sys.exit(main())
