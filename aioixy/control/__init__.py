"""HTTP control plane for an aioixy process (needs the ``http`` extra: aiohttp, prometheus-client).

    control = ControlPlane()
    control.add_port(port)
    async with serving(make_app(control), "127.0.0.1", 8080) as url:
        ...  # packet IO runs on this same loop

Endpoints: see docs/control-plane.md, or GET /api/openapi.json.
"""

from aioixy.control.app import DEFAULT_HOST, ApiError, make_app, parse_hostport, serving
from aioixy.control.firewall import Rule, RuleError, RuleSet
from aioixy.control.pktgen import PktgenControl
from aioixy.control.state import ControlPlane

__all__ = ["DEFAULT_HOST", "ApiError", "ControlPlane", "PktgenControl", "Rule", "RuleError",
           "RuleSet", "make_app", "parse_hostport", "serving"]
