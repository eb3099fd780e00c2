// The Dexter dashboard: sign in, then issues, alerts and presence, live over one WebSocketClient.
//
// The page loads issues and users over the REST API once, then follows the
// socket: every `issue_update` carries the whole row in `data`, in seq order,
// so it is drawn as is. The list is newest first (by id, the creation order)
// for everyone: the first load asks for that order and live rows are inserted
// where they sort, so two people see the same list. A message about an issue
// the page does not know is fetched, not drawn from the message (which may hold
// only some fields, or be about an issue that does not exist). A REST reply never overwrites a row that a message
// updated after the request left (the message is newer), and rows are keyed
// by issue id, so nothing can show twice.
import { addAlert, clearFeeds, loadRecentAlerts, nameIssuesWith, noAlerts, showAnnouncement } from "./dashboard-feeds.js";
import { WebSocketClient } from "./dexter-realtime.js";
import { $, el, timeText } from "./dom.js";
import { followPeople, peopleOn, stopPeople } from "./issue-counts.js";
import { api, currentSession, getToken, jwtClaims, onSessionEnd, signInForm, signOut as forgetSession } from "./session.js";

let client = null;
let me = null; // {id, username}
let everConnected = false;
const users = new Map(); // id -> {id, username, status, activity, last_seen}
const issues = new Map(); // id -> issue as the API returns it
const rows = new Map(); // id -> <li>
const heard = new Map(); // issue id -> performance.now() of its last issue_update
const fetching = new Map(); // issue id -> its GET in flight (one per id)

const results = (data) => (Array.isArray(data) ? data : data?.results || []);

// --- helpers ----------------------------------------------------------------

const idOf = (value) => (value === null || value === undefined || value === "" ? "" : String(value.id ?? value));
const username = (id) => users.get(idOf(id))?.username || (id ? `user ${id}` : "nobody");
const byIdDesc = (a, b) => Number(b) - Number(a) || String(b).localeCompare(String(a));

function showError(id, err) {
  $(id).textContent = err ? String(err.message || err) : "";
}

// --- connection indicator and banner ----------------------------------------

const STATE_TEXT = { connecting: "Connecting…", open: "Live", reconnecting: "Reconnecting…", closed: "Offline" };
// How long "Connected again" stays up after a reconnect before the banner folds away.
const RESTORED_NOTICE_MS = 3000;
let bannerTimer = null;

// The banner is a live region that is always in the page (announcements of a
// region that appears at the same moment get lost); it is folded when empty.
function banner(kind, text) {
  clearTimeout(bannerTimer);
  $("banner").dataset.shown = String(Boolean(kind));
  $("banner").dataset.kind = kind || "";
  $("banner-text").textContent = text;
  $("reconnect").hidden = kind !== "closed";
}

// The indicator names the fallback transport (protocol section 13) when it is in use.
function showState(state, _previous, transport = client?.transport) {
  $("conn").dataset.state = state;
  $("conn").dataset.transport = transport || "websocket";
  const text = STATE_TEXT[state] || state;
  $("conn-text").textContent = state === "open" && transport === "sse" ? `${text} (SSE fallback)` : text;
  const wasLost = $("banner").dataset.kind === "reconnecting" || $("banner").dataset.kind === "closed";
  if (!currentSession() || !everConnected) {
    banner(null, "");
  } else if (state === "reconnecting") {
    banner("reconnecting", "Connection lost. Reconnecting…");
  } else if (state === "closed") {
    banner("closed", "Disconnected from Dexter. Live updates are paused.");
  } else if (state === "open" && wasLost) {
    banner("restored", "Connected again. Live updates resumed.");
    bannerTimer = setTimeout(() => banner(null, ""), RESTORED_NOTICE_MS);
  }
  if (state === "open") everConnected = true;
}

// --- issues -----------------------------------------------------------------

// Draw `issue`; a REST reply passes `askedAt`, when its request left, and loses
// to any message about that issue heard since.
function putIssue(issue, { askedAt = null, flash = false } = {}) {
  const id = String(issue.id);
  if (askedAt !== null && heard.get(id) > askedAt) return;
  issues.set(id, issue);
  let row = rows.get(id);
  if (!row) {
    row = el("li", { className: "issue", dataset: { issueId: id } });
    rows.set(id, row);
    // Before the newest row older than this one; at the end when none is older.
    const next = [...rows.keys()].filter((other) => other !== id && byIdDesc(other, id) > 0).sort(byIdDesc)[0];
    $("issue-list").insertBefore(row, next ? rows.get(next) : null);
  }
  renderIssue(row, issue);
  if (flash) {
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }
  updateIssueCounts();
}

function removeIssue(id) {
  issues.delete(id);
  rows.get(id)?.remove();
  rows.delete(id);
  updateIssueCounts();
}

function renderIssue(row, issue) {
  const id = String(issue.id);
  const status = issue.status || "unresolved";
  const assignee = idOf(issue.assignee);
  const open = status === "unresolved";
  row.dataset.status = status;
  row.dataset.assignee = assignee;

  const select = el("select", { id: `assign-${id}`, className: "assign", dataset: { issueId: id } });
  select.append(el("option", { value: "", textContent: "Unassigned" }));
  const known = [...users.values()].sort((a, b) => a.username.localeCompare(b.username));
  if (assignee && !users.has(assignee)) known.push({ id: assignee, username: username(assignee) });
  for (const user of known) select.append(el("option", { value: user.id, textContent: user.username }));
  select.value = assignee;

  const events = issue.event_count ?? 0;
  // A live update must not steal the keyboard: refocus the same control after the redraw.
  const focused = row.contains(document.activeElement) ? document.activeElement.classList[0] : null;
  row.replaceChildren(
    el("div", { className: "issue-title" }, el("a", { href: `/issues/${id}/`, textContent: issue.title })),
    el(
      "div",
      { className: "issue-actions" },
      el("label", { className: "sr-only", htmlFor: select.id, textContent: `Assignee for ${issue.title}` }),
      select,
      el("button", {
        type: "button",
        className: open ? "resolve" : "resolve secondary",
        textContent: open ? "Resolve" : "Reopen",
        dataset: { issueId: id, to: open ? "resolved" : "unresolved" },
        "aria-label": `${open ? "Resolve" : "Reopen"} ${issue.title}`,
      }),
    ),
    el(
      "div",
      { className: "issue-meta" },
      el("span", { className: `badge level-${issue.level}`, textContent: issue.level || "error" }),
      el("span", { className: `badge status-${status} issue-status`, textContent: status }),
      el("span", { textContent: `${events} event${events === 1 ? "" : "s"}` }),
      peopleOn(id) ? el("span", { className: "issue-people", textContent: `${peopleOn(id)} on it` }) : null,
      assignee ? el("span", { className: "issue-assignee", textContent: `assigned to ${username(assignee)}` }) : null,
      issue.last_seen ? el("span", { textContent: `last seen ${timeText(issue.last_seen)}` }) : null,
    ),
  );
  if (focused) row.querySelector(`.${focused}`)?.focus();
  applyFilter(row);
}

function applyFilter(row) {
  const wanted = $("issue-filter").value;
  row.hidden = wanted !== "all" && row.dataset.status !== wanted;
}

function updateIssueCounts() {
  const open = [...issues.values()].filter((i) => (i.status || "unresolved") === "unresolved").length;
  $("issue-count").textContent = issues.size ? `(${open} open of ${issues.size})` : "";
  $("issues-empty").hidden = issues.size > 0;
}

// Run `fn` at most once at a time; calls made meanwhile cause one more run after it.
function coalesced(fn) {
  let running = null;
  let again = false;
  return function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await fn();
      } while (again);
    })().finally(() => (running = null));
    return running;
  };
}

// The whole list, at start and after a `reset`. An issue missing from the reply
// is gone, unless a message about it came after the request left.
const loadIssues = coalesced(async () => {
  const askedAt = performance.now();
  try {
    const list = results(await api("GET", "/api/issues/?ordering=-id&limit=200"));
    const seen = new Set(list.map((issue) => String(issue.id)));
    for (const id of [...issues.keys()]) if (!seen.has(id) && !(heard.get(id) > askedAt)) removeIssue(id);
    for (const issue of list) putIssue(issue, { askedAt });
    showError("issues-error", null);
  } catch (err) {
    showError("issues-error", err);
  }
});

// An issue the page has no row for: draw the server's row, or nothing when it
// does not exist (404) or cannot be read. Never a row guessed from a message.
function fetchIssue(id) {
  if (fetching.has(id)) return fetching.get(id);
  const askedAt = performance.now();
  const request = api("GET", `/api/issues/${encodeURIComponent(id)}/`)
    .then((issue) => {
      if (!(heard.get(id) > askedAt) || !issues.has(id)) putIssue(issue, { flash: true });
    })
    .catch(() => {}) // not found or not allowed: not ours to show
    .finally(() => fetching.delete(id));
  fetching.set(id, request);
  return request;
}

function onIssueUpdate(msg) {
  const id = String(msg.issue_id);
  heard.set(id, performance.now());
  if (msg.update_type === "deleted") return removeIssue(id);
  if (!issues.has(id)) return fetchIssue(id);
  const { changes, resolved_by, comment, ...fields } = msg.data || {};
  putIssue({ ...issues.get(id), ...fields, id }, { flash: true });
}

async function patchIssue(id, change, control) {
  control.disabled = true;
  const askedAt = performance.now();
  try {
    putIssue(await api("PATCH", `/api/issues/${encodeURIComponent(id)}/`, change), { askedAt });
    showError("issues-error", null);
  } catch (err) {
    showError("issues-error", err);
    const issue = issues.get(id);
    if (issue) renderIssue(rows.get(id), issue);
  } finally {
    control.disabled = false;
  }
}

// --- presence ---------------------------------------------------------------

const loadUsers = coalesced(async () => {
  try {
    for (const u of await api("GET", "/api/realtime/presence/")) {
      users.set(String(u.user_id), { ...users.get(String(u.user_id)), ...u, id: String(u.user_id) });
    }
  } catch (err) {
    console.warn("could not load users", err);
  }
  renderPresence();
  for (const [id, issue] of issues) renderIssue(rows.get(id), issue); // assignee names and options
});

function applyPresence(entry) {
  const id = String(entry.user_id);
  if (!users.has(id)) {
    users.set(id, { id, username: `user ${id}` });
    loadUsers(); // someone new: learn their name
  }
  Object.assign(users.get(id), { status: entry.status, activity: entry.activity, last_seen: entry.last_seen });
}

function onPresenceState(msg) {
  for (const user of users.values()) user.status = "offline";
  for (const entry of msg.users || []) applyPresence(entry);
  renderPresence();
}

function onPresenceUpdate(msg) {
  applyPresence(msg);
  renderPresence();
}

function renderPresence() {
  const here = [...users.values()]
    .filter((u) => u.status && u.status !== "offline")
    .sort((a, b) => a.username.localeCompare(b.username));
  $("presence-list").replaceChildren(
    ...here.map((u) =>
      el(
        "li",
        { className: "person", dataset: { userId: u.id, username: u.username, status: u.status } },
        el("span", { className: "dot", "aria-hidden": "true" }),
        el("span", { className: "person-name", textContent: u.username + (me && u.id === me.id ? " (you)" : "") }),
        el("span", { className: "person-status", textContent: u.status }),
        u.activity ? el("span", { className: "person-activity", textContent: u.activity }) : null,
      ),
    ),
  );
  if (!here.length) $("presence-list").append(el("li", { className: "empty", textContent: "Nobody is online." }));
}

// The client keeps the last presence and sends it again after every reconnect.
function sendMyPresence() {
  client?.setPresence($("status-select").value, $("activity").value.trim() || null);
}

// --- wiring -----------------------------------------------------------------

function startClient() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  client = new WebSocketClient({
    url: `${scheme}://${location.host}`,
    getToken,
    reconnectInterval: 1000,
    // A dashboard stays up for days: keep trying (backoff is capped) rather than give up.
    maxReconnectAttempts: Infinity,
  });
  window.dexter = { client }; // for the console and the browser tests
  client.on("status", showState);
  client.on("connection", (msg) => {
    if (msg.user) me = { id: String(msg.user.id), username: msg.user.username };
    renderPresence();
  });
  client.on("issue_update", onIssueUpdate);
  client.on("presence_state", onPresenceState);
  client.on("presence_update", onPresenceUpdate);
  client.on("alert_trigger", addAlert);
  client.on("announcement", showAnnouncement);
  client.on("subscribed", (msg) => {
    if (msg.channel === "alerts" && noAlerts() && msg.seq > 0) loadRecentAlerts(msg.seq);
  });
  client.on("reset", ({ channel, to }) => {
    // Messages were lost beyond the stored history: reload what that channel feeds.
    if (channel === "issues") loadIssues();
    if (channel === "alerts") loadRecentAlerts(to);
  });
  for (const channel of ["global", "issues", "alerts", "presence"]) client.subscribe(channel);
  showState("connecting");
  client.connect();
}

function showApp() {
  const session = currentSession();
  const signedIn = Boolean(session);
  $("signin").hidden = signedIn;
  $("app").hidden = !signedIn;
  $("me").hidden = !signedIn;
  if (!signedIn) return;
  $("me-name").textContent = session.username;
  const claims = jwtClaims(session.access);
  me = { id: String(claims.user_id ?? ""), username: session.username };
  startClient();
  loadUsers().then(loadIssues);
  followPeople(api, (ids) => {
    for (const id of ids) if (issues.has(id)) renderIssue(rows.get(id), issues.get(id));
  });
}

function signOut(message = "") {
  stopPeople();
  client?.close();
  client = null;
  forgetSession();
  everConnected = false;
  banner(null, "");
  users.clear();
  issues.clear();
  rows.clear();
  $("issue-list").replaceChildren();
  clearFeeds();
  showState("closed");
  showApp();
  $("signin-error").textContent = message;
}

nameIssuesWith((id) => issues.get(id));
signInForm(showApp);

$("sign-out").addEventListener("click", () => signOut());
onSessionEnd(signOut); // a refresh refused: back to the sign-in form, saying why
$("reconnect").addEventListener("click", () => client?.connect());

$("new-issue").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const askedAt = performance.now();
    putIssue(await api("POST", "/api/issues/", { title: form.title.value.trim(), level: form.level.value }), { askedAt });
    form.title.value = "";
    showError("issues-error", null);
  } catch (err) {
    showError("issues-error", err);
  } finally {
    button.disabled = false;
  }
});

$("issue-list").addEventListener("click", (event) => {
  const button = event.target.closest("button.resolve");
  if (button) patchIssue(button.dataset.issueId, { status: button.dataset.to }, button);
});

$("issue-list").addEventListener("change", (event) => {
  const select = event.target.closest("select.assign");
  if (!select) return;
  const value = select.value;
  patchIssue(select.dataset.issueId, { assignee: value === "" ? null : /^\d+$/.test(value) ? Number(value) : value }, select);
});

$("issue-filter").addEventListener("change", () => rows.forEach(applyFilter));
$("status-select").addEventListener("change", sendMyPresence);
$("my-status").addEventListener("submit", (event) => {
  event.preventDefault();
  sendMyPresence();
});

showState("closed");
showApp();
