// How many people are on each issue, for the dashboard's list (docs/protocol.md section 10).
//
// One GET of /api/realtime/channels/presence/?kind=issue every few seconds,
// not a presence subscription per row: the list would make its reader a
// member of every issue it shows.
const EVERY_MS = 3000;

let counts = new Map(); // issue id -> people on it
let timer = null;

/** How many people are on issue `id` now (0 when nobody). */
export const peopleOn = (id) => counts.get(String(id)) || 0;

/** Poll the counts with `api` (the page's authenticated GET); `changed(ids)` redraws those rows. */
export function followPeople(api, changed) {
  stopPeople();
  const poll = async () => {
    try {
      const body = await api("GET", "/api/realtime/channels/presence/?kind=issue");
      const next = new Map(Object.entries(body.counts || {}).map(([name, n]) => [name.slice("issue:".length), n]));
      const ids = new Set([...counts.keys(), ...next.keys()].filter((id) => counts.get(id) !== next.get(id)));
      counts = next;
      if (ids.size) changed([...ids]);
    } catch {
      // the next poll tries again
    }
    timer = setTimeout(poll, document.hidden ? EVERY_MS * 4 : EVERY_MS);
  };
  poll();
}

export function stopPeople() {
  clearTimeout(timer);
  timer = null;
  counts = new Map();
}
