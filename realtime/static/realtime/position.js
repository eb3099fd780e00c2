/**
 * Load state over HTTP, then go live without a gap (docs/protocol.md section 12).
 *
 * `loadWithPosition(client, path)` GETs `path` from the client's server with its
 * token and returns the body with the `Realtime-Position` header parsed; the
 * caller subscribes with `{since: position[channel]}`, so every change after
 * the load arrives and none before it.
 */

/** `issues=131,issue:123=57` -> {issues: 131, 'issue:123': 57}. */
export function parsePosition(header) {
  const out = {};
  for (const part of String(header || '').split(',')) {
    const at = part.lastIndexOf('=');
    const name = part.slice(0, at).trim();
    const seq = Number(part.slice(at + 1));
    if (at > 0 && name && Number.isInteger(seq) && seq >= 0) out[name] = seq;
  }
  return out;
}

/** The HTTP base of a client's server (its ws(s):// url as http(s)://). */
export function httpBase(client) {
  return String(client.url).replace(/^ws(s?):/, 'http$1:');
}

/** GET `path` as the client's user: {data, position}; throws an Error with `status` on a non-2xx. */
export async function loadWithPosition(client, path, { fetch: fetchImpl = globalThis.fetch } = {}) {
  const token = await client.currentToken();
  const response = await fetchImpl(httpBase(client) + path, {
    headers: token ? { Authorization: `Bearer ${token}`, Accept: 'application/json' } : { Accept: 'application/json' },
  });
  if (!response.ok) {
    const err = new Error(`GET ${path}: ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return { data: await response.json(), position: parsePosition(response.headers.get('Realtime-Position')) };
}
