"""What a control plane serves: a registry of ports and optional pktgen / firewall components."""

from __future__ import annotations

import attrs

from aioixy.control.pktgen import PktgenControl
from aioixy.core.port import Port
from aioixy.jobs.job import Job
from aioixy.ops.rules import RuleSet


@attrs.define
class ControlPlane:
    """The components an application registers; the HTTP handlers only read through this.

    Ports may be added after the server started (the CLI opens them after binding), and closed
    ports stay listed (as closed) until removed, so a scrape never fails because a job ended.
    """

    ports: dict[str, Port] = attrs.field(factory=dict)
    pktgen: PktgenControl | None = None
    firewall: RuleSet | None = None
    #: seconds between live updates on /api/events
    interval: float = 0.5
    #: the job this control plane serves beside (its name and whether it still runs are in
    #: every live update, so the dashboard can say what it shows and when it ended)
    job: Job | None = None

    def add_port(self, port: Port, name: str | None = None) -> None:
        self.ports[name or port.name] = port

    def remove_port(self, name: str) -> None:
        self.ports.pop(name, None)
