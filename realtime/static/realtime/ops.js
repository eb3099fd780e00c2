// The operations console (/ops/): every server process's `ops_sample`s, live over Dexter's own socket.
//
// Each server publishes a sample of itself on the staff-only `ops` channel
// every REALTIME_OPS_INTERVAL seconds while someone watches (realtime/ops.py).
// The page draws the last minutes from the channel's stored history, then
// follows it live; samples are keyed by seq, so a replayed one never counts
// twice. Figures summed over servers use each server's latest sample in a
// time slot; latency shows the worst server's p50/p99.
import { WebSocketClient } from "./dexter-realtime.js";
import { $, el } from "./dom.js";
import { api, currentSession, getToken, onSessionEnd, signInForm, signOut as forgetSession } from "./session.js";
import uPlot from "./vendor/uplot/uPlot.esm.js";

const WINDOW_S = 300; // what the charts show
const HISTORY = 400; // samples loaded at start (several servers share them)
const STALE_INTERVALS = 3; // a server silent this many intervals is marked stale

let client = null;
const samples = new Map(); // seq -> sample
const charts = {};

// --- helpers ------------------------------------------------------------------

const fixed = (n, digits = 1) => (n === null || n === undefined ? "–" : Number(n).toFixed(digits));
const ms = (seconds) => (seconds === null || seconds === undefined ? "–" : `${(seconds * 1000).toFixed(1)} ms`);
const clock = (t) => new Date(t * 1000).toLocaleTimeString();
const short = (id) => String(id || "").slice(0, 8);
const who = (entry) => entry.username || (entry.user_id ? `user ${entry.user_id}` : "anonymous");

// --- samples ------------------------------------------------------------------

function addSample(msg) {
  if (msg.type !== "ops_sample" || samples.has(msg.seq)) return;
  samples.set(msg.seq, msg);
  const cutoff = Date.now() / 1000 - WINDOW_S - 60;
  for (const [seq, s] of samples) if (s.sampled_at < cutoff) samples.delete(seq);
  scheduleRender();
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

// Each server's latest sample.
function latestByServer() {
  const latest = new Map();
  for (const s of samples.values()) {
    const seen = latest.get(s.server_id);
    if (!seen || s.sampled_at > seen.sampled_at) latest.set(s.server_id, s);
  }
  return latest;
}

// Time slots of one interval: per slot, each server's latest sample in it.
function series() {
  const slots = new Map();
  for (const s of samples.values()) {
    const key = Math.round(s.sampled_at / (s.interval || 2));
    const slot = slots.get(key) || new Map();
    const seen = slot.get(s.server_id);
    if (!seen || s.sampled_at > seen.sampled_at) slot.set(s.server_id, s);
    slots.set(key, slot);
  }
  const rows = [...slots.values()]
    .map((slot) => {
      const list = [...slot.values()];
      const worst = (f) => {
        const values = list.map(f).filter((v) => v !== null && v !== undefined);
        return values.length ? Math.max(...values) * 1000 : null;
      };
      return [
        Math.max(...list.map((s) => s.sampled_at)),
        list.reduce((sum, s) => sum + s.rates.publications, 0),
        list.reduce((sum, s) => sum + s.rates.deliveries, 0),
        worst((s) => s.latency.p50),
        worst((s) => s.latency.p99),
      ];
    })
    .sort((a, b) => a[0] - b[0]);
  return [0, 1, 2, 3, 4].map((i) => rows.map((r) => r[i]));
}

function chartWidth(node) {
  return Math.max(260, (node.clientWidth || 500) - 8);
}

function chart(id, seriesOpts, yLabel) {
  const node = $(id);
  const plot = new uPlot(
    {
      width: chartWidth(node),
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label: yLabel, size: 60 }],
      series: [{}, ...seriesOpts],
    },
    [[], ...seriesOpts.map(() => [])],
    node,
  );
  // Follow the card's width (the window, a phone turned sideways).
  new ResizeObserver(() => plot.setSize({ width: chartWidth(node), height: 220 })).observe(node);
  return plot;
}

function render() {
  const latest = latestByServer();
  const now = Date.now() / 1000;
  const live = [...latest.values()].filter((s) => now - s.sampled_at < STALE_INTERVALS * (s.interval || 2));

  const data = series();
  charts.throughput.setData([data[0], data[1], data[2]]);
  charts.latency.setData([data[0], data[3], data[4]]);
  const last = (arr) => (arr.length ? arr[arr.length - 1] : null);
  $("fig-connections").textContent = String(live.reduce((sum, s) => sum + s.connections, 0));
  $("fig-publications").textContent = fixed(last(data[1]));
  $("fig-deliveries").textContent = fixed(last(data[2]));
  $("fig-p50").textContent = last(data[3]) === null ? "–" : `${fixed(last(data[3]))} ms`;
  $("fig-p99").textContent = last(data[4]) === null ? "–" : `${fixed(last(data[4]))} ms`;
  $("fig-servers").textContent = String(live.length);

  const servers = [...latest.values()].sort((a, b) => String(a.server_id).localeCompare(String(b.server_id)));
  $("servers").replaceChildren(
    ...servers.map((s) => {
      const stale = now - s.sampled_at >= STALE_INTERVALS * (s.interval || 2);
      return el(
        "tr",
        { dataset: { serverId: s.server_id }, className: stale ? "stale" : "" },
        el("td", { textContent: short(s.server_id) }),
        el("td", { textContent: `${s.host} / ${s.pid}` }),
        el("td", { className: "server-connections", textContent: String(s.connections) }),
        el("td", { textContent: String(s.channel_count) }),
        el("td", { textContent: stale ? `${clock(s.sampled_at)} (stale)` : clock(s.sampled_at) }),
      );
    }),
  );

  const conns = live.flatMap((s) => s.connection_list.map((c) => ({ ...c, server_id: s.server_id })));
  $("connections").replaceChildren(
    ...conns.map((c) =>
      el(
        "tr",
        { className: "connection", dataset: { connectionId: c.connection_id, clientId: c.client_id } },
        el("td", { textContent: who(c) }),
        el("td", { textContent: c.client_id }),
        el("td", { textContent: c.transport }),
        el("td", { textContent: String(c.subscriptions) }),
        el("td", { textContent: String(c.queued_bytes) }),
        el("td", { textContent: short(c.server_id) }),
        el("td", {}, disconnectButton(c)),
      ),
    ),
  );

  const channels = new Map();
  for (const s of live) for (const [name, count] of s.channels) channels.set(name, (channels.get(name) || 0) + count);
  $("channels").replaceChildren(
    ...[...channels]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([name, count]) =>
        el("tr", { dataset: { channel: name } }, el("td", { textContent: name }), el("td", { textContent: String(count) })),
      ),
  );

  const codes = new Map();
  for (const s of latest.values()) {
    for (const [code, n] of Object.entries(s.totals.closes || {})) codes.set(code, (codes.get(code) || 0) + n);
  }
  $("close-codes").replaceChildren(
    ...[...codes].sort().map(([code, n]) => el("li", { dataset: { code }, textContent: `${code} × ${n}` })),
  );
  const closes = [...latest.values()].flatMap((s) => s.recent_closes).sort((a, b) => b.at - a.at).slice(0, 15);
  $("recent-closes").replaceChildren(
    ...closes.map((c) =>
      el(
        "tr",
        { dataset: { code: c.code } },
        el("td", { textContent: clock(c.at) }),
        el("td", { textContent: c.code }),
        el("td", { textContent: c.reason || "" }),
        el("td", { textContent: who(c) }),
        el("td", { textContent: c.client_id || "" }),
      ),
    ),
  );

  const slow = conns
    .filter((c) => c.queued_bytes > 0)
    .map((c) => ({ at: now, what: `slow: ${c.queued_bytes} bytes unsent`, ...c }));
  const trouble = [...slow, ...[...latest.values()].flatMap((s) => s.trouble)].sort((a, b) => b.at - a.at).slice(0, 15);
  const open = new Set(conns.map((c) => c.connection_id));
  $("trouble").replaceChildren(
    ...trouble.map((t) =>
      el(
        "tr",
        { className: "trouble" },
        el("td", { textContent: clock(t.at) }),
        el("td", { textContent: t.what }),
        el("td", { textContent: who(t) }),
        el("td", { textContent: t.client_id || "" }),
        el("td", {}, open.has(t.connection_id) ? disconnectButton(t) : null),
      ),
    ),
  );

  const errors = new Map();
  let replays = 0;
  let bufferCloses = 0;
  let limited = 0;
  for (const s of latest.values()) {
    for (const [code, n] of Object.entries(s.totals.errors || {})) errors.set(code, (errors.get(code) || 0) + n);
    replays += s.totals.history_replays || 0;
    bufferCloses += s.totals.send_buffer_closes || 0;
    limited += s.totals.rate_limited || 0;
  }
  $("errors-line").textContent =
    `Error replies: ${[...errors].map(([c, n]) => `${c} ${n}`).join(" · ") || "none"}; ` +
    `rate-limited frames: ${limited}; send-buffer closes (4500): ${bufferCloses}; history replays: ${replays}.`;
}

function disconnectButton(c) {
  return el("button", {
    type: "button",
    className: "secondary disconnect",
    textContent: "Disconnect",
    dataset: { connectionId: c.connection_id },
    "aria-label": `Disconnect ${who(c)} (${c.client_id})`,
  });
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.disconnect");
  if (!button) return;
  button.disabled = true;
  try {
    await api("POST", `/api/realtime/connections/${encodeURIComponent(button.dataset.connectionId)}/disconnect/`);
    button.textContent = "Disconnecting…";
    $("action-error").textContent = "";
  } catch (err) {
    button.disabled = false;
    $("action-error").textContent = String(err.message || err);
  }
});

// --- wiring ---------------------------------------------------------------------

async function loadHistory(latestSeq) {
  const since = Math.max(0, latestSeq - HISTORY);
  const body = await api("GET", `/api/realtime/channels/ops/history/?since=${since}&limit=${HISTORY}`);
  for (const msg of body.messages || []) addSample(msg);
}

function start() {
  charts.throughput = chart(
    "chart-throughput",
    [
      { label: "publications/s", stroke: "#3b5bdb", width: 2 },
      { label: "deliveries/s", stroke: "#2f9e44", width: 2 },
    ],
    "per second",
  );
  charts.latency = chart(
    "chart-latency",
    [
      { label: "p50 ms", stroke: "#1971c2", width: 2 },
      { label: "p99 ms", stroke: "#e8590c", width: 2 },
    ],
    "ms",
  );
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  client = new WebSocketClient({
    url: `${scheme}://${location.host}`,
    clientId: `ops-${Math.random().toString(16).slice(2, 10)}`,
    getToken,
    reconnectInterval: 1000,
    maxReconnectAttempts: Infinity,
  });
  window.dexterOps = { client, charts, samples };
  client.on("status", (state) => {
    $("conn").dataset.state = state;
    $("conn-text").textContent = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…" }[state] || "Offline";
  });
  client.on("ops_sample", addSample);
  client.on("subscribed", (msg) => {
    if (msg.channel === "ops" && samples.size === 0 && msg.seq > 0) loadHistory(msg.seq).catch(console.warn);
  });
  client.subscribe("ops").catch((err) => {
    if (err?.code === "forbidden") {
      $("forbidden").hidden = false;
      $("app").hidden = true;
      client.close();
    }
  });
  client.connect();
}

function showApp() {
  const session = currentSession();
  const signedIn = Boolean(session);
  $("signin").hidden = signedIn;
  $("me").hidden = !signedIn;
  $("app").hidden = !signedIn;
  if (!signedIn) return;
  $("me-name").textContent = session.username;
  start();
}

function signOut(message = "") {
  client?.close();
  client = null;
  forgetSession();
  location.reload();
  $("signin-error").textContent = message;
}

signInForm(showApp);
$("sign-out").addEventListener("click", () => signOut());
onSessionEnd(signOut);

showApp();
