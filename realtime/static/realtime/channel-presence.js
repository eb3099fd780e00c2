/**
 * Channel presence state (docs/protocol.md section 10) as plain functions, used
 * by WebSocketClient: a channel's members are a Map(user_id -> entry), replaced
 * by each `channel_presence` snapshot and patched by each `channel_presence_diff`
 * (leaves first, then joins: a changed member is a leave and a join of one user).
 */

/** The members map after `msg` (a snapshot or a diff); `current` is not modified. */
export function applyChannelPresence(current, msg) {
  if (msg.type === 'channel_presence') {
    return new Map((msg.members || []).map((m) => [String(m.user_id), { ...m, user_id: String(m.user_id) }]));
  }
  const next = new Map(current || []);
  for (const m of msg.leaves || []) next.delete(String(m.user_id));
  for (const m of msg.joins || []) next.set(String(m.user_id), { ...m, user_id: String(m.user_id) });
  return next;
}

/** Members sorted as the server sorts them: by username, then user id. */
export function memberList(members) {
  return Array.from((members || new Map()).values()).sort(
    (a, b) => String(a.username).localeCompare(String(b.username)) || String(a.user_id).localeCompare(String(b.user_id)),
  );
}

/** A valid signal event: 1-32 of a-z 0-9 _ (section 11). */
export function validSignalEvent(event) {
  return typeof event === 'string' && /^[a-z0-9_]{1,32}$/.test(event);
}
