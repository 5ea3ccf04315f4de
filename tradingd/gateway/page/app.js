// tradingd live page: plain JavaScript and SVG, no libraries (served by tradingd-gateway).
// Protocol: docs/websocket-api.md. Subscribes to "status" and "ticks.*"; each ticks.<SYMBOL>
// snapshot gives the latest slot and the last records, then ticks messages add records.
"use strict";

const CHART_POINTS = 300;
const BACKOFF_MIN = 500, BACKOFF_MAX = 10000;
const page = { ws: null, backoff: BACKOFF_MIN, gen: null, status: null, symbols: new Map(),
               instruments: {}, gaps: 0, lost: 0, lastTo: null, messages: 0, connects: 0 };
window.tradingdPage = page;  // for tests and the curious

const $ = (id) => document.getElementById(id);

function wsUrl() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token");
  if (token) url.searchParams.set("token", token);
  return url.toString();
}

function pill(el, text, cls) {
  el.textContent = text;
  el.className = "pill" + (cls ? " " + cls : "");
}

function connect() {
  pill($("conn"), "connecting…");
  let ws;
  try { ws = new WebSocket(wsUrl()); } catch (e) { retry("cannot connect"); return; }
  page.ws = ws;
  ws.onopen = () => {
    page.backoff = BACKOFF_MIN;
    page.connects += 1;
    pill($("conn"), "connected", "ok");
    ws.send(JSON.stringify({ op: "subscribe", id: page.connects, channels: ["status", "ticks.*"] }));
  };
  ws.onmessage = (ev) => { page.messages += 1; handle(JSON.parse(ev.data)); };
  ws.onclose = (ev) => retry(`closed ${ev.code}${ev.reason ? " " + ev.reason : ""}`);
}

function retry(why) {
  const delay = page.backoff;
  page.backoff = Math.min(page.backoff * 2, BACKOFF_MAX);
  pill($("conn"), `disconnected (${why}); retry in ${(delay / 1000).toFixed(1)} s`, "bad");
  pill($("producer"), "producer ?");
  setTimeout(connect, delay);
}

function symbol(name) {
  let s = page.symbols.get(name);
  if (!s) {
    s = { name, records: [], price: null, seq: null, row: null };
    page.symbols.set(name, s);
    s.row = makeRow(name);
  }
  return s;
}

function makeRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.symbol = name;
  tr.innerHTML = `<td class="symbol"></td><td class="time muted">–</td><td class="num price">–</td>
    <td class="num change">–</td><td class="num volume">–</td><td class="num vwap">–</td>
    <td><svg class="chart" viewBox="0 0 260 44" preserveAspectRatio="none"><polyline points=""/></svg></td>`;
  tr.querySelector(".symbol").textContent = name;
  $("rows").appendChild(tr);
  return tr;
}

function resetGeneration(gen) {
  page.gen = gen;
  page.lastTo = null;
  for (const s of page.symbols.values()) { s.records = []; s.price = null; s.seq = null; }
}

function handle(msg) {
  switch (msg.type) {
    case "welcome": showStatus(msg.status); break;
    case "status": showStatus(msg); break;
    case "snapshot": onSnapshot(msg); break;
    case "ticks": onTicks(msg); break;
    case "gap":
      page.gaps += 1; page.lost += msg.count; page.lastTo = msg.to;
      $("gaps").textContent = `gaps ${page.gaps} (${page.lost} records)`;
      break;
    case "heartbeat": $("beat").textContent = `heartbeat ${msg.n}`; break;
    case "error": console.warn("gateway error", msg); break;
  }
}

function showStatus(st) {
  if (!st) return;
  page.status = st;
  if (st.gen && st.gen !== page.gen) resetGeneration(st.gen);
  for (const inst of st.instruments || []) page.instruments[inst.name] = inst;
  for (const name of st.symbols || []) symbol(name);
  const up = st.producer === "up";
  pill($("producer"), `producer ${st.producer}${st.state && st.state !== "live" ? " (" + st.state + ")" : ""}`,
       up ? "ok" : "bad");
  pill($("data"), `data ${st.data}`, st.data === "fresh" ? "ok" : "");
  $("gen").textContent = `generation ${st.gen ? st.gen.slice(0, 8) : "–"}`;
  $("status").dataset.producer = st.producer;
  $("status").dataset.gen = st.gen || "";
}

function onSnapshot(msg) {
  if (!msg.channel.startsWith("ticks.")) return;
  if (msg.gen !== page.gen) resetGeneration(msg.gen);
  const s = symbol(msg.channel.slice(6));
  s.records = msg.records.slice(-CHART_POINTS);
  if (msg.latest) { s.price = msg.latest.price; s.seq = msg.latest.seq; s.volume = msg.latest.volume; s.t = msg.latest.t_ms; }
  else if (s.records.length) { const r = s.records[s.records.length - 1]; s.price = r[5]; s.seq = r[0]; s.volume = r[6]; s.t = r[1]; }
  page.lastTo = msg.to;
  render(s);
}

function onTicks(msg) {
  if (msg.gen !== page.gen) return;  // a status of the new generation comes first
  page.lastTo = msg.to;
  for (const [name, rows] of Object.entries(msg.data)) {
    const s = symbol(name);
    for (const r of rows) s.records.push(r);
    if (s.records.length > CHART_POINTS) s.records.splice(0, s.records.length - CHART_POINTS);
    const last = rows[rows.length - 1];
    s.price = last[5]; s.seq = last[0]; s.volume = last[6]; s.t = last[1];
    s.dirty = true;
  }
}

function fmt(x, decimals) {
  return x === null || x === undefined || !isFinite(x) ? "–"
    : x.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function fmtVolume(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  for (const [u, k] of [["G", 1e9], ["M", 1e6], ["k", 1e3]]) if (Math.abs(v) >= k) return (v / k).toFixed(2) + u;
  return v.toFixed(0);
}

function render(s) {
  s.dirty = false;
  const tr = s.row;
  const inst = page.instruments[s.name] || {};
  const d = inst.price_decimals !== undefined ? inst.price_decimals : (s.price !== null && s.price < 10 ? 5 : 2);
  tr.dataset.price = s.price === null ? "" : String(s.price);
  tr.dataset.seq = s.seq === null ? "" : String(s.seq);
  tr.dataset.gen = page.gen || "";
  tr.querySelector(".price").textContent = fmt(s.price, d);
  tr.querySelector(".time").textContent = s.t ? new Date(s.t).toISOString().slice(0, 16).replace("T", " ") : "–";
  const recs = s.records;
  const ch = tr.querySelector(".change");
  if (recs.length >= 2) {
    const prev = recs[recs.length - 2][5], diff = s.price - prev;
    ch.textContent = `${diff >= 0 ? "+" : ""}${fmt(diff, d)} (${(100 * diff / prev).toFixed(2)}%)`;
    ch.className = "num change " + (diff >= 0 ? "up" : "down");
  } else { ch.textContent = "–"; ch.className = "num change"; }
  tr.querySelector(".volume").textContent = fmtVolume(s.volume);
  let pv = 0, v = 0;
  for (const r of recs) { pv += r[5] * r[6]; v += r[6]; }
  tr.querySelector(".vwap").textContent = v > 0 ? fmt(pv / v, d) : "–";
  const line = tr.querySelector("polyline");
  if (recs.length >= 2) {
    let lo = Infinity, hi = -Infinity;
    for (const r of recs) { lo = Math.min(lo, r[5]); hi = Math.max(hi, r[5]); }
    const span = hi - lo || 1, n = recs.length;
    line.setAttribute("points", recs.map((r, i) =>
      `${(260 * i / (n - 1)).toFixed(1)},${(42 - 40 * (r[5] - lo) / span).toFixed(1)}`).join(" "));
  } else line.setAttribute("points", "");
}

// Redraw what changed at most ~10 times a second, however fast ticks arrive.
setInterval(() => { for (const s of page.symbols.values()) if (s.dirty) render(s); }, 100);
connect();
