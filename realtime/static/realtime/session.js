// The signed-in session every page of the dashboard shares (sessionStorage
// "dexter.auth": signed in on one page, signed in on the others of the tab):
// sign-in and sign-out, the access token, refreshed shortly before it expires,
// and an authenticated fetch.
const AUTH_KEY = "dexter.auth";
// Refresh the access token this long before it expires (or a quarter of its
// lifetime, if shorter), so a request never starts with a token that dies on the way.
const REFRESH_MARGIN_MS = 30_000;

let session = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null"); // {access, refresh, username}
let refreshing = null;
const endListeners = [];

export const currentSession = () => session;

export function jwtClaims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

function store(next) {
  session = next;
  if (next) sessionStorage.setItem(AUTH_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(AUTH_KEY);
}

/** The API's message in an error body: its `detail`, else "field: errors" pairs. */
export function errorText(data) {
  if (!data || typeof data !== "object") return "";
  if (data.detail) return String(data.detail);
  return Object.entries(data)
    .map(([field, errors]) => `${field}: ${[].concat(errors).join(" ")}`)
    .join("; ");
}

async function postJSON(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { ok: response.ok, status: response.status, body: await response.json().catch(() => null) };
}

/** Sign in and keep the session; throws an Error whose message is for the sign-in form. */
export async function signIn(username, password) {
  const r = await postJSON("/api/auth/token/", { username, password });
  if (!r.ok) throw new Error(r.status === 401 ? "Wrong username or password." : errorText(r.body) || "Could not sign in.");
  store({ access: r.body.access, refresh: r.body.refresh, username });
}

/** Wire the pages' sign-in form (templates/_signin.html): sign in, then `signedIn()`; a failure is shown in it. */
export function signInForm(signedIn) {
  const form = document.getElementById("signin-form");
  const error = document.getElementById("signin-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await signIn(form.username.value.trim(), form.password.value);
      form.password.value = "";
      error.textContent = "";
      signedIn();
    } catch (err) {
      error.textContent = err.message || "Could not sign in.";
    } finally {
      button.disabled = false;
    }
  });
}

/** Forget the session (this tab's pages are signed out). */
export function signOut() {
  store(null);
}

/** Call `listener(message)` when the server refuses to refresh the session (it has ended). */
export function onSessionEnd(listener) {
  endListeners.push(listener);
}

function refreshAccess() {
  refreshing ??= (async () => {
    const r = await postJSON("/api/auth/token/refresh/", { refresh: session.refresh });
    if (!r.ok) {
      store(null);
      for (const listener of endListeners) listener("Your session has expired. Please sign in again.");
      throw new Error("Your session has expired. Sign in again on the dashboard.");
    }
    store({ ...session, access: r.body.access, refresh: r.body.refresh || session.refresh });
  })().finally(() => (refreshing = null));
  return refreshing;
}

// The WebSocketClient's getToken: a fresh access token, or the current one when
// the server is unreachable (it is then rejected with 4401 and the client asks
// again). The client also calls it shortly before the socket's token expires
// and hands the server the fresh one (`auth`), so a page never blinks "reconnecting".
export async function getToken() {
  if (!session) throw new Error("signed out");
  const { exp = 0, iat = 0 } = jwtClaims(session.access);
  const margin = Math.min(REFRESH_MARGIN_MS, ((exp - iat) * 1000) / 4);
  if (exp * 1000 - Date.now() < margin) {
    try {
      await refreshAccess();
    } catch (err) {
      if (!session) throw err;
    }
  }
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
  if (!response.ok) throw new Error(errorText(data) || `${method} ${path}: HTTP ${response.status}`);
  return data;
}
