"""The OpenAPI 3 description of the control plane (hand-written; a test checks it against the
router, so a route cannot be added without being described)."""

from __future__ import annotations

from typing import Any


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_ERR = {"description": "what is wrong with the request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "port name as listed by /api/ports (e.g. null, pair:lab:a)"}
_RULE_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_NULLABLE_STR = {"type": "string", "nullable": True}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "aioixy control plane", "version": "1",
             "description": "Ports, pktgen rate, firewall rules, metrics and live stats of an "
                            "aioixy process, served from the packet IO's own event loop. "
                            "Requests that change state need the token (printed at start) "
                            "as a bearer token or in X-Aioixy-Token; on a bind beyond loopback "
                            "every request does (reads may also use ?token= or the "
                            "aioixy_token cookie). The Host header must name the server; an "
                            "Origin header must be the server's own; bodies are "
                            "application/json, at most 64 KiB, nested at most 16 deep."},
    "paths": {
        "/": {"get": {"summary": "HTML dashboard with live rx/tx rate charts per port",
                      "responses": {"200": {"description": "the page",
                                            "content": {"text/html": {}}}}}},
        "/metrics": {"get": {"summary": "Prometheus text exposition of port, queue, pktgen and "
                                        "firewall counters (read at scrape time)",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {}}}}}},
        "/api/ports": {"get": {"summary": "all registered ports",
                               "responses": {"200": {
                                   "description": "ports",
                                   "content": {"application/json": {"schema": {
                                       "type": "object", "properties": {"ports": {
                                           "type": "array",
                                           "items": {"$ref": "#/components/schemas/Port"}}}}}}}}}},
        "/api/ports/{name}": {"get": {"summary": "one port", "parameters": [_NAME],
                                      "responses": {"200": _json("Port", "the port"),
                                                    "404": _ERR}}},
        "/api/pktgen": {
            "get": {"summary": "the pktgen job: rate, running, counters",
                    "responses": {"200": _json("Pktgen", "state"), "404": _ERR}},
            "put": {"summary": "retune the rate and/or pause (running=false) / resume",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/PktgenUpdate"}}}},
                    "responses": {"200": _json("Pktgen", "new state"), "400": _ERR,
                                  "404": _ERR}}},
        "/api/firewall/rules": {
            "get": {"summary": "rules in match order (first match wins) and hit counts",
                    "responses": {"200": _json("RuleSet", "rules"), "404": _ERR}},
            "post": {"summary": "append a rule; takes effect from the next packet",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/RuleSpec"}}}},
                     "responses": {"201": _json("Rule", "the new rule"), "400": _ERR,
                                   "404": _ERR}}},
        "/api/firewall/rules/{id}": {
            "get": {"summary": "one rule", "parameters": [_RULE_ID],
                    "responses": {"200": _json("Rule", "the rule"), "400": _ERR, "404": _ERR}},
            "delete": {"summary": "remove a rule", "parameters": [_RULE_ID],
                       "responses": {"200": _json("Rule", "the removed rule"), "400": _ERR,
                                     "404": _ERR}}},
        "/api/events": {"get": {
            "summary": "server-sent events: 'stats' every interval (0.5 s) with per-port "
                       "rx/tx packets, bytes, drops and rates",
            "responses": {"200": {"description": "an endless event stream",
                                  "content": {"text/event-stream": {"schema": {
                                      "$ref": "#/components/schemas/StatsEvent"}}}}}}},
        "/api/openapi.json": {"get": {"summary": "this document",
                                      "responses": {"200": {"description": "OpenAPI 3",
                                                            "content": {"application/json": {}}}}}},
    },
    "components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "the token printed at start (or --http-token)"},
        "tokenHeader": {"type": "apiKey", "in": "header", "name": "X-Aioixy-Token"},
    }, "schemas": {
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}}},
        "Port": {"type": "object", "properties": {
            "name": {"type": "string"}, "device": {"type": "string"},
            "driver": {"type": "string"}, "mac": {"type": "string"},
            "closed": {"type": "boolean"}, "rx_queues": {"type": "integer"},
            "tx_queues": {"type": "integer"},
            "config": {"type": "object", "description": "the PortConfig it was opened with"},
            "link": {"type": "object", "properties": {"up": {"type": "boolean"},
                                                      "speed_mbps": {"type": "integer"}}},
            "stats": {"type": "object", "description": "PortStats totals plus 'device'"},
            "queues": {"type": "array", "items": {"type": "object"},
                       "description": "QueueStats per queue"}}},
        "Pktgen": {"type": "object", "properties": {
            "port": {"type": "string"}, "running": {"type": "boolean"},
            "rate": {"type": "number", "nullable": True}, "size": {"type": "integer"},
            "packets": {"type": "integer"}, "bytes": {"type": "integer"},
            "finished": {"type": "boolean"},
            "frame": {"$ref": "#/components/schemas/Frame"}}},
        "Frame": {"type": "object", "additionalProperties": False,
                  "description": "what pktgen sends (aioixy.FrameSpec); flow f adds f to the "
                                 "field named by 'vary'",
                  "properties": {
                      "dst_mac": {"type": "string", "example": "02:00:00:00:00:02"},
                      "src_mac": {"type": "string", "nullable": True},
                      "src_ip": {"type": "string", "example": "198.18.0.1"},
                      "dst_ip": {"type": "string", "example": "198.18.0.2"},
                      "sport": {"type": "integer", "minimum": 0, "maximum": 65535},
                      "dport": {"type": "integer", "minimum": 0, "maximum": 65535},
                      "size": {"oneOf": [{"type": "integer"},
                                         {"type": "array", "items": {"type": "integer"},
                                          "minItems": 2, "maxItems": 2}]},
                      "flows": {"type": "integer", "minimum": 1},
                      "vary": {"type": "string", "enum": ["sport", "dport", "src-ip", "dst-ip"]},
                      "timestamp": {"type": "boolean"}, "udp_checksum": {"type": "boolean"},
                      "seq": {"type": "boolean", "readOnly": True},
                      "seed": {"type": "integer", "readOnly": True}}},
        "PktgenUpdate": {"type": "object", "minProperties": 1, "additionalProperties": False,
                         "properties": {
                             "rate": {"type": "number", "exclusiveMinimum": 0, "nullable": True,
                                      "description": "packets/s; null for no limit"},
                             "running": {"type": "boolean"},
                             "frame": {"$ref": "#/components/schemas/Frame"}}},
        "RuleSpec": {"type": "object", "required": ["action"], "additionalProperties": False,
                     "properties": {
                         "action": {"type": "string", "enum": ["allow", "deny"]},
                         "src": {**_NULLABLE_STR, "example": "10.1.0.0/16"},
                         "dst": {**_NULLABLE_STR, "example": "198.18.0.0/15"},
                         "proto": {"oneOf": [{"type": "string", "enum": ["icmp", "tcp", "udp"]},
                                             {"type": "integer", "minimum": 0, "maximum": 255}],
                                   "nullable": True},
                         "dport": {"type": "integer", "minimum": 0, "maximum": 65535,
                                   "nullable": True,
                                   "description": "needs proto tcp or udp"}}},
        "Rule": {"allOf": [{"$ref": "#/components/schemas/RuleSpec"},
                           {"type": "object", "properties": {"id": {"type": "integer"},
                                                             "hits": {"type": "integer"}}}]},
        "RuleSet": {"type": "object", "properties": {
            "default": {"type": "string", "enum": ["allow", "deny"]},
            "default_hits": {"type": "integer"},
            "rules": {"type": "array", "items": {"$ref": "#/components/schemas/Rule"}}}},
        "StatsEvent": {"type": "object", "properties": {
            "seq": {"type": "integer"}, "time": {"type": "number"},
            "ports": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                k: {"type": "number"} for k in (
                    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_dropped",
                    "rx_missed", "tx_dropped", "rx_pps", "tx_pps", "rx_bps", "tx_bps")}}}}},
    }},
}


_TOKEN_ERRORS = {"401": {**_ERR, "description": "no token"},
                 "403": {**_ERR, "description": "wrong token, or a foreign Host or Origin"}}
_BODY_ERRORS = {"413": {**_ERR, "description": "body over 64 KiB"},
                "415": {**_ERR, "description": "body not sent as application/json"}}


def _secure(spec: dict[str, Any]) -> None:
    """Mark every operation that changes state as needing the token, with its error answers."""
    for ops in spec["paths"].values():
        for method, op in ops.items():
            if method in ("put", "post", "delete"):
                op["security"] = [{"bearer": []}, {"tokenHeader": []}]
                op["responses"].update(_TOKEN_ERRORS)
                if "requestBody" in op:
                    op["responses"].update(_BODY_ERRORS)
    spec["paths"]["/api/firewall/rules"]["post"]["responses"]["409"] = {
        **_ERR, "description": "the rule set is full (MAX_RULES, 1024 by default)"}


_secure(SPEC)
