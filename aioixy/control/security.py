"""Who may use the control plane: a token, Host and Origin checks, JSON-only bodies, limits.

The API can pause traffic and rewrite firewall rules, and it usually runs on a developer's
machine beside a web browser. The threats that shaped this module:

- a web page the user visits POSTs to ``127.0.0.1:PORT`` (a "simple" cross-origin request:
  text/plain, no CORS preflight, so the browser sends it without asking);
- DNS rebinding: a page's own host name is re-pointed at 127.0.0.1, making the API
  same-origin for that page (the Host header still carries the attacker's name);
- a bind beyond loopback (``--http 0.0.0.0:8080``) reachable by anyone on the network.

Hence: every mutating request carries the token (a header, never a cookie, so a browser cannot
add it on another page's behalf); on a non-loopback bind every request does; the Host header
must name this server; an Origin header, when a browser sends one, must be this server's own;
bodies are JSON only when declared ``application/json`` (which a cross-origin page cannot send
without a preflight this server never grants), bounded in size and nesting.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from urllib.parse import urlsplit

import attrs
from aiohttp import web

#: request headers that carry the token (``Authorization: Bearer TOKEN`` or this one)
TOKEN_HEADER = "X-Aioixy-Token"
#: read-only requests (the dashboard page, its event stream) may also carry it as ``?token=``
#: or in this cookie, which ``GET /?token=...`` sets: EventSource cannot send headers
TOKEN_QUERY = "token"
TOKEN_COOKIE = "aioixy_token"
#: environment variable the CLI reads a user-chosen token from
TOKEN_ENV = "AIOIXY_HTTP_TOKEN"
#: request bodies larger than this are refused with 413 before they are parsed
MAX_BODY = 64 * 1024
#: JSON nested deeper than this is refused with 400 (json.loads would recurse until it fails)
MAX_DEPTH = 16
#: shortest token a user may choose: a guessable token is no protection
MIN_TOKEN_LENGTH = 16

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class Refused(Exception):
    """A request the guard turns away; becomes ``{"error": message}`` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe), as Jupyter does for its servers."""
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """A user-given token, if it is long enough and fits in a header; ValueError says why not."""
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the control plane token must be at least {MIN_TOKEN_LENGTH} "
                         "characters (or leave it out and one is generated)")
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in token):
        raise ValueError("the control plane token must be printable ASCII without spaces")
    return token


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """The host part of a Host header value (``name:port``, ``[v6]:port``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


@attrs.define
class Guard:
    """The access policy of one application; ``serving`` tells it where it was bound."""

    token: str = attrs.field(factory=new_token)
    #: names (besides the loopback ones) the Host header may carry
    hosts: set[str] = attrs.field(factory=set)
    #: bound beyond loopback: every request needs the token
    public: bool = False
    #: bound to every address (0.0.0.0, ::): the server may be reached by any name, so the Host
    #: check is left to the token (required everywhere in that case)
    any_host: bool = False

    def bound(self, host: str) -> None:
        """Record the address the server listens on (called by ``serving``)."""
        if is_loopback(host):
            self.hosts.add(host.lower())
            return
        self.public = True
        if _is_wildcard(host):
            self.any_host = True
        else:
            self.hosts.update({host.lower(), socket.gethostname().lower()})

    def check(self, request: web.Request) -> None:
        """Raise Refused unless the request may proceed."""
        self._check_host(request)
        self._check_origin(request)
        mutating = request.method not in _SAFE_METHODS
        if mutating or self.public:
            self._check_token(request, header_only=mutating)

    def _check_host(self, request: web.Request) -> None:
        if self.any_host:
            return
        raw = request.headers.get("Host", "")
        name = _host_name(raw)
        if name not in _LOOPBACK_NAMES and name not in self.hosts:
            raise Refused(403, f"Host {raw!r} is not this server's name: use "
                               "http://127.0.0.1:PORT/ or http://localhost:PORT/ (requests "
                               "for other names are refused to stop DNS rebinding)")

    def _check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser, or a same-origin GET: nothing to compare
            return
        parts = urlsplit(origin)
        own = request.headers.get("Host", "").lower()
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != own:
            raise Refused(403, f"cross-origin request from {origin!r} refused: the control "
                               "plane only answers pages it served itself")

    def _check_token(self, request: web.Request, header_only: bool) -> None:
        given = _header_token(request)
        if given is None and not header_only:
            given = request.query.get(TOKEN_QUERY) or request.cookies.get(TOKEN_COOKIE)
        if given is None:
            where = "every request to a control plane bound beyond localhost" \
                if self.public and not header_only else "requests that change state"
            raise Refused(401, f"missing token: {where} must send 'Authorization: Bearer "
                               f"TOKEN' or '{TOKEN_HEADER}: TOKEN' (the token is printed when "
                               "the control plane starts)")
        if not same_token(given, self.token):
            raise Refused(403, "wrong token")


GUARD = web.AppKey("aioixy_guard", Guard)


def same_token(given: str, token: str) -> bool:
    """Whether a token a request carried is ours, in constant time.

    aiohttp hands over header bytes that are not UTF-8 as surrogate escapes, which a plain
    ``encode()`` refuses (a 500 and a logged traceback per request: an unauthenticated log
    flood). Encoded back to the bytes the client sent, they simply do not match."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _header_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get(TOKEN_HEADER)


def json_depth_ok(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether no array/object in `raw` nests deeper than `limit` (strings are skipped)."""
    depth = 0
    in_string = escaped = False
    for c in raw:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif c in (0x5D, 0x7D):
            depth -= 1
    return True


def set_token_cookie(request: web.Request, response: web.StreamResponse, guard: Guard) -> None:
    """After ``GET /?token=...`` with the right token: remember it for the page's own reads."""
    given = request.query.get(TOKEN_QUERY)
    if given is not None and same_token(given, guard.token):
        # HttpOnly: page scripts never need it; Strict: no other site's request carries it
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="Strict", path="/")


def token_url(url: str, token: str) -> str:
    """The dashboard address with the token in it, as printed at start (Jupyter-style)."""
    return f"{url}/?{TOKEN_QUERY}={token}"
