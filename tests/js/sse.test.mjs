// Unit tests of the client's SSE fallback (dexter-sse.js inside dexter-realtime.js),
// with a fake WebSocket, a fake EventSource and a fake fetch: no server.
//
//     node --test tests/js/sse.test.mjs

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';

import { WebSocketClient } from '../../realtime/static/realtime/dexter-realtime.js';

const flush = () => new Promise((resolve) => setImmediate(resolve));

function fakeSocketClass() {
  return class FakeSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      FakeSocket.instances.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code) {
      this.closedWith = { code };
    }
    hello() {
      this.onmessage({ data: JSON.stringify({ type: 'connection', protocol: 1, user: null, heartbeat_interval: 30 }) });
    }
    fail() {
      this.onclose({ code: 1006, reason: '', wasClean: false });
    }
  };
}

/** An EventSource stand-in: named listeners, a test plays the server's events. */
function fakeEventSourceClass() {
  return class FakeEventSource {
    static instances = [];
    constructor(url) {
      this.url = new URL(url);
      this.listeners = new Map();
      this.closed = false;
      this.onerror = this.onmessage = null;
      FakeEventSource.instances.push(this);
    }
    static get last() {
      return FakeEventSource.instances.at(-1);
    }
    addEventListener(type, fn) {
      this.listeners.set(type, fn);
    }
    close() {
      this.closed = true;
    }
    emit(type, data, id = '') {
      const fn = this.listeners.get(type);
      assert.ok(fn, `no listener for ${type}`);
      fn({ type, data: JSON.stringify(data), lastEventId: id });
    }
    hello(id) {
      this.emit('connection', { type: 'connection', protocol: 1, user: { id: '2', username: 'alice' }, heartbeat_interval: 30 }, id);
    }
  };
}

const pub = (channel, seq) => ({ type: 'announcement', channel, seq, ts: '2026-11-25T12:00:00Z', message: `m${seq}` });

let Socket, ES, fetchCalls, fetchReply, clients;

function fakeFetch(url, init = {}) {
  fetchCalls.push({ url, ...init });
  const [status, body] = fetchReply(url, init);
  return Promise.resolve({ ok: status < 400, status, json: async () => body });
}

function makeClient(options = {}) {
  const client = new WebSocketClient({
    url: 'ws://test:8000',
    clientId: 'tab-1',
    WebSocket: Socket,
    EventSource: ES,
    fetch: fakeFetch,
    storage: null,
    window: null,
    document: null,
    random: () => 0.5,
    heartbeat: false,
    reconnectInterval: 1000,
    websocketRetryInterval: 30000,
    ...options,
  });
  clients.push(client);
  return client;
}

/** A client whose first two WebSockets fail before any frame: it is on SSE now. */
async function onSSE(channels = ['issues'], options = {}) {
  const client = makeClient(options);
  const statuses = [];
  client.on('status', (state, previous, transport) => statuses.push(`${state}/${transport}`));
  const subscribed = channels.map((c) => client.subscribe(c));
  client.connect();
  await flush();
  Socket.instances.at(-1).fail();
  mock.timers.tick(1000);
  await flush();
  Socket.instances.at(-1).fail();
  mock.timers.tick(0);
  await flush();
  return { client, statuses, subscribed };
}

beforeEach(() => {
  Socket = fakeSocketClass();
  ES = fakeEventSourceClass();
  fetchCalls = [];
  fetchReply = () => [200, {}];
  clients = [];
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
});

afterEach(() => {
  for (const c of clients) c.close();
  mock.timers.reset();
});

describe('falling back to SSE', () => {
  test('test_two_failed_websockets_move_the_client_to_sse_with_the_same_events', async () => {
    const { client, statuses, subscribed } = await onSSE(['issues'], { token: 'tok' });
    assert.equal(Socket.instances.length, 2);
    assert.equal(client.transport, 'sse');
    const es = ES.last;
    assert.equal(es.url.pathname, '/sse/');
    assert.equal(es.url.searchParams.get('channels'), 'issues');
    assert.equal(es.url.searchParams.get('client_id'), 'tab-1.sse');
    assert.equal(es.url.searchParams.get('token'), 'tok');
    const seen = [];
    client.on('announcement', (m) => seen.push(m.seq));
    es.hello('issues=5');
    await flush();
    assert.equal(client.state, 'open');
    assert.deepEqual(client.status, { state: 'open', transport: 'sse' });
    assert.ok(statuses.includes('open/sse'));
    assert.equal((await subscribed[0]).seq, 5);
    es.emit('announcement', pub('issues', 6), 'issues=6');
    es.emit('announcement', pub('issues', 6), 'issues=6'); // a repeat is dropped as on a socket
    es.emit('announcement', pub('issues', 7), 'issues=7');
    assert.deepEqual(seen, [6, 7]);
    assert.equal(client.lastSeq('issues'), 7);
  });

  test('test_a_changed_channel_set_reopens_the_stream_from_its_position', async () => {
    const { client } = await onSSE(['issues']);
    const first = ES.last;
    first.hello('issues=5');
    await flush();
    first.emit('announcement', pub('issues', 6), 'issues=6');
    const global = client.subscribe('global');
    mock.timers.tick(0);
    assert.ok(first.closed);
    const second = ES.last;
    assert.notEqual(second, first);
    assert.equal(second.url.searchParams.get('channels'), 'issues,global');
    assert.equal(second.url.searchParams.get('since'), 'issues=6');
    second.hello('issues=6,global=3');
    await flush();
    assert.equal((await global).seq, 3);
    client.unsubscribe('global');
    mock.timers.tick(0);
    assert.equal(ES.last.url.searchParams.get('channels'), 'issues');
  });

  test('test_close_4503_reconnects_on_sse_from_the_position_with_a_fresh_token', async () => {
    let n = 0;
    const getToken = mock.fn(async () => `token-${++n}`);
    const { client } = await onSSE(['issues'], { getToken });
    const es = ES.last;
    es.hello('issues=5');
    await flush();
    es.emit('announcement', pub('issues', 6), 'issues=6');
    es.emit('close', { type: 'close', code: 4503 });
    assert.equal(client.state, 'reconnecting');
    mock.timers.tick(1000);
    await flush();
    const next = ES.last;
    assert.notEqual(next, es);
    assert.equal(next.url.searchParams.get('since'), 'issues=6');
    assert.equal(next.url.searchParams.get('token'), `token-${n}`);
    assert.equal(getToken.mock.callCount(), n);
    assert.ok(n >= 4, 'getToken is called on every (re)connect');
  });

  test('test_recovery_false_emits_reset', async () => {
    const { client } = await onSSE(['issues']);
    const resets = [];
    client.on('reset', (r) => resets.push(r));
    ES.last.hello('issues=9');
    await flush();
    ES.last.emit('recovery', { channel: 'issues', recovered: false }, 'issues=9');
    assert.deepEqual(resets, [{ channel: 'issues', reason: 'not_recovered', from: undefined, to: 9 }]);
  });

  test('test_presence_goes_over_post_while_on_sse', async () => {
    const { client } = await onSSE(['issues'], { token: 'tok' });
    ES.last.hello('issues=0');
    await flush();
    fetchReply = () => [200, { type: 'presence_ack', status: 'away', activity: 'triaging' }];
    const ack = await client.setPresence('away', 'triaging');
    assert.equal(ack.type, 'presence_ack');
    const call = fetchCalls.at(-1);
    assert.equal(call.url, 'http://test:8000/api/realtime/presence/');
    assert.equal(call.method, 'POST');
    assert.equal(call.headers.Authorization, 'Bearer tok');
    assert.deepEqual(JSON.parse(call.body), { status: 'away', activity: 'triaging' });
  });

  test('test_channel_presence_signals_and_activity_while_on_sse', async () => {
    const { client } = await onSSE(['issues'], { token: 'tok' });
    ES.last.hello('issues=0');
    await flush();
    client.subscribe('issue:7', { presence: true });
    mock.timers.tick(0);
    await flush();
    const es = ES.last;
    assert.equal(es.url.searchParams.get('channels'), 'issues,issue:7');
    assert.equal(es.url.searchParams.get('presence'), 'issue:7');
    es.emit('connection', { type: 'connection', connection_id: 'c42', user: { id: '2', username: 'alice' }, heartbeat_interval: 30 }, 'issues=0,issue:7=3');
    await flush();
    // The snapshot and the diffs come on the stream, and keep the members.
    const alice = { user_id: '2', username: 'alice', activity: 'viewing', since: 'x', connections: 1 };
    const bob = { user_id: '3', username: 'bob', activity: 'viewing', since: 'y', connections: 1 };
    es.emit('channel_presence', { type: 'channel_presence', channel: 'issue:7', members: [alice] }, 'issues=0,issue:7=3');
    es.emit('channel_presence_diff', { type: 'channel_presence_diff', channel: 'issue:7', joins: [bob], leaves: [] }, 'issues=0,issue:7=3');
    assert.deepEqual(client.members('issue:7').map((m) => m.username), ['alice', 'bob']);
    // Others' signals come on the stream.
    const signals = [];
    client.onSignal('issue:7', 'typing', (msg) => signals.push(msg.user_id));
    es.emit('signal', { type: 'signal', channel: 'issue:7', event: 'typing', user_id: '3', data: {} }, 'issues=0,issue:7=3');
    assert.deepEqual(signals, ['3']);
    // Activity and signals go over HTTP, naming the stream.
    fetchReply = () => [200, { type: 'presence_ack', channel: 'issue:7', activity: 'commenting' }];
    const ack = await client.setActivity('issue:7', 'commenting');
    assert.equal(ack.type, 'presence_ack');
    let call = fetchCalls.at(-1);
    assert.equal(call.url, 'http://test:8000/api/realtime/channels/issue%3A7/activity/');
    assert.deepEqual(JSON.parse(call.body), { connection_id: 'c42', activity: 'commenting' });
    fetchReply = () => [202, {}];
    const errors = [];
    client.on('error', (e) => errors.push(e));
    client.signal('issue:7', 'typing', { field: 'comment' });
    await flush();
    call = fetchCalls.at(-1);
    assert.equal(call.url, 'http://test:8000/api/realtime/channels/issue%3A7/signal/');
    assert.equal(call.headers.Authorization, 'Bearer tok');
    assert.deepEqual(JSON.parse(call.body), { connection_id: 'c42', event: 'typing', data: { field: 'comment' } });
    assert.deepEqual(errors, []); // success has no reply, as on a socket
  });

  test('test_a_refused_channel_rejects_its_subscribe_and_the_rest_goes_on', async () => {
    fetchReply = () => [403, { type: 'error', code: 'forbidden', message: 'no', channel: 'user:9' }];
    const { client, subscribed } = await onSSE(['issues', 'user:9']);
    ES.last.onerror(); // the EventSource failed before its first event: the client asks why
    await flush();
    await flush();
    const retried = ES.last;
    assert.equal(retried.url.searchParams.get('channels'), 'issues');
    retried.hello('issues=1');
    await flush();
    await assert.rejects(subscribed[1], (err) => err.code === 'forbidden');
    assert.equal((await subscribed[0]).seq, 1);
    assert.deepEqual(client.channels, ['issues']);
  });

  test('test_websocket_is_tried_in_the_background_and_the_client_moves_back', async () => {
    const { client } = await onSSE(['issues']);
    const es = ES.last;
    es.hello('issues=5');
    await flush();
    const transports = [];
    client.on('transport', (t) => transports.push(t));
    mock.timers.tick(30000);
    const probe = Socket.instances.at(-1);
    assert.equal(Socket.instances.length, 3, 'a probe WebSocket');
    probe.fail();
    mock.timers.tick(30000);
    const probe2 = Socket.instances.at(-1);
    assert.equal(Socket.instances.length, 4);
    probe2.hello();
    await flush();
    assert.ok(es.closed, 'the stream is closed');
    assert.deepEqual(probe2.closedWith, { code: 1000 });
    const ws = Socket.instances.at(-1);
    assert.equal(Socket.instances.length, 5);
    ws.hello();
    assert.equal(client.transport, 'websocket');
    assert.deepEqual(transports, ['websocket']);
    assert.equal(ws.sent.find((m) => m.type === 'subscribe').since, 5);
  });

  test('test_transports_websocket_only_never_falls_back', async () => {
    const client = makeClient({ transports: ['websocket'] });
    client.connect();
    for (let i = 0; i < 4; i++) {
      await flush();
      Socket.instances.at(-1).fail();
      mock.timers.tick(60000);
    }
    assert.equal(ES.instances.length, 0);
    assert.equal(client.transport, 'websocket');
  });
});

describe('knowing when to try again', () => {
  test('test_visible_again_reconnects_at_once', async () => {
    const doc = new EventTarget();
    doc.visibilityState = 'hidden';
    const client = makeClient({ transports: ['websocket'], window: new EventTarget(), document: doc });
    client.connect();
    await flush();
    Socket.instances.at(-1).hello();
    Socket.instances.at(-1).fail();
    assert.equal(client.state, 'reconnecting');
    assert.equal(Socket.instances.length, 1, 'waiting out the backoff');
    doc.visibilityState = 'visible';
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    assert.equal(Socket.instances.length, 2, 'reconnected at once');
  });

  test('test_no_attempts_are_spent_while_offline', async () => {
    const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    const nav = { onLine: true };
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true });
    try {
      const win = new EventTarget();
      const client = makeClient({ transports: ['websocket'], window: win, maxReconnectAttempts: 2 });
      client.connect();
      await flush();
      Socket.instances.at(-1).hello();
      nav.onLine = false;
      Socket.instances.at(-1).fail();
      for (let i = 0; i < 5; i++) {
        mock.timers.tick(120000);
        await flush();
      }
      assert.equal(Socket.instances.length, 1, 'no attempt while offline');
      assert.equal(client.state, 'reconnecting', 'and none spent: the client still waits');
      nav.onLine = true;
      win.dispatchEvent(new Event('online'));
      await flush();
      Socket.instances.at(-1).hello();
      assert.equal(client.state, 'open');
    } finally {
      if (had) Object.defineProperty(globalThis, 'navigator', had);
      else delete globalThis.navigator;
    }
  });
});
