"""``GET /``: one self-contained HTML page (inline CSS and JS, no build step, no CDN).

It subscribes to /api/events and shows what an operator keeps an eye on: the job's name and
whether it still runs, per port the packet and bit rates (scaled units), the counters (with
thousands separators), drops, misses and device errors, and a minute of rx/tx rate history on
a time axis; and, when the job has them, the pktgen rate (set it, pause, resume) and the
firewall rules (add, delete, hit counts), changed through the same JSON API a script uses
(with the token from the address the server printed, in the Authorization header).

When the job ends (the stream says ``end``) or the connection breaks, the page says so and
greys out the last values instead of showing them as current.

Element ids are stable so scripts and tests can read them: ``#job``, ``#job-state``,
``#status``, ``#updates``, ``#banner``; per port NAME ``port-NAME`` (class ``stale`` when its
values are old), ``chart-NAME`` and the cells ``rx-pps-NAME``, ``tx-pps-NAME``,
``rx-bps-NAME``, ``tx-bps-NAME``, ``rx-packets-NAME``, ``tx-packets-NAME``, ``rx-dropped-NAME``,
``rx-missed-NAME``, ``tx-dropped-NAME``, ``rx-errors-NAME``, ``tx-errors-NAME``: each shows
the number for people and carries it raw in ``data-value``. Controls: ``#pktgen-rate``,
``#pktgen-rate-input``, ``#pktgen-set``, ``#pktgen-toggle``, ``#rules`` (rows ``rule-ID`` with
``delete-rule-ID``), ``#rule-action``, ``#rule-src``, ``#rule-dst``, ``#rule-proto``,
``#rule-dport``, ``#rule-add``, ``#control-error``.
"""

from __future__ import annotations

from aiohttp import web

from aioixy.control.security import GUARD, set_token_cookie

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aioixy dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
header { background: #223; color: #fff; padding: 8px 16px; display: flex; gap: 24px;
         align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header b { font-family: monospace; }
#banner { display: none; background: #fde8c8; color: #6a3d00; padding: 8px 16px;
          border-bottom: 1px solid #e0b070; font-weight: 600; }
body.stale #banner { display: block; }
main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }
section { background: #fff; border-radius: 6px; padding: 12px; box-shadow: 0 1px 3px #0002; }
section h2 { font-size: 15px; margin: 0 0 8px; font-family: monospace; }
section.stale, body.stale section { opacity: .55; }
section.stale h2::after { content: " (closed: last values)"; color: #a33; font-family: sans-serif; }
table { border-collapse: collapse; margin-top: 6px; }
td, th { padding: 2px 12px 2px 0; text-align: left; }
td.n { text-align: right; font-family: monospace; font-variant-numeric: tabular-nums; }
.rx { color: #1f6fd1; } .tx { color: #c2610f; } .bad { color: #b00020; }
td.n.bad.zero { color: #999; }
.controls input, .controls select { font: inherit; padding: 2px 4px; }
.controls input[type=text] { width: 9em; }
.controls button { font: inherit; padding: 2px 10px; cursor: pointer; }
#control-error { color: #b00020; min-height: 1.4em; }
#rules td { font-family: monospace; }
.hint { color: #666; font-size: 12px; }
</style></head>
<body>
<header><h1>aioixy</h1>
<span>job: <b id="job">-</b> <span id="job-state"></span></span>
<span>stream: <b id="status">connecting</b></span>
<span>updates: <b id="updates">0</b></span>
<span>last: <b id="last-update">-</b></span></header>
<div id="banner"></div>
<main>
<div id="ports" style="display: contents"></div>
<section id="pktgen" class="controls" hidden><h2>pktgen</h2>
<table>
<tr><td>rate limit</td><td class="n" id="pktgen-rate" data-value="">-</td></tr>
<tr><td>state</td><td class="n" id="pktgen-state">-</td></tr>
<tr><td>sent</td><td class="n" id="pktgen-packets" data-value="0">0</td></tr>
</table>
<p><input type="text" id="pktgen-rate-input" placeholder="packets/s" aria-label="rate">
<button id="pktgen-set">Set rate</button> <button id="pktgen-toggle">Pause</button></p>
<p class="hint">rate in packets/s (e.g. 250000, 1e6); empty: as fast as possible</p>
</section>
<section id="firewall" class="controls" hidden><h2>firewall rules</h2>
<table id="rules"><thead><tr><th>id</th><th>action</th><th>src</th><th>dst</th><th>proto</th>
<th>dport</th><th>hits</th><th></th></tr></thead><tbody></tbody>
<tfoot><tr><td>-</td><td>default</td><td colspan="4" id="default-action"></td>
<td class="n" id="default-hits" data-value="0">0</td><td></td></tr></tfoot></table>
<p><select id="rule-action" aria-label="action"><option>deny</option><option>allow</option></select>
<input type="text" id="rule-src" placeholder="src 10.0.0.0/24" aria-label="source">
<input type="text" id="rule-dst" placeholder="dst (any)" aria-label="destination">
<select id="rule-proto" aria-label="protocol"><option value="">any</option><option>udp</option>
<option>tcp</option><option>icmp</option></select>
<input type="text" id="rule-dport" placeholder="dport" style="width: 5em" aria-label="port">
<button id="rule-add">Add rule</button></p>
<p class="hint">first match wins; rules apply from the next batch</p>
</section>
<div id="control-error" style="flex-basis: 100%"></div>
</main>
<script>
"use strict";
const WINDOW = 60;              // seconds of history in each chart
const ports = new Map();        // name -> {samples: [{t, rx, tx}], canvas, section}
const $ = (id) => document.getElementById(id);
let updates = 0, lastTime = 0, ended = false;

// numbers for people, as the command line prints them: three significant digits with an SI
// prefix for rates, thousands separators for counts; the raw value stays in data-value
function scaled(v, unit) {
  if (v === null || v === undefined) return "-";
  if (v === 0) return "0 " + unit;
  const steps = [[1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""]];
  for (let i = 0; i < steps.length; i++) {
    const [f, p] = steps[i];
    if (Math.abs(v) >= f || f === 1) {
      let x = v / f, pre = p;
      if (i > 0 && Math.abs(Number(digits(x))) >= 1000) {   // 999.96 k is 1.00 M
        x = v / steps[i - 1][0]; pre = steps[i - 1][1];
      }
      return digits(x) + " " + pre + unit;
    }
  }
}
function digits(x) { const a = Math.abs(x); return x.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0); }
const count = (n) => Math.round(n).toLocaleString("en-US");
const clock = (t) => new Date(t * 1000).toLocaleTimeString("en-GB");

function show(id, value, text, bad) {
  const el = $(id);
  if (!el) return;
  el.dataset.value = value === null ? "" : String(value);
  el.textContent = text;
  if (bad) el.classList.toggle("zero", !value);
}

const ROWS = [["rx", "rx-pps", "pps", "rx"], ["tx", "tx-pps", "pps", "tx"],
              ["rx", "rx-bps", "bit/s", "rx"], ["tx", "tx-bps", "bit/s", "tx"],
              ["rx packets", "rx-packets", "", "rx"], ["tx packets", "tx-packets", "", "tx"],
              ["rx dropped (ring full)", "rx-dropped", "", "bad"],
              ["rx missed (device)", "rx-missed", "", "bad"],
              ["tx dropped", "tx-dropped", "", "bad"],
              ["rx errors (device)", "rx-errors", "", "bad"],
              ["tx errors (device)", "tx-errors", "", "bad"]];

function addPort(name) {
  const sec = document.createElement("section");
  sec.id = "port-" + name;
  const h = document.createElement("h2");
  h.textContent = name;
  const canvas = document.createElement("canvas");
  canvas.id = "chart-" + name; canvas.width = 460; canvas.height = 170;
  const table = document.createElement("table");
  for (const [label, key, unit, cls] of ROWS) {
    const row = table.insertRow();
    const l = row.insertCell();
    l.textContent = label + {pps: " packets/s", "bit/s": " bits/s", "": ""}[unit];
    l.className = cls === "bad" ? "" : cls;
    const c = row.insertCell();
    c.id = key + "-" + name; c.className = "n " + cls; c.textContent = "-";
  }
  sec.append(h, canvas, table);
  $("ports").append(sec);
  const p = {samples: [], canvas, section: sec};
  ports.set(name, p);
  return p;
}

function draw(p, now) {
  const c = p.canvas, g = c.getContext("2d"), w = c.width, h = c.height;
  const L = 64, R = 8, T = 10, B = 22, pw = w - L - R, ph = h - T - B;
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...p.samples.map((s) => Math.max(s.rx, s.tx))) * 1.1;
  g.font = "11px sans-serif"; g.fillStyle = "#666"; g.strokeStyle = "#e3e3e3"; g.lineWidth = 1;
  g.textAlign = "right";
  for (let i = 0; i <= 4; i++) {       // value axis: rates in scaled units
    const y = T + ph * i / 4;
    g.beginPath(); g.moveTo(L, y); g.lineTo(L + pw, y); g.stroke();
    g.fillText(scaled(top * (4 - i) / 4, "pps"), L - 4, y + 4);
  }
  g.textAlign = "center";
  for (let s = 0; s <= WINDOW; s += 15) {   // time axis: seconds before the latest sample
    const x = L + pw * (1 - s / WINDOW);
    g.beginPath(); g.moveTo(x, T); g.lineTo(x, T + ph); g.stroke();
    g.textAlign = s === 0 ? "right" : "center";       // "now" ends at the plot's edge
    g.fillText(s === 0 ? "now" : "-" + s + " s", s === 0 ? x + R : x, h - 6);
  }
  for (const [key, color] of [["rx", "#1f6fd1"], ["tx", "#c2610f"]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    p.samples.forEach((s, i) => {
      const x = L + pw * (1 - (now - s.t) / WINDOW), y = T + ph * (1 - s[key] / top);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
  g.textAlign = "left"; g.font = "bold 11px sans-serif";
  g.fillStyle = "#1f6fd1"; g.fillText("rx", L + 6, T + 12);
  g.fillStyle = "#c2610f"; g.fillText("tx", L + 24, T + 12);
}

function stale(why) {
  document.body.classList.add("stale");
  $("banner").textContent = why;
  for (const b of document.querySelectorAll(".controls button")) b.disabled = true;
}

function update(ev) {
  const data = JSON.parse(ev.data);
  if (!ended) { document.body.classList.remove("stale"); $("banner").textContent = ""; }
  lastTime = data.time;
  for (const [name, p] of ports) p.section.classList.toggle("stale", !(name in data.ports));
  for (const [name, s] of Object.entries(data.ports)) {
    const p = ports.get(name) || addPort(name);
    p.samples.push({t: data.time, rx: s.rx_pps, tx: s.tx_pps});
    while (p.samples.length && data.time - p.samples[0].t > WINDOW) p.samples.shift();
    for (const [, key, unit, cls] of ROWS) {
      const v = s[key.replace("-", "_")];
      show(key + "-" + name, v, unit ? scaled(v, unit) : count(v), cls === "bad");
    }
    draw(p, data.time);
  }
  if (data.job) {
    $("job").textContent = data.job.name;
    document.title = "aioixy: " + data.job.name;
    $("job-state").textContent = data.job.running ? "running" : "ended";
    if (!data.job.running) {
      ended = true;
      stale("The job has ended (" + clock(data.time) + "): the values below are the last it "
            + "reported.");
    }
  }
  if (data.pktgen) showPktgen(data.pktgen);
  if (data.firewall) showRules(data.firewall);
  updates += 1;
  $("updates").textContent = String(updates);
  $("last-update").textContent = clock(data.time);
}

function showPktgen(pg) {
  $("pktgen").hidden = false;
  show("pktgen-rate", pg.rate,
       pg.rate === null ? "none (as fast as possible)" : scaled(pg.rate, "pps"));
  $("pktgen-state").textContent = pg.finished ? "finished" : pg.running ? "running" : "paused";
  show("pktgen-packets", pg.packets, count(pg.packets));
  $("pktgen-toggle").textContent = pg.running ? "Pause" : "Resume";
  $("pktgen-toggle").dataset.running = String(pg.running);
}

function showRules(fw) {
  $("firewall").hidden = false;
  const body = $("rules").tBodies[0];
  const want = fw.rules.map((r) => "rule-" + r.id);
  for (const row of [...body.rows]) if (!want.includes(row.id)) row.remove();
  for (const r of fw.rules) {
    let row = $("rule-" + r.id);
    if (!row) {
      row = body.insertRow(); row.id = "rule-" + r.id;
      for (const v of [r.id, r.action, r.src ?? "any", r.dst ?? "any", r.proto ?? "any",
                       r.dport ?? "any"]) row.insertCell().textContent = String(v);
      const hits = row.insertCell(); hits.className = "n";
      const del = document.createElement("button");
      del.id = "delete-rule-" + r.id; del.textContent = "Delete";
      del.onclick = () => api("DELETE", "api/firewall/rules/" + r.id);
      row.insertCell().append(del);
    }
    const hits = row.cells[6];
    hits.dataset.value = String(r.hits); hits.textContent = count(r.hits);
  }
  $("default-action").textContent = fw.default;
  show("default-hits", fw.default_hits, count(fw.default_hits));
}

// the token arrives in the address the server printed (?token=...): changes send it in the
// Authorization header (never a cookie); a control plane bound beyond localhost wants it on
// the event stream too (EventSource cannot send headers)
const token = new URLSearchParams(location.search).get("token");

async function api(method, path, body) {
  $("control-error").textContent = "";
  if (!token) {
    $("control-error").textContent = "read-only: open the address the server printed "
                                     + "(with ?token=...) to change settings";
    return null;
  }
  const headers = {"Authorization": "Bearer " + token};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    const sent = body === undefined ? undefined : JSON.stringify(body);
    const r = await fetch(path, {method, headers, body: sent});
    const answer = await r.json();
    if (!r.ok) {
      $("control-error").textContent = method + " " + path + ": " + (answer.error || r.status);
      return null;
    }
    if (path === "api/pktgen") showPktgen(answer);
    if (path.startsWith("api/firewall")) {
      showRules(await (await fetch("api/firewall/rules", {headers})).json());
    }
    return answer;
  } catch (e) {
    $("control-error").textContent = method + " " + path + ": " + e;
    return null;
  }
}

$("pktgen-set").onclick = () => {
  const text = $("pktgen-rate-input").value.trim();
  api("PUT", "api/pktgen", {rate: text === "" ? null : Number(text)});
};
$("pktgen-toggle").onclick = () =>
  api("PUT", "api/pktgen", {running: $("pktgen-toggle").dataset.running !== "true"});
$("rule-add").onclick = () => {
  const spec = {action: $("rule-action").value};
  for (const f of ["src", "dst", "proto"]) {
    const v = $("rule-" + f).value.trim();
    if (v) spec[f] = v;
  }
  const port = $("rule-dport").value.trim();
  if (port) spec.dport = Number(port);
  api("POST", "api/firewall/rules", spec);
};

const es = new EventSource("api/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
es.addEventListener("stats", update);
es.addEventListener("end", () => {
  ended = true;
  es.close();
  $("status").textContent = "ended";
  $("job-state").textContent = "ended";
  stale("The job has ended (" + clock(Date.now() / 1000) + "), and its control plane with "
        + "it: the values below are the last it reported"
        + (lastTime ? " at " + clock(lastTime) : "") + ".");
});
es.onopen = () => { $("status").textContent = "live"; };
es.onerror = () => {
  if (ended) return;
  $("status").textContent = "reconnecting";
  stale("Connection lost (" + clock(Date.now() / 1000) + "): the values below are stale"
        + (lastTime ? ", from " + clock(lastTime) : "") + "; reconnecting.");
};
</script>
</body></html>
"""


async def dashboard(request: web.Request) -> web.Response:
    resp = web.Response(text=PAGE, content_type="text/html")
    set_token_cookie(request, resp, request.app[GUARD])
    return resp
