"""HTTP control plane for an aioixy process (needs the ``http`` extra: aiohttp, prometheus-client).

    control = ControlPlane()
    control.add_port(port)
    async with serving(make_app(control), "127.0.0.1", 8080) as url:
        ...  # packet IO runs on this same loop

Endpoints: see docs/control-plane.md, or GET /api/openapi.json.
"""

from aioixy.control.app import (
    DEFAULT_HOST,
    ApiError,
    make_app,
    parse_hostport,
    serving,
    token_of,
)
from aioixy.control.pktgen import PktgenControl
from aioixy.control.security import TOKEN_ENV, TOKEN_HEADER, token_url
from aioixy.control.state import ControlPlane
from aioixy.ops.rules import MAX_RULES, Rule, RuleError, RuleLimit, RuleSet

__all__ = ["DEFAULT_HOST", "MAX_RULES", "TOKEN_ENV", "TOKEN_HEADER", "ApiError", "ControlPlane",
           "PktgenControl", "Rule", "RuleError", "RuleLimit", "RuleSet", "make_app",
           "parse_hostport", "serving", "token_of", "token_url"]
