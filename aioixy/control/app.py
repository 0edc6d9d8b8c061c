"""The aiohttp application: routes, JSON errors, and serving it beside the packet IO.

Handlers run on the event loop that owns the ports (a Port belongs to the loop that opened it),
and each one does a few native stats calls at most, so the control plane interleaves with the
rx/tx coroutines instead of needing a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry

from aioixy.control import events, metrics
from aioixy.control.dashboard import dashboard
from aioixy.control.openapi import SPEC
from aioixy.control.pktgen import PktgenControl, PktgenError
from aioixy.control.security import (
    GUARD,
    MAX_BODY,
    MAX_DEPTH,
    Guard,
    Refused,
    check_token,
    json_depth_ok,
)
from aioixy.control.snapshot import port_info
from aioixy.control.state import ControlPlane
from aioixy.ops.rules import RuleError, RuleLimit, RuleSet

CONTROL = web.AppKey("aioixy_control", ControlPlane)
_REGISTRY = web.AppKey("aioixy_metrics_registry", CollectorRegistry)

DEFAULT_HOST = "127.0.0.1"
_log = logging.getLogger("aioixy.control")


class ApiError(Exception):
    """Becomes ``{"error": message}`` with the given 4xx status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, Refused) as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return web.json_response(
            {"error": f"method {exc.method} is not allowed on {request.path} "
                      f"(allowed: {allowed})"}, status=405)
    except web.HTTPNotFound:
        return web.json_response(
            {"error": f"no such endpoint: {request.method} {request.path} "
                      "(see /api/openapi.json)"}, status=404)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.text or exc.reason}, status=exc.status)
    except Exception:
        # a bug, not the client's fault; still an answer the client can parse
        _log.exception("control plane: %s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error (logged by the server)"},
                                 status=500)


@web.middleware
async def _guarded(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[GUARD].check(request)
    return await handler(request)


async def _body(request: web.Request) -> dict[str, Any]:
    # only a declared JSON body is parsed as JSON: a cross-origin page can send text/plain
    # without a preflight, but not application/json
    if request.content_type != "application/json":
        raise ApiError(415, f"Content-Type {request.content_type!r} is not accepted: send "
                            "the body as application/json")
    raw = await request.read()  # at most MAX_BODY bytes (client_max_size): 413 beyond
    if not raw.strip():
        raise ApiError(400, "request body is empty: expected a JSON object")
    if not json_depth_ok(raw):
        raise ApiError(400, f"request body nests deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(body).__name__}")
    return body


def _control(request: web.Request) -> ControlPlane:
    return request.app[CONTROL]


def _pktgen(request: web.Request) -> PktgenControl:
    pg = _control(request).pktgen
    if pg is None:
        raise ApiError(404, "no pktgen job is registered with this control plane")
    return pg


def _firewall(request: web.Request) -> RuleSet:
    fw = _control(request).firewall
    if fw is None:
        raise ApiError(404, "no firewall is registered with this control plane")
    return fw


def _rule_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"rule id {raw!r} is not an integer") from None


async def list_ports(request: web.Request) -> web.Response:
    ports = _control(request).ports
    return web.json_response({"ports": [port_info(n, p) for n, p in list(ports.items())]})


async def get_port(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ports = _control(request).ports
    port = ports.get(name)
    if port is None:
        known = ", ".join(ports) or "none"
        raise ApiError(404, f"unknown port {name!r} (known: {known})")
    return web.json_response(port_info(name, port))


async def get_pktgen(request: web.Request) -> web.Response:
    return web.json_response(_pktgen(request).to_json())


async def put_pktgen(request: web.Request) -> web.Response:
    pg = _pktgen(request)
    body = await _body(request)
    try:
        return web.json_response(pg.apply(body))
    except PktgenError as exc:
        raise ApiError(400, str(exc)) from None


async def list_rules(request: web.Request) -> web.Response:
    return web.json_response(_firewall(request).to_json())


async def add_rule(request: web.Request) -> web.Response:
    fw = _firewall(request)
    body = await _body(request)
    try:
        rule = fw.add(body)
    except RuleLimit as exc:
        raise ApiError(409, str(exc)) from None
    except RuleError as exc:
        raise ApiError(400, str(exc)) from None
    return web.json_response({**rule.to_json(), "hits": 0}, status=201)


def _known_rule(fw: RuleSet, rule_id: int) -> None:
    try:
        fw.get(rule_id)
    except KeyError:
        known = ", ".join(str(r.id) for r in fw) or "none"
        raise ApiError(404, f"unknown rule id {rule_id} (rules: {known})") from None


async def get_rule(request: web.Request) -> web.Response:
    fw, rule_id = _firewall(request), _rule_id(request)
    _known_rule(fw, rule_id)
    return web.json_response({**fw.get(rule_id).to_json(), "hits": fw.hits[rule_id]})


async def delete_rule(request: web.Request) -> web.Response:
    fw, rule_id = _firewall(request), _rule_id(request)
    _known_rule(fw, rule_id)
    hits = fw.hits[rule_id]
    return web.json_response({**fw.remove(rule_id).to_json(), "hits": hits})


async def get_metrics(request: web.Request) -> web.Response:
    body = metrics.render(request.app[_REGISTRY])
    # the exact type prometheus_client's renderer goes with (it names the format version)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


def make_app(control: ControlPlane | None = None, *, token: str | None = None) -> web.Application:
    """The control plane for `control` (a fresh, empty one if None).

    Serve it with :func:`serving`, which tells it the address it listens on; an app served
    some other way is treated as bound to loopback (reads without the token).

    `token` (generated if None; read it back with :func:`token_of`) must accompany every
    request that changes state, and every request once the app is served beyond loopback.
    """
    control = control if control is not None else ControlPlane()
    guard = Guard() if token is None else Guard(token=check_token(token))
    app = web.Application(middlewares=[_json_errors, _guarded], client_max_size=MAX_BODY)
    app[GUARD] = guard
    app[CONTROL] = control
    app[_REGISTRY] = metrics.make_registry(control)
    app[events.HUB] = events.EventHub(control)
    app.cleanup_ctx.append(events.hub_ctx)
    app.on_shutdown.append(events.on_shutdown)
    r = app.router
    r.add_get("/", dashboard)
    r.add_get("/metrics", get_metrics)
    r.add_get("/api/ports", list_ports)
    r.add_get("/api/ports/{name}", get_port)
    r.add_get("/api/pktgen", get_pktgen)
    r.add_put("/api/pktgen", put_pktgen)
    r.add_get("/api/firewall/rules", list_rules)
    r.add_post("/api/firewall/rules", add_rule)
    r.add_get("/api/firewall/rules/{id}", get_rule)
    r.add_delete("/api/firewall/rules/{id}", delete_rule)
    r.add_get("/api/events", events.events)
    r.add_get("/api/openapi.json", openapi)
    return app


def token_of(app: web.Application) -> str:
    """The token requests to `app` must carry."""
    return app[GUARD].token


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (localhost) or ``[V6ADDR]:PORT``; ValueError says why not."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free)")
    host = host.strip("[]") or DEFAULT_HOST
    return host, int(port)


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = DEFAULT_HOST,
                  port: int = 0) -> AsyncIterator[str]:
    """Serve `app` on the running loop; yields its base URL (with the real port if 0).

    Bound beyond loopback, the app requires its token on every request (see security.py).
    """
    app[GUARD].bound(host)
    # a short shutdown timeout: live event streams are ended by on_shutdown, and nothing else
    # the control plane serves takes long
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0,
                           logger=_ClientErrorsQuiet(logging.getLogger("aiohttp.server"), {}))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{shown}:{bound_port}"
    finally:
        await runner.cleanup()


class _ClientErrorsQuiet(logging.LoggerAdapter):
    """aiohttp's server logger, except that a request aiohttp cannot parse (the client's fault:
    bytes that may not appear in a URL or header) is logged at debug level, as aiohttp already
    does for an unknown method. Otherwise every such request, unauthenticated, writes a
    traceback to the log."""

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.debug(msg, *args, exc_info=exc_info, **kwargs)
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)
