/**
 * The SSE transport of the Dexter real-time client (protocol section 13).
 *
 * `SSESocket` looks like the WebSocket that `WebSocketClient` drives (`send`,
 * `close`, `onmessage`, `onclose`), so the client's resume, dedup, gap filling,
 * heartbeat and reconnect logic are the same on both transports. Underneath:
 *
 * - publications come from `GET /sse/?channels=...` through an `EventSource`;
 *   every event's `id:` is the stream position, kept here, so a changed channel
 *   set reopens the stream from where it was (`since=`), and `subscribed`
 *   replies are made here from that position;
 * - `presence` goes to `POST /api/realtime/presence/`, `history` to
 *   `GET /api/realtime/channels/<channel>/history/`; `ping` and `auth` are
 *   answered here (a fresh token reopens the stream with it);
 * - a `subscribe` with `presence: true` opens the stream with `presence=` for
 *   that channel (its `channel_presence` and diffs come on the stream); a
 *   channel's activity goes to `POST .../channels/<channel>/activity/` and a
 *   `signal` to `POST .../channels/<channel>/signal/`, naming the stream by its
 *   `connection_id` (the others' signals come on the stream);
 * - the server's `event: close` becomes a close with that code; a stream that
 *   fails is a 1006, and when it fails before its first event a `fetch` of the
 *   same URL reads why (EventSource hides the status): 401 is 4401, 503 4503,
 *   a refused channel an `error` reply to its subscribe.
 *
 * An EventSource only hands over events of the names it listens to: the
 * protocol's types, the types the page has handlers for, and `eventTypes`.
 */

const PROTOCOL_EVENTS = [
  'connection', 'recovery', 'close', 'error', 'issue_update', 'alert_trigger', 'presence_update',
  'presence_state', 'notification', 'announcement', 'channel_presence', 'channel_presence_diff', 'signal',
];
// Open with a public channel when the page holds none (the endpoint needs one).
const IDLE_CHANNEL = 'global';
const CLOSED = 3;

export class SSESocket {
  /**
   * @param {object} o
   * @param {string} o.httpBase   http(s)://host
   * @param {string} o.clientId
   * @param {string|null} o.token
   * @param {Map<string, number|undefined>} o.channels  channel -> last seq (undefined: from now)
   * @param {string[]} [o.eventTypes]
   * @param {Function} [o.EventSource]
   * @param {Function} [o.fetch]
   */
  constructor(o) {
    this.url = o.httpBase + '/sse/';
    this.httpBase = o.httpBase;
    this.clientId = `${String(o.clientId).slice(0, 60)}.sse`;
    this.token = o.token || null;
    this.eventTypes = Array.from(new Set([...PROTOCOL_EVENTS, ...(o.eventTypes || [])]));
    this._EventSource = o.EventSource || globalThis.EventSource;
    this._fetch = o.fetch || (globalThis.fetch && globalThis.fetch.bind(globalThis));
    this._wanted = new Map(o.channels || []); // channel -> since for the next stream
    this._positions = new Map(); // channel -> seq, from the last event id
    this._refused = new Map(); // channel -> error message of the server
    this._waiting = new Map(); // channel -> [subscribe frames] answered when the stream opens
    this._presence = new Set(); // channels subscribed with presence: true
    this._connectionId = null; // of the open stream: what the HTTP calls name
    this._streamSet = null; // the channels of the open stream
    this._hello = null;
    this._es = null;
    this._reopenTimer = null;
    this.readyState = 0;
    this.onmessage = this.onclose = this.onerror = this.onopen = null;
    if (typeof this._EventSource !== 'function') {
      setTimeout(() => this._closed(1006, 'no EventSource implementation'), 0);
      return;
    }
    this._open();
  }

  // --- the WebSocket surface ------------------------------------------------

  send(text) {
    if (this.readyState === CLOSED) throw new Error('the stream is closed');
    const frame = JSON.parse(text);
    const ref = frame.ref;
    switch (frame.type) {
      case 'subscribe':
        return this._subscribe(frame);
      case 'unsubscribe':
        this._wanted.delete(frame.channel);
        this._positions.delete(frame.channel);
        this._presence.delete(frame.channel);
        this._reply({ type: 'unsubscribed', channel: frame.channel, ref });
        return this._scheduleReopen();
      case 'ping':
        return this._reply({ type: 'pong', timestamp: frame.timestamp, server_time: new Date().toISOString(), ref });
      case 'auth':
        // The stream cannot take a token: the next stream uses it, opened now from the position.
        this.token = frame.token;
        this._reply({ type: 'authenticated', user: this._hello && this._hello.user, ref });
        return this._scheduleReopen(true);
      case 'presence':
        if (frame.channel) {
          const body = { connection_id: this._connectionId, activity: frame.activity ?? null };
          return this._http('POST', `${channelPath(frame.channel)}/activity/`, body, ref);
        }
        return this._http('POST', '/api/realtime/presence/', { status: frame.status, activity: frame.activity ?? null }, ref);
      case 'signal': {
        // As on a socket, success has no reply; an error does.
        const body = { connection_id: this._connectionId, event: frame.event, data: frame.data ?? {} };
        return this._http('POST', `${channelPath(frame.channel)}/signal/`, body, ref, { errorsOnly: true });
      }
      case 'history': {
        const q = `?since=${encodeURIComponent(frame.since ?? 0)}&limit=${encodeURIComponent(frame.limit ?? 100)}`;
        return this._http('GET', `/api/realtime/channels/${encodeURIComponent(frame.channel)}/history/${q}`, null, ref);
      }
      default:
        if (ref !== undefined) this._reply(unsupported(frame));
    }
  }

  close() {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this._stop();
  }

  // --- the stream ---------------------------------------------------------------

  _streamUrl() {
    const channels = this._wanted.size ? Array.from(this._wanted.keys()) : [IDLE_CHANNEL];
    const since = [];
    for (const c of channels) {
      const seq = this._positions.has(c) ? this._positions.get(c) : this._wanted.get(c);
      if (Number.isInteger(seq)) since.push(`${c}=${seq}`);
    }
    const params = [`channels=${encodeURIComponent(channels.join(','))}`, `client_id=${encodeURIComponent(this.clientId)}`];
    if (since.length) params.push(`since=${encodeURIComponent(since.join(','))}`);
    const presence = channels.filter((c) => this._presence.has(c));
    if (presence.length) params.push(`presence=${encodeURIComponent(presence.join(','))}`);
    if (this.token) params.push(`token=${encodeURIComponent(this.token)}`);
    return { url: `${this.url}?${params.join('&')}`, channels, presence };
  }

  _open() {
    const { url, channels } = this._streamUrl();
    const es = new this._EventSource(url);
    this._es = es;
    let opened = false;
    const onEvent = (event) => {
      if (this._es !== es) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (typeof event.lastEventId === 'string' && event.lastEventId) this._readPosition(event.lastEventId);
      if (event.type === 'connection') {
        opened = true;
        this._streamSet = new Set(channels);
        this._connectionId = data.connection_id || null;
        this._onStreamOpen(data);
      } else if (event.type === 'close') {
        this._closed(Number(data.code) || 1006, 'closed by the server');
      } else if (event.type === 'recovery') {
        this._deliver({ type: 'recovery', ...data });
      } else if (event.type !== 'error' || data.type === 'error') {
        this._deliver(data);
      }
    };
    for (const type of this.eventTypes) es.addEventListener(type, onEvent);
    es.onmessage = onEvent;
    es.onerror = () => {
      if (this._es !== es) return;
      if (opened) {
        this._closed(1006, 'the stream was cut off');
        return;
      }
      // EventSource does not say why: ask the same URL once and read the status.
      this._stop();
      this._diagnose(url);
    };
  }

  async _diagnose(url) {
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    let response = null;
    try {
      response = await this._fetch(url, { signal: controller && controller.signal, headers: { Accept: 'text/event-stream' } });
    } catch {
      response = null;
    }
    if (this.readyState === CLOSED) return;
    if (!response || response.ok) {
      if (controller) controller.abort();
      this._closed(1006, 'the stream could not be opened');
      return;
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401) return this._closed(4401, (body && body.code) || 'token_invalid');
    if (response.status === 503 || response.status === 429 || response.status >= 500) return this._closed(4503, 'try again later');
    if (body && typeof body.channel === 'string' && this._wanted.has(body.channel)) {
      // One channel is refused: answer its subscribe with the error and go on without it.
      this._wanted.delete(body.channel);
      this._refused.set(body.channel, body);
      this._answerRefused(body.channel);
      this._open();
      return;
    }
    this._closed(4403, (body && body.code) || `HTTP ${response.status}`);
  }

  _onStreamOpen(hello) {
    if (!this._hello) {
      this._hello = hello;
      this.readyState = 1;
      this._deliver(hello); // the client subscribes in reply, answered from the position
      return;
    }
    // A reopened stream: the client is connected already; answer what waited for it.
    for (const channel of Array.from(this._waiting.keys())) this._answerSubscribes(channel);
  }

  _subscribe(frame) {
    const channel = frame.channel;
    if (this._refused.has(channel)) {
      this._reply({ ...this._refused.get(channel), ref: frame.ref });
      return;
    }
    const joins = Boolean(frame.presence) && !this._presence.has(channel);
    if (joins) this._presence.add(channel);
    const list = this._waiting.get(channel) || [];
    list.push(frame);
    this._waiting.set(channel, list);
    if (this._streamSet && this._streamSet.has(channel)) {
      this._answerSubscribes(channel);
      // Joining presence takes a stream that says so: reopened from the position.
      if (joins) this._scheduleReopen(true);
      return;
    }
    if (!this._wanted.has(channel) || (frame.since !== undefined && !this._positions.has(channel))) {
      this._wanted.set(channel, frame.since);
    }
    this._scheduleReopen();
  }

  _answerSubscribes(channel) {
    if (!this._streamSet || !this._streamSet.has(channel)) return;
    const frames = this._waiting.get(channel) || [];
    this._waiting.delete(channel);
    const seq = this._positions.get(channel) ?? 0;
    for (const f of frames) this._reply({ type: 'subscribed', channel, seq, recovered: true, ref: f.ref });
  }

  _answerRefused(channel) {
    const frames = this._waiting.get(channel) || [];
    this._waiting.delete(channel);
    for (const f of frames) this._reply({ ...this._refused.get(channel), ref: f.ref });
  }

  /** Reopen with the new channel set (or token), once for a burst of changes. */
  _scheduleReopen(always = false) {
    if (this._reopenTimer !== null || this.readyState === CLOSED) return;
    this._reopenTimer = setTimeout(() => {
      this._reopenTimer = null;
      if (this.readyState === CLOSED || !this._es) return;
      const same = this._streamSet && sameSet(this._streamSet, this._wanted.size ? this._wanted.keys() : [IDLE_CHANNEL]);
      if (same && !always) return;
      this._es.close();
      this._es = null;
      this._streamSet = null;
      this._open();
    }, 0);
  }

  _readPosition(id) {
    for (const part of id.split(',')) {
      const i = part.lastIndexOf('=');
      const seq = Number(part.slice(i + 1));
      if (i > 0 && Number.isInteger(seq)) this._positions.set(part.slice(0, i), seq);
    }
  }

  // --- the HTTP API -------------------------------------------------------------

  async _http(method, path, body, ref, { errorsOnly = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== null) headers['Content-Type'] = 'application/json';
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let reply;
    try {
      const response = await this._fetch(this.httpBase + path, {
        method,
        headers,
        body: body === null ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
      const data = await response.json().catch(() => null);
      if (response.ok && data && typeof data === 'object') reply = data;
      else reply = { type: 'error', code: (data && data.code) || `http_${response.status}`, message: (data && (data.message || data.detail)) || `HTTP ${response.status}` };
    } catch (err) {
      reply = { type: 'error', code: 'unavailable', message: String((err && err.message) || err) };
    }
    if (errorsOnly && reply.type !== 'error') return;
    if (ref !== undefined) reply = { ...reply, ref };
    this._reply(reply);
  }

  // --- to the client --------------------------------------------------------------

  _reply(message) {
    // Asynchronously, as a server's reply would come.
    queueMicrotask(() => this._deliver(message));
  }

  _deliver(message) {
    if (this.readyState === CLOSED || !this.onmessage) return;
    this.onmessage({ data: JSON.stringify(message) });
  }

  _stop() {
    clearTimeout(this._reopenTimer);
    this._reopenTimer = null;
    if (this._es) this._es.close();
    this._es = null;
  }

  _closed(code, reason) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this._stop();
    if (this.onclose) this.onclose({ code, reason, wasClean: code !== 1006 });
  }
}

function channelPath(channel) {
  return `/api/realtime/channels/${encodeURIComponent(channel)}`;
}

function unsupported(frame) {
  return { type: 'error', code: 'unavailable', message: `${frame.type} is not available over SSE`, ref: frame.ref };
}

function sameSet(set, keys) {
  const other = new Set(keys);
  if (other.size !== set.size) return false;
  for (const k of other) if (!set.has(k)) return false;
  return true;
}
