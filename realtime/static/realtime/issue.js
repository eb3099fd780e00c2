// The issue page, /issues/<id>/: one issue worked on together (docs/protocol.md sections 10-12).
//
// It loads the issue and its comments over the API, each with its
// Realtime-Position, then subscribes to `issue:<id>` with presence from the
// lower of the two positions: every change after the loads arrives, none is
// missed. Issue fields apply only from messages newer than the issue's own
// load; comments are keyed by id, so one that was both loaded and announced
// shows once. Who else is here comes from the channel's presence (initials
// and activity); "bob is typing..." from `typing` signals; the sparkline is the
// issue's events per minute over the last hour (the timeline endpoint, with its
// own position), its last bucket growing live by each update's count change.
import { WebSocketClient } from "./dexter-realtime.js";
import { parsePosition } from "./position.js";
import { api, authFetch, currentSession, getToken, jwtClaims } from "./session.js";

const $ = (id) => document.getElementById(id);
const issueId = location.pathname.match(/\/issues\/(\d+)\/?$/)?.[1];
const channel = `issue:${issueId}`;
const TYPING_MS = 4000; // a user types until this long after their last signal
const SENT_EVERY_MS = 1500; // our own typing signals, at most this often

let client = null;
let me = null;
let issue = null;
let issueAt = 0; // the issue's Realtime-Position: older messages are already in it
const users = new Map(); // id -> username
const comments = new Map(); // id -> comment
const typingUntil = new Map(); // user id -> timer
// The sparkline: events per bucket, from /events/timeline/, then grown live.
const spark = { counts: [], start: 0, size: 60_000, at: Infinity, count: 0, skew: 0 };
let lastTypingSent = 0;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const nameOf = (id) => (id ? users.get(String(id)) || `user ${id}` : "nobody");
const timeText = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "");

function initials(name) {
  const parts = String(name).split(/[\s._-]+/).filter(Boolean);
  return ((parts[0]?.[0] || "?") + (parts[1]?.[0] || "")).toUpperCase();
}

function colorOf(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 42%)`;
}

function showError(err) {
  $("page-error").textContent = err ? String(err.message || err) : "";
}

// --- the issue ------------------------------------------------------------------

function renderIssue() {
  document.title = `Dexter · ${issue.title}`;
  $("issue-title").textContent = issue.title;
  $("issue-culprit").textContent = issue.culprit || "";
  $("issue-level").textContent = issue.level;
  $("issue-level").className = `badge level-${issue.level}`;
  $("issue-status-badge").textContent = issue.status;
  $("issue-status-badge").className = `badge issue-status status-${issue.status}`;
  $("issue-app").dataset.status = issue.status;
  const n = issue.event_count ?? 0;
  $("issue-events").textContent = `${n} event${n === 1 ? "" : "s"}`;
  $("issue-last-seen").textContent = issue.last_seen ? `last seen ${timeText(issue.last_seen)}` : "";
  if (document.activeElement !== $("status-control")) $("status-control").value = issue.status;
  renderAssignees();
}

function renderAssignees() {
  const select = $("assignee-control");
  const assignee = issue.assignee ? String(issue.assignee) : "";
  const known = [...users.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  if (assignee && !users.has(assignee)) known.push([assignee, nameOf(assignee)]);
  select.replaceChildren(
    el("option", { value: "", textContent: "Unassigned" }),
    ...known.map(([id, name]) => el("option", { value: id, textContent: name })),
  );
  select.value = assignee;
}

function onIssueUpdate(msg) {
  if (msg.channel !== channel) return;
  const data = msg.data || {};
  if (msg.update_type === "commented" && data.comment) addComment({ ...data.comment, issue: issueId });
  if (typeof data.event_count === "number" && msg.seq > spark.at) addSparkEvents(data.last_seen || msg.ts, data.event_count);
  if (!issue || msg.seq <= issueAt) return;
  if (msg.update_type === "deleted") {
    showError(new Error("This issue was deleted."));
    return;
  }
  const { changes, resolved_by, comment, ...fields } = data;
  issue = { ...issue, ...fields };
  renderIssue();
}

async function patch(change, control) {
  control.disabled = true;
  try {
    const response = await authFetch("PATCH", `/api/issues/${issueId}/`, change);
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(body?.detail || Object.values(body || {}).flat().join(" ") || "not saved");
    showError(null);
  } catch (err) {
    showError(err);
    renderIssue();
  } finally {
    control.disabled = false;
  }
}

// --- comments -------------------------------------------------------------------

function addComment(comment) {
  const id = String(comment.id);
  if (comments.has(id)) return;
  comments.set(id, comment);
  const item = el(
    "li",
    { className: "comment", dataset: { commentId: id } },
    el(
      "div",
      { className: "comment-head" },
      el("span", { className: "comment-author", textContent: nameOf(comment.author) }),
      el("time", { dateTime: comment.created_at || "", textContent: timeText(comment.created_at) }),
    ),
    el("p", { className: "comment-body", textContent: comment.body }),
  );
  const list = $("comment-list");
  const later = [...list.children].find((li) => Number(li.dataset.commentId) > Number(id));
  list.insertBefore(item, later || null);
  $("comments-empty").hidden = true;
  $("comment-count").textContent = `(${comments.size})`;
  if (comment.author) stopTyping(String(comment.author));
}

// --- who is here, and who is typing --------------------------------------------

function renderMembers(members) {
  const list = $("member-list");
  list.replaceChildren(
    ...members.map((m) =>
      el(
        "li",
        { className: "member", dataset: { username: m.username, activity: m.activity, userId: m.user_id } },
        el("span", {
          className: "avatar",
          textContent: initials(m.username),
          title: m.username,
          style: `background:${colorOf(m.username)}`,
          "aria-hidden": "true",
        }),
        el(
          "span",
          {},
          el("span", { className: "member-name", textContent: m.username + (me && m.user_id === me.id ? " (you)" : "") }),
          " ",
          el("span", { className: "member-activity", textContent: m.activity }),
          m.connections > 1 ? el("span", { className: "member-tabs", textContent: ` · ${m.connections} tabs` }) : null,
        ),
      ),
    ),
  );
  $("here-count").textContent = `(${members.length})`;
  for (const m of members) users.set(m.user_id, m.username);
  renderTyping();
}

function renderTyping() {
  const names = [...typingUntil.keys()].map(nameOf).sort();
  $("typing").textContent = !names.length
    ? ""
    : names.length === 1
      ? `${names[0]} is typing...`
      : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing...`;
}

function startTyping(userId) {
  clearTimeout(typingUntil.get(userId));
  typingUntil.set(userId, setTimeout(() => stopTyping(userId), TYPING_MS));
  renderTyping();
}

function stopTyping(userId) {
  clearTimeout(typingUntil.get(userId));
  if (typingUntil.delete(userId)) renderTyping();
}

// --- the sparkline ----------------------------------------------------------------

function loadSpark({ body, position }) {
  spark.counts = body.counts.slice();
  spark.size = body.bucket_seconds * 1000;
  spark.start = Date.parse(body.start);
  spark.skew = Date.parse(body.now) - Date.now(); // server clock minus ours
  spark.count = body.event_count;
  spark.at = position; // updates up to here are in the counts
  slideSpark(Date.now() + spark.skew);
  setInterval(() => slideSpark(Date.now() + spark.skew), 5000);
}

function slideSpark(t) {
  // Keep the window's length, its last bucket being the one of time t (server time).
  const behind = Math.floor((t - spark.start) / spark.size) - (spark.counts.length - 1);
  if (behind > 0) {
    const kept = spark.counts.slice(Math.min(behind, spark.counts.length));
    spark.counts = [...kept, ...new Array(spark.counts.length - kept.length).fill(0)];
    spark.start += behind * spark.size;
  }
  renderSpark();
}

function addSparkEvents(ts, eventCount) {
  // An update carries the issue's count: what it adds since the last one came in at its time.
  const added = eventCount - spark.count;
  spark.count = Math.max(spark.count, eventCount);
  if (!spark.counts.length || added <= 0) return;
  const t = ts ? Date.parse(ts) : Date.now() + spark.skew;
  slideSpark(t);
  const index = Math.floor((t - spark.start) / spark.size);
  if (index < 0) return; // older than the window
  spark.counts[Math.min(index, spark.counts.length - 1)] += added;
  renderSpark();
}

function renderSpark() {
  const counts = spark.counts;
  if (!counts.length) return;
  const max = Math.max(1, ...counts);
  const x = (i) => (counts.length === 1 ? 300 : (i / (counts.length - 1)) * 300);
  const y = (v) => 46 - (v / max) * 44;
  $("spark-line").setAttribute("points", counts.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  const total = counts.reduce((a, b) => a + b, 0);
  Object.assign($("sparkline").dataset, { counts: counts.join(","), total: String(total), last: String(counts.at(-1)) });
  const minutes = Math.round((counts.length * spark.size) / 60_000);
  $("spark-caption").textContent =
    `Events per minute, last ${minutes} min: ${total} event${total === 1 ? "" : "s"}, ${counts.at(-1)} this minute`;
}

// --- loading, then going live ----------------------------------------------------

async function loadWithPosition(path) {
  const response = await authFetch("GET", path);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(response.status === 404 ? "No such issue." : body?.detail || `HTTP ${response.status}`);
  return { body, position: parsePosition(response.headers.get("Realtime-Position"))[channel] ?? 0 };
}

async function start() {
  const session = currentSession();
  if (!session || !issueId) {
    $("signed-out").hidden = false;
    return;
  }
  me = { id: String(jwtClaims(session.access).user_id ?? ""), username: session.username };
  $("me").hidden = false;
  $("me-name").textContent = session.username;
  try {
    for (const u of await api("GET", "/api/realtime/presence/")) users.set(String(u.user_id), u.username);
  } catch {
    // names fall back to "user <id>"
  }
  let loaded;
  try {
    loaded = await Promise.all([
      loadWithPosition(`/api/issues/${issueId}/`),
      loadWithPosition(`/api/issues/${issueId}/comments/?limit=500`),
      loadWithPosition(`/api/issues/${issueId}/events/timeline/?bucket=minute&buckets=60`),
    ]);
  } catch (err) {
    showError(err);
    return;
  }
  const [{ body: loadedIssue, position: issuePosition }, { body: page, position: commentsPosition }, timeline] = loaded;
  issue = loadedIssue;
  issueAt = issuePosition;
  $("issue-app").hidden = false;
  renderIssue();
  for (const comment of Array.isArray(page) ? page : page.results || []) addComment(comment);
  loadSpark(timeline);

  const scheme = location.protocol === "https:" ? "wss" : "ws";
  client = new WebSocketClient({
    url: `${scheme}://${location.host}`,
    getToken,
    reconnectInterval: 1000,
    maxReconnectAttempts: Infinity,
  });
  window.dexter = { client }; // for the console and the browser tests
  client.on("status", (state) => {
    $("conn").dataset.state = state;
    $("conn-text").textContent = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", closed: "Offline" }[state] || state;
  });
  client.on("issue_update", onIssueUpdate);
  client.on("members", (name, members) => name === channel && renderMembers(members));
  client.onSignal(channel, "typing", (msg) => String(msg.user_id) !== me.id && startTyping(String(msg.user_id)));
  client.onSignal(channel, "typing_stop", (msg) => stopTyping(String(msg.user_id)));
  client.on("reset", (event) => event.channel === channel && location.reload());
  // From the oldest of the loads: what is newer than all arrives, and the issue's
  // own load and the sparkline skip what they hold already (issueAt, spark.at).
  client.subscribe(channel, { presence: true, since: Math.min(issuePosition, commentsPosition, timeline.position) });
  client.connect();
}

// --- controls ----------------------------------------------------------------------

$("status-control").addEventListener("change", (e) => patch({ status: e.target.value }, e.target));
$("assignee-control").addEventListener("change", (e) => patch({ assignee: e.target.value || null }, e.target));

const box = $("comment-body");
box.addEventListener("focus", () => client?.setActivity(channel, "commenting").catch(() => {}));
box.addEventListener("blur", () => {
  if (!box.value.trim()) client?.setActivity(channel, null).catch(() => {});
});
box.addEventListener("input", () => {
  if (!client) return;
  if (!box.value.trim()) {
    lastTypingSent = 0;
    client.signal(channel, "typing_stop", {});
  } else if (Date.now() - lastTypingSent > SENT_EVERY_MS) {
    lastTypingSent = Date.now();
    client.signal(channel, "typing", { field: "comment" });
  }
});
$("comment-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = event.currentTarget.querySelector("button");
  const body = box.value.trim();
  if (!body) return;
  button.disabled = true;
  try {
    addComment(await api("POST", `/api/issues/${issueId}/comments/`, { body }));
    box.value = "";
    lastTypingSent = 0;
    client?.signal(channel, "typing_stop", {});
    showError(null);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
});

start();
