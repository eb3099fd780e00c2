// The dashboard's signed-in session (sessionStorage "dexter.auth", written by
// dashboard.js at sign-in) for the other pages of the dashboard: the access
// token, refreshed shortly before it expires, and an authenticated fetch.
const AUTH_KEY = "dexter.auth";
const REFRESH_MARGIN_MS = 30_000;

let session = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null"); // {access, refresh, username}
let refreshing = null;

export const currentSession = () => session;

export function jwtClaims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

function refreshAccess() {
  refreshing ??= (async () => {
    const response = await fetch("/api/auth/token/refresh/", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh: session.refresh }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      session = null;
      sessionStorage.removeItem(AUTH_KEY);
      throw new Error("Your session has expired. Sign in again on the dashboard.");
    }
    session = { ...session, access: body.access, refresh: body.refresh || session.refresh };
    sessionStorage.setItem(AUTH_KEY, JSON.stringify(session));
  })().finally(() => (refreshing = null));
  return refreshing;
}

/** A current access token (the WebSocketClient's getToken). */
export async function getToken() {
  if (!session) throw new Error("signed out");
  const { exp = 0, iat = 0 } = jwtClaims(session.access);
  const margin = Math.min(REFRESH_MARGIN_MS, ((exp - iat) * 1000) / 4);
  if (exp * 1000 - Date.now() < margin) await refreshAccess();
  return session.access;
}

/** fetch() as the signed-in user; resolves with the Response (a 401 is retried once after a refresh). */
export async function authFetch(method, path, body, retry = true) {
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${await getToken()}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && retry) {
    await refreshAccess();
    return authFetch(method, path, body, false);
  }
  return response;
}

/** authFetch, then the JSON body; throws an Error with the API's message on a non-2xx. */
export async function api(method, path, body) {
  const response = await authFetch(method, path, body);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && (data.detail || Object.entries(data).map(([k, v]) => `${k}: ${[].concat(v).join(" ")}`).join("; "));
    throw new Error(detail || `${method} ${path}: HTTP ${response.status}`);
  }
  return data;
}
