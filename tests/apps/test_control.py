"""The HTTP control plane through aiohttp's test client: JSON API, errors, OpenAPI, metrics, SSE."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

import pytest
from aiohttp import test_utils
from prometheus_client.parser import text_string_to_metric_families

import aioixy
from aioixy import jobs
from aioixy.control import ControlPlane, make_app, parse_hostport, serving
from aioixy.control.openapi import SPEC
from aioixy.testing import make_frame
from aioixy.testing.pytest_plugin import collect, inject

pytestmark = pytest.mark.usefixtures("no_leaks")


async def _traffic(a: aioixy.Port, b: aioixy.Port, stop: asyncio.Event) -> int:
    """Send numbered frames a -> b and drain b until stop; returns frames sent."""
    async def drain() -> None:
        async for batch in b.rx():
            batch.release()

    drainer = asyncio.create_task(drain())
    sent = 0
    try:
        while not stop.is_set():
            await inject(a, [make_frame(sent + i) for i in range(32)])
            sent += 32
            await asyncio.sleep(0.002)
    finally:
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer
    return sent


async def test_ports_show_identity_config_link_and_counters(plane):
    client = plane.client
    a = plane.a
    b = plane.b
    await inject(a, [make_frame(i, 100) for i in range(10)])
    assert len(await collect(b, 10)) == 10
    r = await client.get("/api/ports")
    assert r.status == 200
    ports = {p["name"]: p for p in (await r.json())["ports"]}
    assert set(ports) == {a.name, b.name}
    pa, pb = ports[a.name], ports[b.name]
    assert pa["driver"] == "pair" and pa["mac"] == a.mac and pb["mac"] == b.mac
    assert pa["link"] == {"up": True, "speed_mbps": a.link().speed_mbps}
    assert pa["config"]["batch_size"] == 32 and pa["config"]["flow_control"] is True
    assert pa["stats"]["tx_packets"] == 10 and pa["stats"]["tx_bytes"] == 1000
    assert pb["stats"]["rx_packets"] == 10 and pb["stats"]["rx_bytes"] == 1000
    assert pb["stats"]["device"]["rx_packets"] == 10
    assert [q["queue"] for q in pb["queues"]] == [0]
    assert pb["queues"][0]["rx_packets"] == 10
    r = await client.get(f"/api/ports/{b.name}")
    assert r.status == 200
    one = await r.json()
    assert one["name"] == b.name and one["stats"]["rx_packets"] == 10


async def test_a_closed_port_stays_listed_without_counters(plane):
    control = plane.control
    client = plane.client
    n = "pair:ctl-closed:a"
    extra = await aioixy.open(n)
    control.add_port(extra)
    await extra.aclose()
    r = await client.get(f"/api/ports/{n}")
    assert r.status == 200
    info = await r.json()
    assert info["closed"] is True and "stats" not in info
    assert (await client.get("/metrics")).status == 200


async def test_pktgen_rate_is_retuned_paused_and_resumed_over_http(plane):
    control = plane.control
    client = plane.client
    a = plane.a
    b = plane.b
    pg = control.pktgen
    gen = asyncio.create_task(jobs.pktgen(a, pg.job, limiter=pg.limiter, gen=pg.gen))
    stop = asyncio.Event()

    async def drain() -> None:
        async for batch in b.rx():
            batch.release()

    drainer = asyncio.create_task(drain())
    try:
        state = await (await client.get("/api/pktgen")).json()
        assert state["port"] == a.name and state["rate"] == 1000 and state["running"] is True
        r = await client.put("/api/pktgen", json={"rate": 20000})
        assert r.status == 200 and (await r.json())["rate"] == 20000
        assert pg.limiter.rate == 20000
        while pg.job.packets < 100:
            await asyncio.sleep(0.01)
        r = await client.put("/api/pktgen", json={"running": False})
        assert (await r.json())["running"] is False
        await asyncio.sleep(0.2)  # a batch already past the limiter may still go out
        paused_at = pg.job.packets
        await asyncio.sleep(0.3)
        assert pg.job.packets == paused_at
        r = await client.put("/api/pktgen", json={"running": True, "rate": None})
        assert (await r.json()) | {"packets": 0, "bytes": 0} == {
            "port": a.name, "running": True, "rate": None, "size": 60, "packets": 0,
            "bytes": 0, "finished": False, "frame": aioixy.FrameSpec().to_json()}
        while pg.job.packets <= paused_at:
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        pg.job.stop.set()
        for t in (gen, drainer):
            t.cancel()
        await asyncio.gather(gen, drainer, return_exceptions=True)


async def test_pktgen_frames_are_readdressed_over_http(plane):
    """A PUT of "frame" changes what the running job sends, from the next batch on."""
    client, a, b, pg = plane.client, plane.a, plane.b, plane.control.pktgen
    r = await client.put("/api/pktgen", json={"rate": None, "frame": {
        "dst_ip": "198.18.9.9", "dport": 53, "size": [70, 80], "flows": 3, "vary": "src-ip"}})
    state = await r.json()
    assert r.status == 200, state
    assert state["frame"] | {"src_mac": None} == aioixy.FrameSpec(
        dst_ip="198.18.9.9", dport=53, size=(70, 80), flows=3, vary="src-ip").to_json()
    gen = asyncio.create_task(jobs.pktgen(a, pg.job, count=300, limiter=pg.limiter,
                                          gen=pg.gen))
    got: list[tuple[int, int, int]] = []
    try:
        async for batch in b.rx():
            with batch:
                got += zip(batch.field("ip_dst"), batch.field("dport"), batch.field("ip_src"),
                           strict=True)
                sizes = list(batch.lengths())
                assert all(70 <= n <= 80 for n in sizes), sizes
                assert all(batch.l4_checksum_ok()) and all(batch.ipv4_checksum_ok())
            if len(got) >= 300:
                break
    finally:
        await gen
    assert {(int(d), int(p)) for d, p, _ in got} == {(0xC6120909, 53)}
    assert {int(s) for _, _, s in got} == {0xC6120001, 0xC6120002, 0xC6120003}
    for bad, says in [({"dst_ip": "300.1.1.1"}, "frame: dst_ip '300.1.1.1'"),
                      ({"size": 20}, "frame: size 20"),
                      ({"ttl": 3}, "frame: unknown field 'ttl'"),
                      ([1], "is not an object")]:
        r = await client.put("/api/pktgen", json={"rate": 5, "frame": bad})
        assert r.status == 400 and says in (await r.json())["error"]
    assert pg.limiter.rate is None  # a refused request changed nothing
    assert pg.gen.spec.dst_ip == "198.18.9.9"


async def test_firewall_rules_crud_and_hit_counts(plane):
    control = plane.control
    client = plane.client
    r = await client.post("/api/firewall/rules",
                          json={"action": "deny", "src": "198.18.0.0/24", "proto": "udp",
                                "dport": 5678})
    assert r.status == 201
    rule = await r.json()
    assert rule == {"id": 1, "action": "deny", "src": "198.18.0.0/24", "dst": None,
                    "proto": "udp", "dport": 5678, "hits": 0}
    r = await client.post("/api/firewall/rules", json={"action": "allow", "dst": "10.0.0.1"})
    assert (await r.json())["dst"] == "10.0.0.1/32"
    # the rule set is the one the packet path uses: judge frames like a firewall would
    frames = [make_frame(i) for i in range(5)]  # 198.18.0.1 -> .2, UDP dport 5678
    assert [control.firewall.allows(f) for f in frames] == [False] * 5
    listed = await (await client.get("/api/firewall/rules")).json()
    assert [x["id"] for x in listed["rules"]] == [1, 2]
    assert listed["rules"][0]["hits"] == 5 and listed["default"] == "allow"
    assert (await (await client.get("/api/firewall/rules/1")).json())["hits"] == 5
    r = await client.delete("/api/firewall/rules/1")
    assert r.status == 200 and (await r.json())["id"] == 1
    assert control.firewall.allows(frames[0])
    listed = await (await client.get("/api/firewall/rules")).json()
    assert [x["id"] for x in listed["rules"]] == [2] and listed["default_hits"] == 1


BAD_REQUESTS = [
    ("PUT", "/api/pktgen", "{rate: 5", 400, "not valid JSON"),
    ("PUT", "/api/pktgen", "", 400, "body is empty"),
    ("PUT", "/api/pktgen", "[1, 2]", 400, "must be a JSON object"),
    ("PUT", "/api/pktgen", "{}", 400, "missing field"),
    ("PUT", "/api/pktgen", '{"rate": -5}', 400, "rate -5"),
    ("PUT", "/api/pktgen", '{"rate": 0}', 400, "positive number"),
    ("PUT", "/api/pktgen", '{"rate": "fast"}', 400, "rate 'fast'"),
    ("PUT", "/api/pktgen", '{"rate": NaN}', 400, "positive number"),
    # issue 16: accepted before, then the job died of an OverflowError with the control plane
    ("PUT", "/api/pktgen", '{"rate": 1e308}', 400, "at most 1e+09 packets per second"),
    ("PUT", "/api/pktgen", '{"rate": 1000000001}', 400, "at most 1e+09"),
    ("PUT", "/api/pktgen", '{"running": "yes"}', 400, "running: 'yes'"),
    ("PUT", "/api/pktgen", '{"speed": 1}', 400, "unknown field 'speed'"),
    ("GET", "/api/ports/eth9", None, 404, "unknown port 'eth9'"),
    ("POST", "/api/firewall/rules", "{}", 400, "missing field 'action'"),
    ("POST", "/api/firewall/rules", "not json", 400, "not valid JSON"),
    ("POST", "/api/firewall/rules", '{"action": "drop"}', 400, "action: 'drop'"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "src": "10.0.0.300/8"}', 400,
     "src: '10.0.0.300/8' is not an IPv4 prefix"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "dst": 7}', 400, "dst: expected"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "dport": 53}', 400, "needs proto"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "proto": "sctp"}', 400, "proto: 'sctp'"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "proto": "udp", "dport": 70000}', 400,
     "dport: 70000"),
    ("POST", "/api/firewall/rules", '{"action": "deny", "port": 1}', 400, "unknown field 'port'"),
    ("GET", "/api/firewall/rules/99", None, 404, "unknown rule id 99"),
    ("DELETE", "/api/firewall/rules/99", None, 404, "unknown rule id 99"),
    ("GET", "/api/firewall/rules/abc", None, 400, "rule id 'abc' is not an integer"),
    ("GET", "/api/nothing", None, 404, "no such endpoint: GET /api/nothing"),
    ("POST", "/api/ports", "{}", 405, "method POST is not allowed on /api/ports"),
    ("DELETE", "/api/pktgen", None, 405, "allowed: GET, HEAD, PUT"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "says"), BAD_REQUESTS,
                         ids=[f"{m} {p} {b}" for m, p, b, _, _ in BAD_REQUESTS])
async def test_bad_requests_get_a_4xx_json_error_saying_what_is_wrong(plane, method, path,
                                                                      body, status, says):
    control = plane.control
    client = plane.client
    r = await client.request(method, path, data=body,
                             headers={"Content-Type": "application/json"})
    assert r.status == status
    assert r.content_type == "application/json"
    err = await r.json()
    assert set(err) == {"error"}
    assert says in err["error"]
    # nothing was changed by a rejected request
    assert control.pktgen.limiter.rate == 1000 and not control.pktgen.limiter.paused
    assert len(control.firewall) == 0


async def test_unregistered_components_are_404_with_a_reason(no_leaks):
    app = make_app(token="t" * 20)
    async with test_utils.TestClient(test_utils.TestServer(app),
                                     headers={"X-Aioixy-Token": "t" * 20}) as client:
        for method, path, body in [("GET", "/api/pktgen", None),
                                   ("PUT", "/api/pktgen", {"rate": 5}),
                                   ("GET", "/api/firewall/rules", None),
                                   ("POST", "/api/firewall/rules", {"action": "deny"}),
                                   ("DELETE", "/api/firewall/rules/1", None)]:
            r = await client.request(method, path, json=body)
            assert r.status == 404, path
            assert "is registered" in (await r.json())["error"]
        assert await (await client.get("/api/ports")).json() == {"ports": []}


def _route_table(app) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD beside every GET
            continue
        routes.add((route.resource.canonical, route.method.lower()))
    return routes


async def test_openapi_describes_every_route_and_only_routes(plane):
    client = plane.client
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec == json.loads(json.dumps(SPEC))
    assert spec["openapi"].startswith("3.")
    described = {(path, m) for path, ops in spec["paths"].items() for m in ops}
    assert described == _route_table(client.server.app)
    for path, ops in spec["paths"].items():
        for m, op in ops.items():
            assert op["summary"] and op["responses"], (path, m)
            params = {p["name"] for p in op.get("parameters", [])}
            assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
    # every $ref points at a schema that exists
    refs = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.update(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    schemas = spec["components"]["schemas"]
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)


async def test_metrics_parse_as_prometheus_text_with_real_counts(plane):
    control = plane.control
    client = plane.client
    a = plane.a
    b = plane.b
    await inject(a, [make_frame(i) for i in range(25)])
    frames = await collect(b, 25)
    for f in frames[:3]:
        control.firewall.allows(f)
    control.firewall.add({"action": "deny", "proto": "udp"})
    control.firewall.allows(frames[0])
    r = await client.get("/metrics")
    assert r.status == 200 and r.content_type == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(await r.text())}

    def value(family: str, sample: str, **labels: str) -> float:
        for s in families[family].samples:
            if s.name == sample and s.labels == labels:
                return s.value
        raise AssertionError(f"no {sample}{labels} in {families[family].samples}")

    assert families["aioixy_port_rx_packets"].type == "counter"
    assert value("aioixy_port_tx_packets", "aioixy_port_tx_packets_total", port=a.name) == 25
    assert value("aioixy_port_rx_packets", "aioixy_port_rx_packets_total", port=b.name) == 25
    assert value("aioixy_port_rx_bytes", "aioixy_port_rx_bytes_total", port=b.name) == 25 * 60
    assert value("aioixy_queue_rx_packets", "aioixy_queue_rx_packets_total", port=b.name,
                 queue="0") == 25
    assert value("aioixy_port_link_up", "aioixy_port_link_up", port=a.name) == 1
    st = b.stats()
    assert value("aioixy_port_pool_size_buffers", "aioixy_port_pool_size_buffers",
                 port=b.name) == st.pool_size
    assert value("aioixy_pktgen_rate_pps", "aioixy_pktgen_rate_pps") == 1000
    hits = "aioixy_firewall_rule_hits_total"
    assert value("aioixy_firewall_rule_hits", hits, rule="1", action="deny") == 1
    assert value("aioixy_firewall_rule_hits", hits, rule="default", action="allow") == 3


async def _sse_events(resp, count: int) -> list[dict]:
    events, data = [], None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and data is not None:
            events.append(data)
            data = None
            if len(events) == count:
                break
    return events


async def test_event_stream_delivers_increasing_counters_and_rates(plane):
    client = plane.client
    a = plane.a
    b = plane.b
    stop = asyncio.Event()
    traffic = asyncio.create_task(_traffic(a, b, stop))
    try:
        while b.stats().rx_packets == 0:
            await asyncio.sleep(0.01)
        resp = await client.get("/api/events")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = await asyncio.wait_for(_sse_events(resp, 5), 10)
        resp.close()
    finally:
        stop.set()
        sent = await traffic
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    rx = [e["ports"][b.name]["rx_packets"] for e in events]
    tx = [e["ports"][a.name]["tx_packets"] for e in events]
    assert all(x < y for x, y in itertools.pairwise(rx[1:])), rx
    assert all(x < y for x, y in itertools.pairwise(tx[1:])), tx
    assert rx[-1] <= sent
    assert all(e["ports"][b.name]["rx_pps"] > 0 for e in events[2:])
    assert set(events[-1]["ports"][a.name]) >= {"rx_pps", "tx_pps", "rx_bps", "tx_bps",
                                                 "rx_dropped"}


async def test_dashboard_is_one_self_contained_page(plane):
    client = plane.client
    r = await client.get("/")
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    assert "new EventSource(\"api/events\"" in page
    for element_id in ('id="status"', 'id="updates"', 'id="ports"'):
        assert element_id in page
    # no CDN, no external script or stylesheet
    assert "http://" not in page and "https://" not in page
    assert "<script src" not in page and "<link" not in page


async def test_serving_binds_localhost_and_stops_with_a_stream_open(no_leaks):
    import aiohttp

    control = ControlPlane(interval=0.05)
    async with serving(make_app(control)) as url:
        assert url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as s:
            resp = await s.get(url + "/api/events")
            first = await asyncio.wait_for(_sse_events(resp, 1), 5)
            assert first[0]["ports"] == {}
            # leaving `serving` with this stream still open must not hang the shutdown
    resp.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), (":0", ("127.0.0.1", 0)),
    ("[::1]:9000", ("::1", 9000)), ("0.0.0.0:80", ("0.0.0.0", 80))])
def test_parse_hostport(text, expected):
    assert parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:http", "h:70000", ""])
def test_parse_hostport_rejects(text):
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_hostport(text)


async def test_rate_limiter_retune_and_resume_wake_a_waiting_sender():
    lim = jobs.RateLimiter(0.2, 8)  # the first packet would be due in 5 s
    waiter = asyncio.create_task(lim.allow(4))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    lim.retune(None)
    assert await asyncio.wait_for(waiter, 2) == 4
    lim.pause()
    waiter = asyncio.create_task(lim.allow(4))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    lim.resume()
    assert await asyncio.wait_for(waiter, 2) == 4
    with pytest.raises(ValueError, match="positive"):
        lim.retune(-1)


# --- who may use the control plane (issue 10): one test per attack --------------------------

def _unchanged(plane) -> None:
    assert len(plane.control.firewall) == 0
    assert plane.control.pktgen.limiter.rate == 1000 and not plane.control.pktgen.limiter.paused


async def _refused(plane, method: str, path: str, status: int, says: str, *,
                   body: object = None, raw: str | None = None, **headers: str) -> None:
    """Send without the fixture's default token header (only what `headers` says)."""
    import aiohttp

    url = plane.client.make_url(path)
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    async with aiohttp.ClientSession() as s, \
            s.request(method, url, data=data, headers=headers) as r:
        assert r.status == status, await r.text()
        assert r.content_type == "application/json"
        err = await r.json()
    assert set(err) == {"error"} and says in err["error"], err
    _unchanged(plane)


async def test_attack_text_plain_post_without_preflight_is_refused(plane):
    # what a hostile web page can send cross-origin without asking: a "simple" request
    deny_all = '{"action": "deny"}'
    await _refused(plane, "POST", "/api/firewall/rules", 401, "missing token", raw=deny_all,
                   **{"Content-Type": "text/plain"})
    # even with the token, a body not declared application/json is not parsed as JSON
    await _refused(plane, "POST", "/api/firewall/rules", 415, "application/json",
                   raw=deny_all, **{"Content-Type": "text/plain",
                                    "Authorization": f"Bearer {plane.token}"})


async def test_attack_foreign_origin_is_refused_even_with_the_token(plane):
    for method, path, body in [("POST", "/api/firewall/rules", {"action": "deny"}),
                               ("PUT", "/api/pktgen", {"running": False}),
                               ("GET", "/api/ports", None)]:
        await _refused(plane, method, path, 403, "cross-origin", body=body,
                       **{"Content-Type": "application/json", "X-Aioixy-Token": plane.token,
                          "Origin": "http://evil.example"})
    # the page the server served itself may (same origin)
    host = f"127.0.0.1:{plane.client.port}"
    r = await plane.client.post("/api/firewall/rules", json={"action": "deny"},
                                headers={"Origin": f"http://{host}"})
    assert r.status == 201


async def test_attack_dns_rebinding_host_is_refused(plane):
    # the attacker's name re-pointed at 127.0.0.1: same-origin for the page, but not our name
    for method, path in [("GET", "/api/ports"), ("GET", "/"), ("GET", "/api/events"),
                         ("GET", "/metrics")]:
        await _refused(plane, method, path, 403, "DNS rebinding",
                       Host=f"rebind.evil.example:{plane.client.port}")
    await _refused(plane, "POST", "/api/firewall/rules", 403, "DNS rebinding",
                   body={"action": "deny"}, Host="rebind.evil.example",
                   **{"Content-Type": "application/json", "X-Aioixy-Token": plane.token})
    r = await plane.client.get("/api/ports", headers={"Host": f"localhost:{plane.client.port}"})
    assert r.status == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/firewall/rules", {"action": "deny"}),
    ("PUT", "/api/pktgen", {"rate": 5}),
    ("DELETE", "/api/firewall/rules/1", None)])
async def test_attack_mutating_request_without_token_is_refused(plane, method, path, body):
    plane.control.firewall.add({"action": "allow"})
    await plane.client.post("/api/firewall/rules", json={"action": "allow"})
    before = plane.control.firewall.to_json()
    ctype = {"Content-Type": "application/json"}
    plane.control.firewall = plane.control.firewall  # same object, checked below
    for headers, status, says in [
            (ctype, 401, "missing token"),
            ({**ctype, "Authorization": "Bearer nope"}, 403, "wrong token"),
            ({**ctype, "X-Aioixy-Token": plane.token[:-1]}, 403, "wrong token"),
            ({**ctype, "Authorization": f"Basic {plane.token}"}, 401, "missing token")]:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.request(
                method, plane.client.make_url(path),
                data=json.dumps(body) if body is not None else None, headers=headers) as r:
            assert r.status == status
            assert says in (await r.json())["error"]
    # a cookie is never enough for a change (a browser would send it on any page's behalf)
    async with aiohttp.ClientSession(cookies={"aioixy_token": plane.token}) as s, \
            s.request(method, plane.client.make_url(path), headers=ctype,
                      data=json.dumps(body) if body is not None else None) as r:
        assert r.status == 401
    assert plane.control.firewall.to_json() == before
    assert plane.control.pktgen.limiter.rate == 1000


async def test_reads_on_loopback_need_no_token(plane):
    import aiohttp

    async with aiohttp.ClientSession() as s:
        for path in ("/api/ports", "/api/firewall/rules", "/metrics", "/"):
            async with s.get(plane.client.make_url(path)) as r:
                assert r.status == 200, path


@pytest.mark.parametrize("body", [
    "[" * 30_000 + "]" * 30_000,  # within the size limit; json.loads would hit RecursionError
    '{"action": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
    '{"action": "deny", "src": ' + "[" * 20 + "]" * 20 + "}"])
async def test_attack_deeply_nested_json_is_a_json_400(plane, body):
    r = await plane.client.post("/api/firewall/rules", data=body,
                                headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.content_type == "application/json"
    assert "nests deeper than 16" in (await r.json())["error"]
    _unchanged(plane)


async def test_attack_huge_body_is_a_json_413(plane):
    body = '{"action": "deny", "src": "' + "1" * 200_000 + '"}'
    r = await plane.client.post("/api/firewall/rules", data=body,
                                headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.content_type == "application/json"
    assert "error" in await r.json()
    _unchanged(plane)


async def test_attack_too_many_rules_is_a_409_and_the_set_stays_bounded(plane):
    from aioixy.control import MAX_RULES, RuleSet

    assert RuleSet().max_rules == MAX_RULES == 1024  # the documented default
    plane.control.firewall = RuleSet(max_rules=3)
    for _ in range(3):
        assert (await plane.client.post("/api/firewall/rules", json={"action": "deny"})).status \
            == 201
    r = await plane.client.post("/api/firewall/rules", json={"action": "deny"})
    assert r.status == 409 and "rule set is full (3 rules)" in (await r.json())["error"]
    assert len(plane.control.firewall) == 3
    assert (await plane.client.delete("/api/firewall/rules/1")).status == 200
    assert (await plane.client.post("/api/firewall/rules", json={"action": "deny"})).status \
        == 201


async def test_attack_non_loopback_bind_requires_the_token_on_every_request(no_leaks):
    import aiohttp

    from aioixy.control import token_of, token_url

    app = make_app(ControlPlane(interval=0.05))
    token = token_of(app)
    async with serving(app, "0.0.0.0", 0) as url, aiohttp.ClientSession() as s:
        base = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
        for path in ("/", "/api/ports", "/api/events", "/metrics", "/api/openapi.json"):
            async with s.get(base + path) as r:
                assert r.status == 401, path
                assert "every request" in (await r.json())["error"]
            async with s.get(base + path, headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 403, path
        async with s.get(base + "/api/ports", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        # the printed address: the page with the token, which it passes to its event stream
        async with s.get(token_url(base, token)) as r:
            assert r.status == 200 and r.cookies["aioixy_token"].value == token
        async with s.get(f"{base}/api/events?token={token}") as r:
            assert r.status == 200
            assert (await asyncio.wait_for(_sse_events(r, 1), 5))[0]["ports"] == {}
        # any Host is fine on a wildcard bind (the token is the protection there)
        async with s.get(base + "/api/ports", headers={"Host": "some-name.lan",
                                                       "X-Aioixy-Token": token}) as r:
            assert r.status == 200


def test_a_user_token_must_be_long_enough():
    with pytest.raises(ValueError, match="at least 16"):
        make_app(token="short")
    with pytest.raises(ValueError, match="printable ASCII"):
        make_app(token="x" * 16 + " y")


def test_check_rate_bounds_every_rate_the_jobs_take():
    from aioixy.jobs import RateLimiter, check_rate
    from aioixy.jobs.rate import MAX_RATE

    assert check_rate(None) is None and check_rate(MAX_RATE) == MAX_RATE == 1e9
    assert check_rate(5) == 5.0
    for bad in (1e308, MAX_RATE * 1.0000001, 10**400, float("inf"), -1, 0, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            check_rate(bad)
    with pytest.raises(ValueError, match="at most 1e"):
        RateLimiter(1e308, 32)
    with pytest.raises(ValueError, match="at most 1e"):
        RateLimiter(None, 32).retune(10**400)


# --- non-UTF-8 credentials (issue 16 item 7) -------------------------------------------------

BAD_BYTES = [b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80", b"tok\x80en" * 4, b"\xe2\x82"]


async def _raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send `head` (request line and headers, exactly these bytes) and return the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                     + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        await reader.read()
    finally:
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("bad", BAD_BYTES, ids=lambda b: b.hex())
async def test_attack_non_utf8_token_bytes_are_refused_without_a_traceback(no_leaks, bad,
                                                                            caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    control = ControlPlane(interval=0.05)
    for bind in ("127.0.0.1", "0.0.0.0"):
        app = make_app(control)
        async with serving(app, bind, 0) as url:
            port = int(url.rsplit(":", 1)[1])
            host = b"Host: 127.0.0.1:%d\r\n" % port
            put = b"PUT /api/pktgen HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
            get = b"GET /api/ports HTTP/1.1\r\n" + host
            # (request, refused also on loopback): a read on loopback needs no token
            cases = [
                (put + b"X-Aioixy-Token: " + bad + b"\r\n", True),
                (put + b"Authorization: Bearer " + bad + b"\r\n", True),
                (put + b"Authorization: " + bad + b" " + bad + b"\r\n", True),
                (get + b"X-Aioixy-Token: " + bad + b"\r\n", False),
                (get + b"Authorization: Bearer " + bad + b"\r\n", False),
                (get + b"Cookie: aioixy_token=" + bad + b"\r\n", False),
                # raw bytes in a URL: aiohttp's own 400 (logged at debug level only)
                (b"GET /api/ports?token=" + bad + b" HTTP/1.1\r\n" + host, True),
                (b"GET /?token=%ff%fe HTTP/1.1\r\n" + host, False),
                (b"GET /api/ports HTTP/1.1\r\nHost: 127.0.0.1" + bad + b"\r\n", True),
                (put + b"Origin: http://" + bad + b"\r\nX-Aioixy-Token: x\r\n", True),
            ]
            for head, refused in cases:
                status = await _raw_request(port, head, b'{"rate": 5}')
                ok = (400, 401, 403) if refused or bind == "0.0.0.0" else (200,)
                assert status in ok, (bind, head, status)
    # at the default levels nothing is logged (debug records are not shown)
    tracebacks = [r for r in caplog.records if r.levelno >= logging.INFO
                  and (r.exc_info or r.levelno >= logging.WARNING)]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
