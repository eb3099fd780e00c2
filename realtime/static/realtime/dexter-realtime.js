/**
 * Dexter real-time client: a dependency-free ES module speaking protocol version 1
 * (docs/protocol.md in the repository). Served as /static/realtime/dexter-realtime.js.
 *
 *     import { WebSocketClient } from '/static/realtime/dexter-realtime.js';
 *     const client = new WebSocketClient({ url: 'ws://localhost:8000', getToken });
 *     client.on('issue_update', (msg) => render(msg));
 *     client.subscribe('issues');
 *     client.connect();
 *
 * The one rule a caller must know: handlers see each publication exactly once and
 * in order per channel. The client drops repeats by (channel, seq), fills gaps from
 * `history`, resumes every subscription with `since` after a reconnect, and emits
 * `reset` when the server could not recover what was missed: the page must then
 * reload that channel's state from the HTTP API.
 */

import { applyChannelPresence, memberList, validSignalEvent } from './channel-presence.js';
import { SSESocket } from './dexter-sse.js';

export const PROTOCOL_VERSION = 1;

/** Close codes of docs/protocol.md section 5, grouped by what a client does after them. */
export const CLOSE_CODES = Object.freeze({
  /** Reconnect with jittered exponential backoff and resume with `since`. */
  reconnect: Object.freeze([1001, 1006, 1011, 4408, 4429, 4500, 4503]),
  /** Get a fresh token first (getToken), give up if there is none. */
  tokenInvalid: 4401,
  /** Stay closed. */
  final: Object.freeze([1000, 1008, 4403, 4409, 4413]),
});

export const STATES = Object.freeze(['connecting', 'open', 'reconnecting', 'closed']);

const RECONNECT = new Set(CLOSE_CODES.reconnect);
const FINAL = new Set(CLOSE_CODES.final);

// Defaults mirror the documented frontend settings (REACT_APP_WS_*).
const DEFAULT_RECONNECT_INTERVAL = 5000;
const DEFAULT_MAX_RECONNECT_ATTEMPTS = 5;
// One minute: long enough that a fleet of tabs does not hammer a recovering
// server, short enough that a person waiting on the page is not left for long.
const DEFAULT_MAX_RECONNECT_DELAY = 60000;
// Replies come within milliseconds on a healthy socket; ten seconds means the
// reply was lost (e.g. the request was dropped by the server's rate limit).
const DEFAULT_REQUEST_TIMEOUT = 10000;
// The server's cap on `history.limit` (section 3).
const MAX_HISTORY_LIMIT = 1000;
// Frames sent while reconnecting wait for the socket; beyond this the caller is
// told at once rather than growing memory while the server is away.
const MAX_QUEUED = 100;
// The server closes after 2 x heartbeat_interval of silence; the client gives the
// server one interval more before it declares the socket dead.
const MISSED_HEARTBEATS_BEFORE_DEAD = 3;
// Used when neither the options nor the server say otherwise (the server default).
const DEFAULT_HEARTBEAT_SECONDS = 30;
// Hand the socket a fresh token (an `auth` message) this long before the current
// one expires, or at 80% of its remaining lifetime if that comes first, so the
// server never closes with 4401 for a token that merely aged.
const TOKEN_REFRESH_MARGIN = 30000;
const TOKEN_REFRESH_FRACTION = 0.8;
// Never ask getToken again sooner than this (getToken may hand back the same token).
const MIN_TOKEN_REFRESH_DELAY = 1000;
// Transports, in order of preference: the WebSocket, then server-sent events
// (section 13) after the socket failed to open this many times in a row; while on
// SSE the WebSocket is tried again in the background every so often.
const DEFAULT_TRANSPORTS = Object.freeze(['websocket', 'sse']);
const DEFAULT_SSE_AFTER_FAILURES = 2;
const DEFAULT_WEBSOCKET_RETRY_INTERVAL = 30000;
const CLIENT_ID_KEY = 'dexter-realtime:client-id';
const SEQ_KEY_PREFIX = 'dexter-realtime:last-seq:';
const LOG_PREFIX = '[dexter-realtime]';

/**
 * Delay before reconnect attempt `attempt` (1-based): exponential from `base`,
 * capped at `cap`, with "equal jitter" so it lies in [d/2, d] where
 * d = min(cap, base * 2^(attempt-1)). Half is fixed (no instant reconnect storms),
 * half random (tabs dropped together spread out).
 */
export function computeBackoff(attempt, base = DEFAULT_RECONNECT_INTERVAL, cap = DEFAULT_MAX_RECONNECT_DELAY, random = Math.random) {
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(cap, base * 2 ** Math.min(n - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** A client id of protocol section 1: 1-64 of A-Z a-z 0-9 _ . - */
export function generateClientId() {
  const bytes = new Uint8Array(8);
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return 'tab-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function storageOf(name) {
  try {
    const s = globalThis[name];
    return s && typeof s.getItem === 'function' ? s : null;
  } catch {
    return null; // e.g. storage disabled by the browser's privacy settings
  }
}

/**
 * The `exp` claim of a JWT, in ms since the epoch, or null. The payload is read,
 * not verified: only the server can do that, this is to know when to refresh.
 */
export function tokenExpiry(token) {
  try {
    const part = String(token).split('.')[1];
    if (!part) return null;
    let b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    const exp = claims && claims.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * How long (ms) to wait before refreshing a token that expires at `expiresAt`:
 * at 80% of the remaining lifetime or 30 s before expiry, whichever is earlier
 * (for a token with 30 s or less left, at 80%), and never sooner than one
 * second; null when there is nothing to refresh (no exp, or it expires before
 * then).
 */
export function tokenRefreshDelay(expiresAt, now = Date.now()) {
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) return null;
  const remaining = expiresAt - now;
  if (!(remaining > 0)) return null; // too late: the server closes with 4401, which gets a fresh one
  let delay = remaining * TOKEN_REFRESH_FRACTION;
  if (remaining > TOKEN_REFRESH_MARGIN) delay = Math.min(delay, remaining - TOKEN_REFRESH_MARGIN);
  delay = Math.max(MIN_TOKEN_REFRESH_DELAY, Math.round(delay));
  return delay < remaining ? delay : null;
}

function redact(frame) {
  if (frame && typeof frame === 'object' && 'token' in frame) return { ...frame, token: '***' };
  return frame;
}

function redactUrl(url) {
  return String(url).replace(/([?&]token=)[^&]*/g, '$1***');
}

/** A protocol `error` reply (or a client-side failure) as a rejection value. */
export class RealtimeError extends Error {
  constructor(code, message, frame = null) {
    super(message || code);
    this.name = 'RealtimeError';
    this.code = code;
    this.channel = frame && frame.channel;
    this.frame = frame;
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Fire-and-forget callers (subscribe('issues') in an effect) must not produce
  // unhandled rejections; failures are also emitted as `error` events.
  promise.catch(() => {});
  return { promise, resolve, reject, settled: false };
}

function settle(d, ok, value) {
  if (!d || d.settled) return;
  d.settled = true;
  if (ok) d.resolve(value);
  else d.reject(value);
}

export class WebSocketClient {
  /** @param {import('./dexter-realtime').WebSocketClientOptions} [options] */
  constructor(options = {}) {
    this.options = options;
    this.reconnectInterval = options.reconnectInterval ?? DEFAULT_RECONNECT_INTERVAL;
    this.maxReconnectAttempts = options.maxReconnectAttempts ?? DEFAULT_MAX_RECONNECT_ATTEMPTS;
    this.maxReconnectDelay = options.maxReconnectDelay ?? DEFAULT_MAX_RECONNECT_DELAY;
    this.requestTimeout = options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT;
    this.debug = Boolean(options.debug);
    this._random = options.random || Math.random;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._window = options.window !== undefined ? options.window : globalThis.window;
    this._storage = options.storage !== undefined ? options.storage : storageOf('localStorage');
    this.url = this._baseUrl(options.url);
    this.clientId = options.clientId || this._tabClientId(options.sessionStorage);
    this._token = options.token || null;
    this._getToken = typeof options.getToken === 'function' ? options.getToken : null;
    const transports = (options.transports || DEFAULT_TRANSPORTS).filter((t) => t === 'websocket' || t === 'sse');
    this.transports = transports.length ? transports : ['websocket'];
    this.sseAfterFailures = options.sseAfterFailures ?? DEFAULT_SSE_AFTER_FAILURES;
    this.websocketRetryInterval = options.websocketRetryInterval ?? DEFAULT_WEBSOCKET_RETRY_INTERVAL;
    this._EventSource = options.EventSource || globalThis.EventSource;
    this._fetch = options.fetch || (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null);
    this._document = options.document !== undefined ? options.document : globalThis.document;
    this._transport = this.transports[0];
    this._wsFailures = 0; // WebSockets in a row that closed before their first frame
    this._gotFrame = false;
    this._probe = null; // the background WebSocket tried while on SSE
    this._probeTimer = null;
    this._tokenFresh = false;
    this._opens = 0; // _open() calls since connect(): every one after the first is a reconnect

    this._state = 'closed';
    this._handlers = new Map();
    this._ws = null;
    this._generation = 0;
    this._attempts = 0;
    this._reconnectTimer = null;
    this._heartbeatTimer = null;
    this._tokenTimer = null;
    this._socketToken = null; // the token the server holds for the current socket
    this._missedHeartbeats = 0;
    this._waitingForOnline = false;
    this._refCounter = 0;
    this._pending = new Map(); // ref -> {frame, onReply, d, timer}
    this._queue = []; // requests made while not open, sent on open
    this._subs = new Map(); // channel -> {d: deferred of first `subscribed`}
    this._lastSeq = new Map(); // channel -> highest seq delivered
    this._buffers = new Map(); // channel -> Map(seq -> msg) held behind a gap
    this._gapFills = new Set(); // channels with a history request in flight
    this._presence = null; // {status, activity, d} re-sent after every reconnect
    this._members = new Map(); // channel -> Map(user_id -> member), section 10
    this._activities = new Map(); // channel -> activity, re-sent after every re-subscribe
    this._openD = null;
    /** The last `connection` message (user, heartbeat_interval, ...). */
    this.connection = null;
    this._loadSeqs();

    this._onOnline = () => this._handleOnline();
    this._onOffline = () => this._handleOffline();
    this._onVisibility = () => {
      if (this._document && this._document.visibilityState === 'visible') this._handleOnline();
    };
  }

  /** The transport in use: 'websocket' or 'sse' (section 13). */
  get transport() {
    return this._transport;
  }

  /** What the connection indicator shows: the state and the transport. */
  get status() {
    return { state: this._state, transport: this._transport };
  }

  // --- public surface -------------------------------------------------------

  /** connecting | open | reconnecting | closed */
  get state() {
    return this._state;
  }

  get isConnected() {
    return this._state === 'open';
  }

  /** The signed-in user of this connection, or null (anonymous / not connected). */
  get user() {
    return this.connection ? this.connection.user : null;
  }

  /** Channels this client holds (or will hold once open). */
  get channels() {
    return Array.from(this._subs.keys());
  }

  /** The access token this client uses (from `getToken` when it has none yet), for HTTP calls. */
  async currentToken() {
    if (!this._token && this._getToken) this._token = (await this._getToken()) || null;
    return this._token;
  }

  /** Last seq delivered on `channel` (undefined if none yet). */
  lastSeq(channel) {
    return this._lastSeq.get(channel);
  }

  /**
   * Open the connection. Resolves with the server's `connection` message once
   * open; rejects if the client ends up closed first. Safe to call twice.
   */
  connect() {
    if (this._state !== 'closed') return this._openD ? this._openD.promise : Promise.resolve(this.connection);
    this._attempts = 0;
    this._opens = 0;
    this._openD = deferred();
    this._listenToWindow(true);
    this._setState('connecting');
    this._open();
    return this._openD.promise;
  }

  /** Close for good (code 1000): no reconnect until connect() is called again. */
  close(code = 1000, reason = 'client closed') {
    if (this._state === 'closed') return;
    const ws = this._ws;
    this._teardown(new RealtimeError('closed', 'the client was closed'));
    if (ws) {
      try {
        ws.close(code, reason);
      } catch {
        // already closing
      }
    }
    this._finish({ code, reason, wasClean: true, willReconnect: false });
  }

  /** Register `handler` for an event or message type; returns a function that removes it. */
  on(type, handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    // Wrap so the same function registered twice gets two independent removals.
    const entry = { handler };
    set.add(entry);
    return () => set.delete(entry);
  }

  off(type, handler) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const entry of set) if (entry.handler === handler) set.delete(entry);
  }

  /**
   * Subscribe to `channel` (now if open, else on open) and keep it across
   * reconnects. Resolves with the first `subscribed` reply; rejects on an `error`
   * reply (forbidden, not_found, ...), after which the channel is dropped.
   */
  subscribe(channel, options = {}) {
    let sub = this._subs.get(channel);
    if (sub) {
      if (options.presence && !sub.presence) {
        // Held already without presence: join it now (a subscribe again is allowed).
        sub.presence = true;
        if (this._state === 'open') this._sendSubscribe(channel);
      }
      return sub.d.promise;
    }
    sub = { d: deferred(), presence: Boolean(options.presence) };
    this._subs.set(channel, sub);
    if (Number.isInteger(options.since) && options.since >= 0) {
      // Load, then go live (section 12): resume from the Realtime-Position of the load.
      this._lastSeq.set(channel, options.since);
      this._buffers.delete(channel);
    }
    if (this._state === 'open') this._sendSubscribe(channel);
    return sub.d.promise;
  }

  /** The members of `channel` (subscribed with `{presence: true}`), sorted by username. */
  members(channel) {
    return memberList(this._members.get(channel));
  }

  /**
   * This connection's activity on `channel` (section 10); null: the default,
   * `viewing`. Kept and set again after every reconnect.
   */
  setActivity(channel, activity) {
    const value = activity ?? null;
    if (value === null) this._activities.delete(channel);
    else this._activities.set(channel, value);
    return this._request({ type: 'presence', channel, activity: value });
  }

  /**
   * Send a signal (section 11) to the channel's other subscribers. Fire and
   * forget: there is no reply, and a signal sent while not open is dropped
   * (returns false), never queued, as a stale "typing" would mislead.
   */
  signal(channel, event, data = {}) {
    if (!validSignalEvent(event)) throw new TypeError('a signal event is 1-32 characters of a-z 0-9 _');
    if (this._state !== 'open') return false;
    return this._sendRaw({ type: 'signal', channel, event, data });
  }

  /** Call `handler(msg)` for signals on `channel` (of `event` only, when given); returns the remover. */
  onSignal(channel, event, handler) {
    if (typeof event === 'function') [event, handler] = [null, event];
    return this.on('signal', (msg) => {
      if (msg.channel === channel && (!event || msg.event === event)) handler(msg);
    });
  }

  /** Stop receiving `channel`. The last seq is kept, so a later subscribe resumes. */
  unsubscribe(channel) {
    const sub = this._subs.get(channel);
    this._subs.delete(channel);
    this._activities.delete(channel);
    if (this._members.delete(channel)) this._emit('members', channel, []);
    this._buffers.delete(channel);
    this._gapFills.delete(channel);
    if (sub) settle(sub.d, false, new RealtimeError('unsubscribed', `unsubscribed from ${channel}`));
    if (this._state !== 'open') return Promise.resolve({ type: 'unsubscribed', channel });
    return this._request({ type: 'unsubscribe', channel });
  }

  /** Set this user's presence (online | away | busy); kept and re-sent after reconnects. */
  setPresence(status, activity = null) {
    const previous = this._presence;
    const d = deferred();
    this._presence = { status, activity: activity ?? null, d };
    if (previous && previous.d !== d) settle(previous.d, false, new RealtimeError('superseded', 'a newer presence was set'));
    if (this._state === 'open') this._sendPresence();
    return d.promise;
  }

  /**
   * Send a client message (section 3). A `ref` is added when missing; resolves
   * with the reply carrying the same ref, rejects with RealtimeError on `error`.
   * Waits for the connection while connecting or reconnecting.
   */
  send(message) {
    if (!message || typeof message !== 'object' || typeof message.type !== 'string') {
      return Promise.reject(new TypeError('a message is an object with a string `type`'));
    }
    return this._request({ ...message });
  }

  /** Stored messages of `channel` with seq > since (section 3 `history`): resolves with the reply. */
  history(channel, since = 0, limit = 100) {
    return this._request({ type: 'history', channel, since, limit });
  }

  /** Ask the server for a `pong` (the heartbeat does this by itself). */
  ping() {
    return this._request({ type: 'ping', timestamp: new Date().toISOString() });
  }

  // --- events ---------------------------------------------------------------

  _emit(type, ...args) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const { handler } of Array.from(set)) {
      try {
        handler(...args);
      } catch (err) {
        // One broken handler must not stop delivery to the others.
        console.error(LOG_PREFIX, `a "${type}" handler threw`, err);
      }
    }
  }

  _log(...args) {
    if (this.debug) console.debug(LOG_PREFIX, ...args);
  }

  _setState(state) {
    if (this._state === state) return;
    const previous = this._state;
    this._state = state;
    this._log('state', previous, '->', state);
    this._emit('status', state, previous, this._transport);
  }

  // --- connection lifecycle -------------------------------------------------

  _baseUrl(url) {
    let base = url;
    if (!base) {
      const loc = globalThis.location;
      if (!loc || !loc.host) throw new Error('WebSocketClient needs options.url outside a browser');
      base = (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host;
    }
    return String(base).replace(/^http(s?):/, 'ws$1:').replace(/\/+$/, '');
  }

  _tabClientId(session) {
    const store = session !== undefined ? session : storageOf('sessionStorage');
    try {
      const kept = store && store.getItem(CLIENT_ID_KEY);
      if (kept && /^[A-Za-z0-9_.-]{1,64}$/.test(kept)) return kept;
    } catch {
      // fall through to a fresh id
    }
    const id = generateClientId();
    try {
      if (store) store.setItem(CLIENT_ID_KEY, id);
    } catch {
      // a private window may refuse; the id then lives as long as this client
    }
    return id;
  }

  _socketUrl() {
    const params = [];
    if (this._token) params.push('token=' + encodeURIComponent(this._token));
    if (this.options.batch) params.push('batch=1');
    return `${this.url}/ws/${encodeURIComponent(this.clientId)}/` + (params.length ? '?' + params.join('&') : '');
  }

  async _open() {
    const generation = ++this._generation;
    this._reconnectTimer = null;
    // A fresh token for every connection attempt (a reconnect may come long after
    // the last token was handed out), unless _refreshToken just got one.
    this._opens++;
    if (this._getToken && !this._tokenFresh && (!this._token || this._opens > 1)) {
      try {
        this._token = (await this._getToken()) || this._token || null;
      } catch (err) {
        this._log('getToken failed, connecting anonymously', err && err.message);
      }
      if (generation !== this._generation || this._state === 'closed') return;
    }
    this._tokenFresh = false;
    this._gotFrame = false;
    if (this._transport === 'websocket' && typeof this._WebSocket !== 'function' && this.transports.includes('sse')) {
      this._setTransport('sse');
    }
    if (this._transport === 'sse') {
      this._openSSE(generation);
      return;
    }
    if (typeof this._WebSocket !== 'function') {
      this._finish({ code: 0, reason: 'no WebSocket implementation', wasClean: false, willReconnect: false });
      return;
    }
    const url = this._socketUrl();
    this._socketToken = this._token;
    this._log('connecting to', redactUrl(url));
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (err) {
      this._finish({ code: 0, reason: String((err && err.message) || err), wasClean: false, willReconnect: false });
      return;
    }
    this._ws = ws;
    ws.onmessage = (event) => {
      if (generation === this._generation) this._onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (generation !== this._generation) return;
      this._onSocketClosed({ code: event.code, reason: event.reason || '', wasClean: Boolean(event.wasClean) });
    };
    ws.onerror = () => {
      this._log('socket error (a close event follows)');
    };
  }

  // --- the SSE transport (dexter-sse.js) and the way back to WebSockets ----------

  _openSSE(generation) {
    const channels = new Map();
    for (const channel of this._subs.keys()) channels.set(channel, this._lastSeq.get(channel));
    this._socketToken = this._token;
    this._log('opening the SSE stream for', channels.size, 'channels');
    const ws = new SSESocket({
      httpBase: this.url.replace(/^ws(s?):/, 'http$1:'),
      clientId: this.clientId,
      token: this._token,
      channels,
      eventTypes: Array.from(this._handlers.keys()),
      EventSource: this._EventSource,
      fetch: this._fetch,
    });
    this._ws = ws;
    ws.onmessage = (event) => {
      if (generation === this._generation) this._onFrame(event.data);
    };
    ws.onclose = (event) => {
      if (generation === this._generation) this._onSocketClosed(event);
    };
  }

  _setTransport(name) {
    if (this._transport === name) return;
    this._log('transport', this._transport, '->', name);
    this._transport = name;
    this._emit('transport', name);
    this._emit('status', this._state, this._state, name);
    if (name === 'sse') this._scheduleProbe();
    else this._stopProbe();
  }

  /** A WebSocket closed before its first frame: after enough of them, fall back to SSE. */
  _countSocketFailure() {
    if (this._transport !== 'websocket') return false;
    if (this._gotFrame) {
      this._wsFailures = 0;
      return false;
    }
    this._wsFailures++;
    if (!this.transports.includes('sse') || this._wsFailures < this.sseAfterFailures) return false;
    this._setTransport('sse');
    return true;
  }

  _scheduleProbe() {
    this._stopProbe();
    if (!this.transports.includes('websocket') || typeof this._WebSocket !== 'function' || this._state === 'closed') return;
    this._probeTimer = setTimeout(() => this._runProbe(), this.websocketRetryInterval);
  }

  _stopProbe() {
    clearTimeout(this._probeTimer);
    this._probeTimer = null;
    const probe = this._probe;
    this._probe = null;
    if (probe) {
      probe.onmessage = probe.onclose = probe.onerror = null;
      try {
        probe.close(1000, 'probe');
      } catch {
        // already closing
      }
    }
  }

  /** Try a WebSocket while on SSE; its first frame proves it works: move back to it. */
  _runProbe() {
    this._probeTimer = null;
    if (this._transport !== 'sse' || this._state === 'closed') return;
    let probe;
    try {
      probe = new this._WebSocket(this._socketUrl());
    } catch {
      this._scheduleProbe();
      return;
    }
    this._probe = probe;
    probe.onmessage = () => {
      if (this._probe !== probe) return;
      this._log('WebSocket works again: moving back from SSE');
      this._stopProbe();
      this._wsFailures = 0;
      const sse = this._ws;
      this._teardown(new RealtimeError('disconnected', 'moving back to WebSocket'));
      if (sse) sse.close();
      this._transport = 'websocket';
      this._emit('transport', 'websocket');
      if (this._state === 'open') this._setState('reconnecting');
      this._open();
    };
    probe.onclose = () => {
      if (this._probe !== probe) return;
      this._probe = null;
      this._scheduleProbe();
    };
  }

  /** Stop timers, forget the socket, and fail the requests that were in flight on it. */
  _teardown(error) {
    this._generation++;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
    }
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
    clearTimeout(this._tokenTimer);
    this._tokenTimer = null;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    // Whatever was held behind a gap is replayed by the resubscription with `since`.
    this._buffers.clear();
    this._gapFills.clear();
    for (const [ref, p] of this._pending) {
      clearTimeout(p.timer);
      this._pending.delete(ref);
      if (p.onFail) p.onFail(error);
      settle(p.d, false, error);
    }
  }

  _finish(info) {
    this._stopProbe();
    this._teardown(new RealtimeError('closed', 'the client was closed'));
    this._waitingForOnline = false;
    this._listenToWindow(false);
    for (const q of this._queue) settle(q.d, false, new RealtimeError('closed', 'the client was closed'));
    this._queue = [];
    this._emit('close', info);
    this._setState('closed');
    settle(this._openD, false, new RealtimeError('closed', `closed with ${info.code} ${info.reason}`.trim()));
  }

  _onSocketClosed(info) {
    this._log('closed', info.code, info.reason);
    this._teardown(new RealtimeError('disconnected', `connection closed with ${info.code}`));
    if (!FINAL.has(info.code) && this._countSocketFailure()) {
      // Falling back to SSE: at once, without spending a reconnect attempt.
      this._emit('close', { ...info, willReconnect: true, attempt: this._attempts, delay: 0 });
      this._setState('reconnecting');
      this._reconnectTimer = setTimeout(() => this._open(), 0);
      return;
    }
    if (FINAL.has(info.code)) {
      this._finish({ ...info, willReconnect: false });
    } else if (info.code === CLOSE_CODES.tokenInvalid) {
      this._refreshToken(info);
    } else {
      // RECONNECT codes, and anything unlisted (1005, 1012, 1013, ...): a network or
      // server hiccup is the likely cause, and the attempt cap bounds the retries.
      this._scheduleReconnect(info);
    }
  }

  async _refreshToken(info) {
    if (!this._getToken || this._attempts >= this.maxReconnectAttempts) {
      this._finish({ ...info, willReconnect: false });
      return;
    }
    this._setState('reconnecting');
    const generation = this._generation;
    let token = null;
    try {
      token = await this._getToken();
    } catch (err) {
      this._log('getToken failed', err && err.message);
    }
    if (generation !== this._generation || this._state === 'closed') return;
    if (!token) {
      this._finish({ ...info, willReconnect: false });
      return;
    }
    this._token = token;
    this._tokenFresh = true;
    // The first retry with a fresh token goes at once; a token the server keeps
    // refusing backs off like any other failure and counts toward the cap.
    this._attempts++;
    const delay =
      this._attempts === 1 ? 0 : computeBackoff(this._attempts - 1, this.reconnectInterval, this.maxReconnectDelay, this._random);
    this._emit('close', { ...info, willReconnect: true, attempt: this._attempts, delay });
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _scheduleReconnect(info) {
    if (this._isOffline()) {
      // No attempt is spent while the browser is offline: `online` reconnects at once.
      this._emit('close', { ...info, willReconnect: true, attempt: this._attempts, delay: null });
      this._setState('reconnecting');
      this._waitingForOnline = true;
      this._log('offline: waiting for the browser to come back online');
      return;
    }
    if (this._attempts >= this.maxReconnectAttempts) {
      this._finish({ ...info, willReconnect: false });
      return;
    }
    this._attempts++;
    const delay = computeBackoff(this._attempts, this.reconnectInterval, this.maxReconnectDelay, this._random);
    this._emit('close', { ...info, willReconnect: true, attempt: this._attempts, delay });
    this._setState('reconnecting');
    this._log(`reconnect attempt ${this._attempts} in ${delay} ms`);
    this._reconnectTimer = setTimeout(() => this._open(), delay);
  }

  _isOffline() {
    const nav = globalThis.navigator;
    return Boolean(this._window && nav && nav.onLine === false);
  }

  _listenToWindow(on) {
    const w = this._window;
    if (!w || typeof w.addEventListener !== 'function') return;
    const doc = this._document;
    const docListens = doc && typeof doc.addEventListener === 'function';
    if (on) {
      w.addEventListener('online', this._onOnline);
      w.addEventListener('offline', this._onOffline);
      if (docListens) doc.addEventListener('visibilitychange', this._onVisibility);
    } else {
      w.removeEventListener('online', this._onOnline);
      w.removeEventListener('offline', this._onOffline);
      if (docListens) doc.removeEventListener('visibilitychange', this._onVisibility);
    }
  }

  _handleOffline() {
    if (this._state === 'closed') return;
    this._log('browser went offline');
    const ws = this._ws;
    this._teardown(new RealtimeError('disconnected', 'the browser went offline'));
    if (ws) {
      try {
        ws.close(1000, 'offline');
      } catch {
        // already closing
      }
    }
    this._waitingForOnline = true;
    if (this._state === 'open') this._emit('close', { code: 1006, reason: 'offline', wasClean: false, willReconnect: true });
    if (this._state !== 'connecting') this._setState('reconnecting');
  }

  /** Back online, or the page became visible: reconnect now instead of waiting out the backoff. */
  _handleOnline() {
    if (this._state === 'closed' || this._state === 'open' || this._isOffline()) return;
    this._log('browser is online (or the page is visible): reconnecting now');
    this._waitingForOnline = false;
    clearTimeout(this._reconnectTimer);
    this._attempts = 0;
    if (!this._ws) this._open();
  }

  // --- receiving --------------------------------------------------------------

  _onFrame(data) {
    this._missedHeartbeats = 0;
    this._gotFrame = true;
    this._log('←', data);
    let msg;
    try {
      msg = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      this._log('dropped a frame that is not JSON');
      return;
    }
    this._handleMessage(msg);
  }

  _handleMessage(msg) {
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'batch' && Array.isArray(msg.messages)) {
      for (const inner of msg.messages) this._handleMessage(inner);
      return;
    }
    if (typeof msg.ref === 'string' && this._pending.has(msg.ref)) {
      const p = this._pending.get(msg.ref);
      this._pending.delete(msg.ref);
      clearTimeout(p.timer);
      if (p.onReply) p.onReply(msg);
      if (msg.type === 'error') settle(p.d, false, new RealtimeError(msg.code, msg.message, msg));
      else settle(p.d, true, msg);
    }
    if (msg.type === 'connection') {
      this._onConnection(msg);
      return;
    }
    if (msg.type === 'recovery' && typeof msg.channel === 'string' && msg.recovered === false) {
      // SSE's `recovered: false` (section 13): what was missed is gone, reload the channel.
      if (this._subs.has(msg.channel)) this._emit('reset', { channel: msg.channel, reason: 'not_recovered', from: undefined, to: this._lastSeq.get(msg.channel) });
      return;
    }
    if (typeof msg.channel === 'string' && Number.isInteger(msg.seq) && msg.type !== 'subscribed') {
      this._onPublication(msg);
      return;
    }
    if ((msg.type === 'channel_presence' || msg.type === 'channel_presence_diff') && this._subs.has(msg.channel)) {
      this._members.set(msg.channel, applyChannelPresence(this._members.get(msg.channel), msg));
      this._deliver(msg);
      this._emit('members', msg.channel, this.members(msg.channel));
      return;
    }
    this._deliver(msg);
  }

  _deliver(msg) {
    this._emit('message', msg);
    if (typeof msg.type === 'string') this._emit(msg.type, msg);
  }

  _onConnection(msg) {
    this.connection = msg;
    this._attempts = 0;
    this._waitingForOnline = false;
    this._startHeartbeat(msg.heartbeat_interval);
    this._scheduleTokenRefresh();
    this._setState('open');
    settle(this._openD, true, msg);
    this._deliver(msg);
    this._emit('open', msg);
    if (this._state !== 'open') return; // a handler closed the client
    for (const channel of this._subs.keys()) this._sendSubscribe(channel);
    if (this._presence) this._sendPresence();
    const queued = this._queue;
    this._queue = [];
    for (const q of queued) this._transmit(q);
  }

  _startHeartbeat(serverSeconds) {
    clearInterval(this._heartbeatTimer);
    this._heartbeatTimer = null;
    const option = this.options.heartbeat;
    if (option === false) return;
    const ms = typeof option === 'number' && option > 0 ? option : 1000 * (Number(serverSeconds) || DEFAULT_HEARTBEAT_SECONDS);
    this._missedHeartbeats = 0;
    this._heartbeatTimer = setInterval(() => {
      this._missedHeartbeats++;
      if (this._missedHeartbeats >= MISSED_HEARTBEATS_BEFORE_DEAD) {
        // Nothing came back, not even pongs: the socket is dead without a close
        // event (a laptop lid, a proxy). Treat it as an abnormal closure.
        this._log('no frames for', this._missedHeartbeats, 'heartbeats: reconnecting');
        const ws = this._ws;
        this._teardown(new RealtimeError('disconnected', 'heartbeat timeout'));
        if (ws) {
          try {
            ws.close(4000, 'heartbeat timeout');
          } catch {
            // already closing
          }
        }
        this._scheduleReconnect({ code: 1006, reason: 'heartbeat timeout', wasClean: false });
        return;
      }
      this._sendRaw({ type: 'ping', timestamp: new Date().toISOString() });
    }, ms);
  }

  // --- keeping the socket's token fresh -----------------------------------------

  /** Arm the timer that hands the open socket a fresh token before its token expires. */
  _scheduleTokenRefresh() {
    clearTimeout(this._tokenTimer);
    this._tokenTimer = null;
    if (!this._getToken || !this._socketToken || this._state === 'closed') return;
    const delay = tokenRefreshDelay(tokenExpiry(this._socketToken));
    if (delay === null) return; // no exp claim, or already expired: the 4401 path takes over
    const generation = this._generation;
    this._log('token refresh in', delay, 'ms');
    this._tokenTimer = setTimeout(() => {
      this._tokenTimer = null;
      if (generation === this._generation) this._refreshSocketToken(generation);
    }, delay);
  }

  /** getToken, then `auth` with the fresh token; the fresh token is also the one the next reconnect uses. */
  async _refreshSocketToken(generation) {
    let token = null;
    try {
      token = await this._getToken();
    } catch (err) {
      // Leave it: if the token does expire, the 4401 close asks getToken again.
      this._log('getToken failed, keeping the current token', err && err.message);
      return;
    }
    if (!token || this._state === 'closed') return;
    this._token = token;
    if (generation !== this._generation || this._state !== 'open') return; // the next connection sends it
    if (token === this._socketToken) {
      // getToken handed back the token the server already has (not due for
      // refresh by its own measure): ask again later; the delay shrinks toward
      // the expiry and is never under a second.
      this._scheduleTokenRefresh();
      return;
    }
    const retry = () => {
      if (generation === this._generation) this._scheduleTokenRefresh();
    };
    this._request(
      { type: 'auth', token },
      {
        onReply: (reply) => {
          if (generation !== this._generation) return;
          if (reply.type === 'authenticated') this._socketToken = token;
          // else e.g. rate_limited: the server still holds the old token, try again
          // before it expires (a refused token is followed by close 4401 anyway).
          else this._log('auth not accepted:', reply.code);
          this._scheduleTokenRefresh();
        },
        onFail: retry,
      },
    ).catch(() => {});
  }

  _onPublication(msg) {
    const channel = msg.channel;
    if (!this._subs.has(channel)) {
      this._log('dropped a message for a channel not subscribed', channel, msg.seq);
      return;
    }
    const last = this._lastSeq.get(channel);
    if (last === undefined || msg.seq === last + 1) {
      this._accept(msg);
      this._drain(channel);
    } else if (msg.seq <= last) {
      this._log('dropped repeat', channel, msg.seq);
    } else {
      let buffer = this._buffers.get(channel);
      if (!buffer) this._buffers.set(channel, (buffer = new Map()));
      buffer.set(msg.seq, msg);
      this._fillGap(channel);
    }
  }

  _accept(msg) {
    this._lastSeq.set(msg.channel, msg.seq);
    this._saveSeqs(msg.channel);
    this._deliver(msg);
  }

  /** Deliver buffered messages that are now in order. */
  _drain(channel) {
    const buffer = this._buffers.get(channel);
    if (!buffer) return;
    for (;;) {
      const last = this._lastSeq.get(channel);
      for (const seq of buffer.keys()) if (seq <= last) buffer.delete(seq);
      const next = buffer.get(last + 1);
      if (!next) break;
      buffer.delete(last + 1);
      this._accept(next);
    }
    if (buffer.size === 0) this._buffers.delete(channel);
  }

  /** Ask `history` for the seqs missing between the last delivered and the first held back. */
  _fillGap(channel) {
    if (this._gapFills.has(channel) || this._state !== 'open') return;
    const buffer = this._buffers.get(channel);
    if (!buffer || buffer.size === 0) return;
    const last = this._lastSeq.get(channel);
    const first = Math.min(...buffer.keys());
    const missing = first - last - 1;
    if (missing <= 0) {
      this._drain(channel);
      return;
    }
    const limit = Math.min(missing, MAX_HISTORY_LIMIT);
    this._gapFills.add(channel);
    this._log('gap on', channel, 'after', last, ': asking history for', limit);
    const generation = this._generation;
    this._request(
      { type: 'history', channel, since: last, limit },
      {
        onReply: (reply) => {
          this._gapFills.delete(channel);
          if (!this._subs.has(channel)) return;
          if (reply.type !== 'history') {
            this._skipGap(channel, reply.code || 'history_failed');
            return;
          }
          const held = this._buffers.get(channel) || new Map();
          this._buffers.set(channel, held);
          for (const m of reply.messages || []) {
            if (m && m.channel === channel && Number.isInteger(m.seq) && m.seq > this._lastSeq.get(channel)) held.set(m.seq, m);
          }
          this._drain(channel);
          if (!this._buffers.has(channel)) return;
          // Fewer than asked is the end only when the server did not stop early (`more`, its 1 MiB bound).
          const exhausted = reply.recovered === false || (!reply.more && (reply.messages || []).length < limit);
          if (exhausted) this._skipGap(channel, 'not_recovered');
          else this._fillGap(channel);
        },
        onFail: () => {
          this._gapFills.delete(channel);
          // A lost socket is fine: the resubscription with `since` replays the gap.
          if (generation === this._generation && this._subs.has(channel)) this._skipGap(channel, 'history_failed');
        },
      },
    );
  }

  /** Messages are gone for good: tell the page to reload, then go on from what we hold. */
  _skipGap(channel, reason) {
    const buffer = this._buffers.get(channel);
    if (!buffer || buffer.size === 0) return;
    const first = Math.min(...buffer.keys());
    const from = this._lastSeq.get(channel);
    this._lastSeq.set(channel, first - 1);
    this._saveSeqs(channel);
    this._emit('reset', { channel, reason, from, to: first - 1 });
    this._drain(channel);
  }

  _onSubscribed(channel, since, reply) {
    const sub = this._subs.get(channel);
    if (!sub) return;
    if (reply.type === 'error') {
      // forbidden, not_found, unknown_channel, too_many_subscriptions: retrying
      // after a reconnect would fail the same way, so the channel is dropped.
      this._subs.delete(channel);
      this._buffers.delete(channel);
      settle(sub.d, false, new RealtimeError(reply.code, reply.message, reply));
      return;
    }
    if (reply.type !== 'subscribed') return;
    const latest = Number.isInteger(reply.seq) ? reply.seq : 0;
    if (since === undefined) {
      this._lastSeq.set(channel, latest);
      this._saveSeqs(channel);
      if (sub.unanchoredSends > 1) {
        // An earlier subscribe went out but its socket closed before the reply:
        // whatever was published since the caller subscribed cannot be replayed
        // (there is no seq to resume from), so have the page reload.
        this._emit('reset', { channel, reason: 'interrupted', from: undefined, to: latest });
      }
    } else if (reply.recovered === false || latest < since) {
      // Missed messages are gone (or the server's channel started over): what
      // is replayed would be partial, so skip to now and have the page reload.
      this._lastSeq.set(channel, latest);
      this._saveSeqs(channel);
      this._emit('reset', { channel, reason: latest < since ? 'seq_rewound' : 'not_recovered', from: since, to: latest });
    }
    if (sub.presence && this._activities.has(channel)) {
      this._request({ type: 'presence', channel, activity: this._activities.get(channel) }).catch(() => {});
    }
    settle(sub.d, true, reply);
  }

  // --- sending ----------------------------------------------------------------

  _sendSubscribe(channel) {
    const since = this._lastSeq.get(channel);
    const frame = { type: 'subscribe', channel };
    const held = this._subs.get(channel);
    if (held && held.presence) frame.presence = true;
    if (since !== undefined) frame.since = since;
    else {
      const sub = this._subs.get(channel);
      if (sub) sub.unanchoredSends = (sub.unanchoredSends || 0) + 1;
    }
    this._request(frame, { onReply: (reply) => this._onSubscribed(channel, since, reply) });
  }

  _sendPresence() {
    const p = this._presence;
    const frame = { type: 'presence', status: p.status };
    if (p.activity !== null && p.activity !== undefined) frame.activity = p.activity;
    const sent = this._request(frame);
    sent.then(
      (reply) => settle(p.d, true, reply),
      (err) => {
        if (err && err.code !== 'disconnected') settle(p.d, false, err);
      },
    );
  }

  /** Send a frame with a ref and track its reply. */
  _request(frame, hooks = {}) {
    const d = deferred();
    if (typeof frame.ref !== 'string') frame.ref = 'c' + ++this._refCounter;
    const request = { frame, d, onReply: hooks.onReply, onFail: hooks.onFail, timer: null };
    if (this._state === 'open') {
      this._transmit(request);
    } else if (this._state === 'closed') {
      settle(d, false, new RealtimeError('closed', 'not connected: call connect() first'));
    } else if (this._queue.length >= MAX_QUEUED) {
      settle(d, false, new RealtimeError('queue_full', 'too many messages waiting for the connection'));
    } else {
      this._queue.push(request);
    }
    return d.promise;
  }

  _transmit(request) {
    const { frame } = request;
    this._pending.set(frame.ref, request);
    request.timer = setTimeout(() => {
      if (this._pending.get(frame.ref) !== request) return;
      this._pending.delete(frame.ref);
      const err = new RealtimeError('timeout', `no reply to ${frame.type} within ${this.requestTimeout} ms`);
      if (request.onFail) request.onFail(err);
      settle(request.d, false, err);
    }, this.requestTimeout);
    if (!this._sendRaw(frame)) {
      clearTimeout(request.timer);
      this._pending.delete(frame.ref);
      const err = new RealtimeError('disconnected', 'the socket is not open');
      if (request.onFail) request.onFail(err);
      settle(request.d, false, err);
    }
  }

  _sendRaw(frame) {
    const ws = this._ws;
    if (!ws) return false;
    const text = JSON.stringify(frame);
    this._log('→', this.debug ? JSON.stringify(redact(frame)) : '');
    try {
      ws.send(text);
      return true;
    } catch (err) {
      this._log('send failed', err && err.message);
      return false;
    }
  }

  // --- last seq per channel, across reloads -------------------------------------

  _seqKey() {
    return SEQ_KEY_PREFIX + this.url;
  }

  _loadSeqs() {
    if (!this._storage) return;
    try {
      const saved = JSON.parse(this._storage.getItem(this._seqKey()) || '{}');
      for (const [channel, seq] of Object.entries(saved)) {
        if (Number.isInteger(seq) && seq >= 0) this._lastSeq.set(channel, seq);
      }
    } catch {
      // corrupt or unavailable storage: start without resume points
    }
  }

  _saveSeqs(channel) {
    if (!this._storage) return;
    try {
      // Merge into what is stored: other tabs of this origin keep their channels.
      const key = this._seqKey();
      let saved = {};
      try {
        saved = JSON.parse(this._storage.getItem(key) || '{}') || {};
      } catch {
        saved = {};
      }
      if (channel === undefined) Object.assign(saved, Object.fromEntries(this._lastSeq));
      else saved[channel] = this._lastSeq.get(channel);
      this._storage.setItem(key, JSON.stringify(saved));
    } catch {
      // quota or privacy mode: resume points then last as long as the page
    }
  }
}

export default WebSocketClient;
