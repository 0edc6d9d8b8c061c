"""``GET /``: one self-contained HTML page (inline CSS and JS, no build step, no CDN).

It subscribes to /api/events and, per port, draws rx/tx packet-rate charts on a <canvas> and
shows the current numbers. Element ids are stable so scripts and tests can read them:
``#status``, ``#updates`` (events received), and per port NAME: ``rx-pps-NAME``,
``tx-pps-NAME``, ``rx-packets-NAME``, ``tx-packets-NAME``, ``rx-dropped-NAME``,
``chart-NAME`` (numbers are plain integers, so they parse back).
"""

from __future__ import annotations

from aiohttp import web

from aioixy.control.security import GUARD, set_token_cookie

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aioixy dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
header { background: #223; color: #fff; padding: 8px 16px; display: flex; gap: 24px;
         align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
section { background: #fff; border-radius: 6px; padding: 12px; box-shadow: 0 1px 3px #0002; }
section h2 { font-size: 15px; margin: 0 0 8px; font-family: monospace; }
table { border-collapse: collapse; margin-top: 6px; }
td { padding: 1px 10px 1px 0; } td.n { text-align: right; font-family: monospace; }
.rx { color: #1f6fd1; } .tx { color: #d1711f; }
</style></head>
<body>
<header><h1>aioixy</h1><span>stream: <b id="status">connecting</b></span>
<span>updates: <b id="updates">0</b></span></header>
<main id="ports"></main>
<script>
"use strict";
const HISTORY = 120;           // samples per chart: a minute at the server's 0.5 s interval
const ports = new Map();        // name -> {rx: [], tx: [], canvas}
let updates = 0;

function cell(row, text, id, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (id) { td.id = id; td.className = "n"; }
  if (cls) td.classList.add(cls);
}

function addPort(name) {
  const sec = document.createElement("section");
  const h = document.createElement("h2");
  h.textContent = name;
  const canvas = document.createElement("canvas");
  canvas.id = "chart-" + name; canvas.width = 420; canvas.height = 150;
  const table = document.createElement("table");
  for (const [label, key, cls] of [["rx packets/s", "rx-pps", "rx"],
                                   ["tx packets/s", "tx-pps", "tx"],
                                   ["rx packets", "rx-packets", "rx"],
                                   ["tx packets", "tx-packets", "tx"],
                                   ["rx dropped", "rx-dropped", ""]]) {
    const row = table.insertRow();
    cell(row, label, null, cls);
    cell(row, "0", key + "-" + name, null);
  }
  sec.append(h, canvas, table);
  document.getElementById("ports").append(sec);
  const p = {rx: [], tx: [], canvas};
  ports.set(name, p);
  return p;
}

function nice(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(2) + " M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + " k";
  return v.toFixed(0);
}

function draw(p) {
  const c = p.canvas, g = c.getContext("2d"), w = c.width, h = c.height, pad = 18;
  g.clearRect(0, 0, w, h);
  const top = Math.max(1, ...p.rx, ...p.tx) * 1.1;
  g.strokeStyle = "#ddd"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad + (h - 2 * pad) * i / 4;
    g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke();
  }
  g.fillStyle = "#666"; g.font = "11px sans-serif";
  g.fillText(nice(top) + "pps", 4, 12);
  for (const [series, color] of [[p.rx, "#1f6fd1"], [p.tx, "#d1711f"]]) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    series.forEach((v, i) => {
      const x = w - (series.length - 1 - i) * (w / (HISTORY - 1));
      const y = h - pad - (h - 2 * pad) * v / top;
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  }
}

function update(ev) {
  const data = JSON.parse(ev.data);
  for (const [name, s] of Object.entries(data.ports)) {
    const p = ports.get(name) || addPort(name);
    p.rx.push(s.rx_pps); p.tx.push(s.tx_pps);
    if (p.rx.length > HISTORY) { p.rx.shift(); p.tx.shift(); }
    const set = (key, v) => {
      document.getElementById(key + "-" + name).textContent = String(Math.round(v));
    };
    set("rx-pps", s.rx_pps); set("tx-pps", s.tx_pps);
    set("rx-packets", s.rx_packets); set("tx-packets", s.tx_packets);
    set("rx-dropped", s.rx_dropped);
    draw(p);
  }
  updates += 1;
  document.getElementById("updates").textContent = String(updates);
}

// the token arrives in the address the server printed (?token=...); a control plane bound
// beyond localhost wants it on the event stream too (EventSource cannot send headers)
const token = new URLSearchParams(location.search).get("token");
const es = new EventSource("api/events" + (token ? "?token=" + encodeURIComponent(token) : ""));
es.addEventListener("stats", update);
es.onopen = () => { document.getElementById("status").textContent = "live"; };
es.onerror = () => { document.getElementById("status").textContent = "reconnecting"; };
</script>
</body></html>
"""


async def dashboard(request: web.Request) -> web.Response:
    resp = web.Response(text=PAGE, content_type="text/html")
    set_token_cookie(request, resp, request.app[GUARD])
    return resp
