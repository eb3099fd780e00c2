// The dashboard's feeds: alert triggers (`alerts`), newest first, and the announcement banner (`global`).
import { $, el, timeText } from "./dom.js";
import { api } from "./session.js";

const MAX_ALERTS = 50;
const alertSeqs = new Set();
let issueOf = () => null; // issue id -> the issue the page shows, for an alert's title

/** Name alerts' issues with `lookup(id)` (the issue the page has, or nothing). */
export function nameIssuesWith(lookup) {
  issueOf = lookup;
}

/** No alert shown yet (the feed starts from history). */
export const noAlerts = () => alertSeqs.size === 0;

// --- alerts -----------------------------------------------------------------

// What the alert measured: "120 events > 100" for a threshold, "matched" for a rule match.
function alertDetail(data) {
  if (data.condition === "match") return "new issue matched";
  if (typeof data.value === "number" && typeof data.threshold === "number") {
    return `${data.value} event${data.value === 1 ? "" : "s"} > ${data.threshold}`;
  }
  return "";
}

export function addAlert(msg) {
  const seq = Number(msg.seq);
  if (alertSeqs.has(seq)) return;
  alertSeqs.add(seq);
  const data = msg.data || {};
  const issue = msg.issue_id ? issueOf(String(msg.issue_id)) : null;
  const message = data.message || "Alert triggered";
  const detail = [
    issue && !message.includes(issue.title) ? `Issue: ${issue.title}` : "",
    alertDetail(data),
    timeText(msg.ts),
  ].filter(Boolean);
  const item = el(
    "li",
    { className: "alert", dataset: { seq: String(seq), alertId: String(msg.alert_id) } },
    el(
      "div",
      { className: "alert-head" },
      el("span", { className: `badge sev-${data.severity}`, textContent: data.severity || "alert" }),
      el("span", { className: "alert-msg", textContent: message }),
    ),
    el("div", { className: "alert-meta", textContent: detail.join(" · ") }),
  );
  const feed = $("alert-feed");
  const later = [...feed.children].find((li) => Number(li.dataset.seq) < seq);
  feed.insertBefore(item, later || null);
  while (feed.children.length > MAX_ALERTS) feed.lastElementChild.remove();
  $("alerts-empty").hidden = true;
}

// The feed starts with the newest stored triggers: the channel's own history.
export async function loadRecentAlerts(latestSeq) {
  const since = Math.max(0, latestSeq - MAX_ALERTS);
  try {
    const body = await api("GET", `/api/realtime/channels/alerts/history/?since=${since}&limit=${MAX_ALERTS}`);
    for (const msg of body.messages || []) if (msg.type === "alert_trigger") addAlert(msg);
  } catch (err) {
    console.warn("could not load alert history", err);
  }
}

// --- announcements (`global`) ------------------------------------------------

// The newest announcement stays up until dismissed; an older one (a replay) never replaces it.
let announcementSeq = 0;
export function showAnnouncement(msg) {
  const seq = Number(msg.seq) || 0;
  if (seq && seq <= announcementSeq) return;
  announcementSeq = seq;
  $("announcement-text").textContent = String(msg.message ?? "");
  $("announcement-time").textContent = timeText(msg.ts);
  $("announcement").hidden = false;
}

/** Empty both feeds (sign-out). */
export function clearFeeds() {
  alertSeqs.clear();
  $("alert-feed").replaceChildren();
  $("alerts-empty").hidden = false;
  $("announcement").hidden = true;
  announcementSeq = 0;
}

$("announcement-dismiss").addEventListener("click", () => ($("announcement").hidden = true));
