// Unit tests of the WebSocketClient (realtime/static/realtime/dexter-realtime.js)
// with a fake WebSocket and node's mocked timers: no server, no npm packages.
//
//     node --test tests/js/client.test.mjs

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';

import WebSocketClientDefault, {
  CLOSE_CODES,
  computeBackoff,
  tokenExpiry,
  tokenRefreshDelay,
  WebSocketClient,
} from '../../realtime/static/realtime/dexter-realtime.js';

/** A WebSocket stand-in: records what the client sends, lets a test play the server. */
function fakeSocketClass() {
  class FakeSocket {
    static instances = [];
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closedWith = null;
      this.onmessage = this.onclose = this.onerror = this.onopen = null;
      FakeSocket.instances.push(this);
    }
    static get last() {
      return FakeSocket.instances[FakeSocket.instances.length - 1];
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
    }
    // --- the server's side
    receive(message) {
      this.onmessage({ data: typeof message === 'string' ? message : JSON.stringify(message) });
    }
    hello(extra = {}) {
      this.receive({
        type: 'connection',
        protocol: 1,
        client_id: 'tab-1',
        connection_id: 'c' + FakeSocket.instances.length,
        authenticated: false,
        user: null,
        heartbeat_interval: 30,
        server_time: '2026-11-25T12:00:00Z',
        ...extra,
      });
    }
    serverClose(code, reason = '') {
      this.onclose({ code, reason, wasClean: code !== 1006 });
    }
    sentOfType(type) {
      return this.sent.filter((m) => m.type === type);
    }
    /** Reply `subscribed` to every subscribe sent so far that has no reply yet. */
    ackSubscribes(latest = {}, recovered = true) {
      for (const m of this.sentOfType('subscribe')) {
        if (m._acked) continue;
        m._acked = true;
        this.receive({ type: 'subscribed', channel: m.channel, seq: latest[m.channel] ?? 0, recovered, ref: m.ref });
      }
    }
  }
  return FakeSocket;
}

class MemoryStorage {
  constructor(entries = {}) {
    this.map = new Map(Object.entries(entries));
  }
  getItem(key) {
    return this.map.has(key) ? this.map.get(key) : null;
  }
  setItem(key, value) {
    this.map.set(key, String(value));
  }
  removeItem(key) {
    this.map.delete(key);
  }
}

const pub = (channel, seq, extra = {}) => ({
  type: 'announcement',
  channel,
  seq,
  ts: '2026-11-25T12:00:00Z',
  message: `m${seq}`,
  ...extra,
});

const flush = () => new Promise((resolve) => setImmediate(resolve));

let Socket;
let clients;

function makeClient(options = {}) {
  const client = new WebSocketClient({
    url: 'ws://test:8000',
    clientId: 'tab-1',
    WebSocket: Socket,
    storage: null,
    window: null,
    document: null,
    random: () => 0.5,
    // The WebSocket-only behaviour; the SSE fallback has tests of its own (sse.test.mjs).
    transports: ['websocket'],
    ...options,
  });
  clients.push(client);
  return client;
}

/** A client that is connected and subscribed to `channels` (each at seq `latest`). */
function openClient(channels = ['global'], latest = {}, options = {}) {
  const client = makeClient(options);
  for (const c of channels) client.subscribe(c);
  client.connect();
  Socket.last.hello();
  Socket.last.ackSubscribes(latest);
  return client;
}

function record(client, type = 'message') {
  const seen = [];
  client.on(type, (m) => seen.push(m));
  return seen;
}

beforeEach(() => {
  Socket = fakeSocketClass();
  clients = [];
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
});

afterEach(() => {
  for (const c of clients) c.close();
  mock.timers.reset();
});

describe('backoff', () => {
  test('test_backoff_is_exponential_with_jitter_in_half_to_full_range', () => {
    for (let attempt = 1; attempt <= 4; attempt++) {
      const ceiling = 5000 * 2 ** (attempt - 1);
      assert.equal(computeBackoff(attempt, 5000, 60000, () => 0), ceiling / 2);
      assert.equal(computeBackoff(attempt, 5000, 60000, () => 0.999999), ceiling);
      for (let i = 0; i < 50; i++) {
        const d = computeBackoff(attempt, 5000, 60000);
        assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d}`);
      }
    }
  });

  test('test_backoff_is_capped', () => {
    assert.equal(computeBackoff(5, 5000, 60000, () => 1), 60000);
    assert.equal(computeBackoff(50, 5000, 60000, () => 1), 60000);
    assert.equal(computeBackoff(50, 5000, 60000, () => 0), 30000);
    assert.ok(Number.isFinite(computeBackoff(5000, 5000, 60000)));
  });

  test('test_reconnect_waits_the_backoff_and_gives_up_after_max_attempts', () => {
    const client = makeClient({ maxReconnectAttempts: 3, reconnectInterval: 1000, maxReconnectDelay: 3000 });
    const closes = record(client, 'close');
    client.connect();
    assert.equal(client.state, 'connecting');
    Socket.last.serverClose(1006);
    assert.equal(client.state, 'reconnecting');
    // random 0.5 -> 3/4 of the ceiling: 750, 1500, then capped 3000 -> 2250
    const expected = [750, 1500, 2250];
    for (let i = 0; i < expected.length; i++) {
      assert.equal(closes[i].delay, expected[i]);
      const before = Socket.instances.length;
      mock.timers.tick(expected[i] - 1);
      assert.equal(Socket.instances.length, before, 'no attempt before the delay');
      mock.timers.tick(1);
      assert.equal(Socket.instances.length, before + 1, 'attempt after the delay');
      Socket.last.serverClose(1006);
    }
    assert.equal(client.state, 'closed');
    assert.equal(closes.at(-1).willReconnect, false);
    mock.timers.tick(10 * 60000);
    assert.equal(Socket.instances.length, 4);
  });

  test('test_successful_connection_resets_the_attempt_count', () => {
    const client = makeClient({ maxReconnectAttempts: 2, reconnectInterval: 1000 });
    const closes = record(client, 'close');
    client.connect();
    for (let round = 0; round < 4; round++) {
      Socket.last.hello();
      Socket.last.serverClose(1006);
      assert.equal(closes.at(-1).attempt, 1);
      mock.timers.tick(1000);
    }
    assert.equal(client.state, 'reconnecting');
  });
});

describe('close codes', () => {
  for (const code of [1001, 1006, 1011, 4408, 4429, 4500, 4503]) {
    test(`test_close_${code}_reconnects_and_resumes`, () => {
      assert.ok(CLOSE_CODES.reconnect.includes(code));
      const client = openClient(['issues']);
      Socket.last.receive(pub('issues', 1));
      const statuses = record(client, 'status');
      Socket.last.serverClose(code);
      assert.equal(client.state, 'reconnecting');
      mock.timers.tick(5000);
      assert.equal(Socket.instances.length, 2);
      Socket.last.hello();
      assert.equal(client.state, 'open');
      assert.deepEqual(statuses, ['reconnecting', 'open']);
      const [sub] = Socket.last.sentOfType('subscribe');
      assert.equal(sub.channel, 'issues');
      assert.equal(sub.since, 1);
    });
  }

  for (const code of [1000, 1008, 4403, 4409, 4413]) {
    test(`test_close_${code}_stays_closed`, () => {
      assert.ok(CLOSE_CODES.final.includes(code));
      const client = openClient(['issues']);
      const closes = record(client, 'close');
      Socket.last.serverClose(code);
      assert.equal(client.state, 'closed');
      assert.deepEqual(
        closes.map((c) => [c.code, c.willReconnect]),
        [[code, false]],
      );
      mock.timers.tick(10 * 60000);
      assert.equal(Socket.instances.length, 1);
    });
  }

  test('test_close_4401_gets_a_fresh_token_and_reconnects_with_it', async () => {
    let n = 0;
    const getToken = async () => `token-${++n}`;
    const client = makeClient({ getToken });
    client.subscribe('issues');
    client.connect();
    await flush();
    assert.match(Socket.last.url, /\?token=token-1$/);
    Socket.last.hello();
    Socket.last.ackSubscribes({ issues: 4 });
    Socket.last.receive({ type: 'error', code: 'token_expired', message: 'token has expired' });
    Socket.last.serverClose(4401);
    assert.equal(client.state, 'reconnecting');
    await flush();
    mock.timers.tick(0);
    assert.equal(Socket.instances.length, 2);
    assert.equal(Socket.last.url, 'ws://test:8000/ws/tab-1/?token=token-2');
    Socket.last.hello();
    assert.equal(Socket.last.sentOfType('subscribe')[0].since, 4);
  });

  test('test_close_4401_without_get_token_gives_up', () => {
    const client = openClient([], {}, { token: 'static' });
    Socket.last.serverClose(4401);
    assert.equal(client.state, 'closed');
    mock.timers.tick(60000);
    assert.equal(Socket.instances.length, 1);
  });

  test('test_close_4401_gives_up_when_get_token_has_none', async () => {
    for (const getToken of [async () => null, async () => { throw new Error('refresh failed'); }]) {
      Socket.instances.length = 0;
      const client = openClient([], {}, { token: 'old', getToken });
      const closes = record(client, 'close');
      Socket.last.serverClose(4401);
      await flush();
      assert.equal(client.state, 'closed');
      assert.equal(closes.at(-1).willReconnect, false);
      mock.timers.tick(60000);
      assert.equal(Socket.instances.length, 1);
    }
  });

  test('test_close_4401_repeated_counts_toward_max_attempts', async () => {
    const client = openClient([], {}, { token: 'first', getToken: async () => 'again', maxReconnectAttempts: 2 });
    for (let i = 0; i < 2; i++) {
      Socket.last.serverClose(4401);
      await flush();
      mock.timers.tick(60000);
    }
    assert.equal(Socket.instances.length, 3);
    Socket.last.serverClose(4401);
    await flush();
    assert.equal(client.state, 'closed');
  });

  test('test_close_by_client_sends_1000_and_stops', () => {
    const client = openClient();
    const ws = Socket.last;
    client.close();
    assert.equal(ws.closedWith.code, 1000);
    assert.equal(client.state, 'closed');
    mock.timers.tick(60000);
    assert.equal(Socket.instances.length, 1);
  });
});

describe('token refresh', () => {
  // The fake clock starts where the fake server's `connection` says it is.
  const NOW = Date.parse('2026-11-25T12:00:00Z');

  function useClock() {
    mock.timers.reset();
    mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: NOW });
  }

  /** An unsigned JWT whose payload carries `exp` (seconds) and `claims`. */
  function jwt(expSeconds, claims = {}) {
    const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
    return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ token_type: 'access', exp: expSeconds, ...claims })}.c2ln`;
  }

  /** A token that expires `seconds` from the fake clock's now. */
  const expiringIn = (seconds, claims) => jwt(Math.floor(Date.now() / 1000) + seconds, claims);

  function authenticate(ws, frame) {
    ws.receive({ type: 'authenticated', user: { id: '2', username: 'alice' }, ref: frame.ref });
  }

  test('test_token_expiry_and_refresh_delay', () => {
    useClock();
    assert.equal(tokenExpiry(jwt(1_800_000_000)), 1_800_000_000_000);
    // base64url payload with characters that differ from base64 (- and _), and no padding
    assert.equal(tokenExpiry(jwt(1_800_000_000, { name: '??>>ü~~' })), 1_800_000_000_000);
    for (const bad of [null, '', 'not-a-jwt', 'a.b.c', jwt('soon'), 'x.' + Buffer.from('[1]').toString('base64url') + '.y']) {
      assert.equal(tokenExpiry(bad), null, String(bad));
    }
    assert.equal(tokenRefreshDelay(NOW + 300_000, NOW), 240_000, '80% of 5 min comes before 30 s before exp');
    assert.equal(tokenRefreshDelay(NOW + 100_000, NOW), 70_000, '30 s before exp comes before 80%');
    assert.equal(tokenRefreshDelay(NOW + 6_000, NOW), 4_800, 'a short token: at 80%');
    assert.equal(tokenRefreshDelay(NOW + 1_100, NOW), 1_000, 'never sooner than a second');
    assert.equal(tokenRefreshDelay(NOW + 900, NOW), null, 'expires before it could be refreshed');
    assert.equal(tokenRefreshDelay(NOW, NOW), null, 'expired: the 4401 path takes over');
    assert.equal(tokenRefreshDelay(null, NOW), null);
  });

  test('test_fresh_token_is_sent_with_auth_before_expiry_and_used_to_reconnect', async () => {
    useClock();
    const issued = [];
    const getToken = mock.fn(async () => {
      issued.push(expiringIn(300, { n: issued.length + 1 }));
      return issued.at(-1);
    });
    const first = expiringIn(300);
    const client = openClient(['issues'], {}, { token: first, getToken, heartbeat: false });
    const ws = Socket.last;
    assert.match(ws.url, new RegExp(`token=${first}$`));

    mock.timers.tick(240_000 - 1);
    await flush();
    assert.equal(getToken.mock.callCount(), 0, 'not before 80% of the lifetime');
    mock.timers.tick(1);
    await flush();
    assert.equal(getToken.mock.callCount(), 1);
    const [auth] = ws.sentOfType('auth');
    assert.equal(auth.token, issued[0]);
    assert.equal(typeof auth.ref, 'string');
    authenticate(ws, auth);

    // The next one is timed from the fresh token's expiry.
    mock.timers.tick(240_000 - 1);
    await flush();
    assert.equal(ws.sentOfType('auth').length, 1);
    mock.timers.tick(1);
    await flush();
    assert.equal(ws.sentOfType('auth').length, 2);
    assert.equal(ws.sentOfType('auth')[1].token, issued[1]);
    authenticate(ws, ws.sentOfType('auth')[1]);
    assert.equal(client.state, 'open');

    // A reconnect asks getToken again (issue 14) and uses what it gives.
    ws.serverClose(1006);
    mock.timers.tick(5000);
    await flush();
    assert.equal(Socket.instances.length, 2);
    assert.equal(getToken.mock.callCount(), 3, 'every reconnect calls getToken');
    assert.equal(Socket.last.url, `ws://test:8000/ws/tab-1/?token=${issued[2]}`);
  });

  test('test_short_lived_token_is_refreshed_at_80_percent_of_its_lifetime', async () => {
    useClock();
    const getToken = mock.fn(async () => jwt(Date.now() / 1000 + 6)); // exp to the ms
    makeClient({ getToken, heartbeat: false }).connect();
    await flush();
    const ws = Socket.last;
    ws.hello({ authenticated: true, user: { id: '2', username: 'alice' } });
    assert.equal(getToken.mock.callCount(), 1, 'the token to connect with');
    for (let round = 1; round <= 3; round++) {
      mock.timers.tick(4_799);
      await flush();
      assert.equal(ws.sentOfType('auth').length, round - 1);
      mock.timers.tick(1);
      await flush();
      assert.equal(ws.sentOfType('auth').length, round);
      authenticate(ws, ws.sentOfType('auth').at(-1));
    }
    assert.equal(getToken.mock.callCount(), 4);
  });

  test('test_same_token_from_get_token_is_not_resent_and_never_loops', async () => {
    useClock();
    const token = expiringIn(300);
    const getToken = mock.fn(async () => token); // e.g. the refresh endpoint is down
    const client = openClient([], {}, { token, getToken, heartbeat: false });
    const ws = Socket.last;
    const calls = [];
    for (let ms = 0; ms < 600_000; ms += 100) {
      mock.timers.tick(100);
      await flush();
      if (getToken.mock.callCount() > calls.length) calls.push(Date.now() - NOW);
    }
    assert.equal(ws.sentOfType('auth').length, 0, 'the server already has that token');
    // 240 s, then 30 s before exp, then 80% of what is left, ... never under a second apart,
    // and nothing once the token has expired.
    assert.deepEqual(calls, [240_000, 270_000, 294_000, 298_800, 299_800]);
    assert.ok(calls.at(-1) < 300_000);
    assert.equal(client.state, 'open');
  });

  test('test_failing_get_token_leaves_it_to_the_4401_path', async () => {
    useClock();
    let fail = true;
    const fresh = expiringIn(600);
    const getToken = mock.fn(async () => {
      if (fail) throw new Error('refresh rejected');
      return fresh;
    });
    const client = openClient(['issues'], { issues: 3 }, { token: expiringIn(10), getToken, heartbeat: false });
    const ws = Socket.last;
    mock.timers.tick(8_000);
    await flush();
    assert.equal(getToken.mock.callCount(), 1);
    assert.equal(ws.sentOfType('auth').length, 0);
    mock.timers.tick(60_000);
    await flush();
    assert.equal(getToken.mock.callCount(), 1, 'no retry loop after a failure');
    assert.equal(client.state, 'open');

    // The token expires: the server closes with 4401, and a fresh token reconnects.
    fail = false;
    ws.receive({ type: 'error', code: 'token_expired', message: 'token has expired' });
    ws.serverClose(4401);
    await flush();
    mock.timers.tick(0);
    assert.equal(Socket.instances.length, 2);
    assert.equal(Socket.last.url, `ws://test:8000/ws/tab-1/?token=${fresh}`);
    Socket.last.hello();
    assert.equal(Socket.last.sentOfType('subscribe')[0].since, 3);
  });

  test('test_refused_or_unanswered_auth_is_retried_before_expiry', async () => {
    useClock();
    const getToken = mock.fn(async () => expiringIn(300, { n: getToken.mock.callCount() }));
    openClient([], {}, { token: expiringIn(100), getToken, heartbeat: false, requestTimeout: 1000 });
    const ws = Socket.last;
    mock.timers.tick(70_000); // 30 s before exp
    await flush();
    const [first] = ws.sentOfType('auth');
    ws.receive({ type: 'error', code: 'rate_limited', message: 'slow down', ref: first.ref });
    mock.timers.tick(24_000); // 80% of the 30 s left
    await flush();
    assert.equal(ws.sentOfType('auth').length, 2);
    mock.timers.tick(1_000); // no reply: timeout, then 80% of the 5 s left
    mock.timers.tick(4_000);
    await flush();
    assert.equal(ws.sentOfType('auth').length, 3);
    authenticate(ws, ws.sentOfType('auth')[2]);
    mock.timers.tick(60_000);
    await flush();
    assert.equal(ws.sentOfType('auth').length, 3, 'accepted: the next refresh is minutes away');
  });

  test('test_token_arriving_after_the_socket_dropped_is_kept_for_the_reconnect', async () => {
    useClock();
    let release;
    const fresh = expiringIn(600);
    let calls = 0;
    const getToken = mock.fn(() => (++calls === 1 ? new Promise((resolve) => (release = () => resolve(fresh))) : Promise.resolve(null)));
    const client = openClient([], {}, { token: expiringIn(10), getToken, heartbeat: false });
    const ws = Socket.last;
    mock.timers.tick(8_000);
    assert.equal(getToken.mock.callCount(), 1);
    ws.serverClose(1006);
    release();
    await flush();
    assert.equal(ws.sentOfType('auth').length, 0, 'nothing sent on a dead socket');
    mock.timers.tick(5000);
    await flush();
    // The reconnect asks again; getToken having nothing new, the fresh token is kept.
    assert.equal(getToken.mock.callCount(), 2);
    assert.equal(Socket.last.url, `ws://test:8000/ws/tab-1/?token=${fresh}`);
    Socket.last.hello();
    assert.equal(client.state, 'open');
  });

  test('test_no_refresh_without_get_token_exp_or_token_and_none_after_close', async () => {
    useClock();
    const getToken = mock.fn(async () => expiringIn(300));
    openClient([], {}, { token: expiringIn(60), heartbeat: false }); // no getToken
    openClient([], {}, { token: 'opaque-token', getToken, heartbeat: false }); // no exp to go by
    const anonymous = makeClient({ getToken: async () => null, heartbeat: false });
    anonymous.connect();
    await flush();
    Socket.last.hello();
    const closing = openClient([], {}, { token: expiringIn(60), getToken, heartbeat: false });
    closing.close();
    mock.timers.tick(3_600_000);
    await flush();
    assert.equal(getToken.mock.callCount(), 0);
    for (const ws of Socket.instances) assert.equal(ws.sentOfType('auth').length, 0);
  });
});

describe('delivery', () => {
  test('test_repeats_are_dropped_by_channel_and_seq', () => {
    const client = openClient(['issues', 'global']);
    const seen = record(client, 'announcement');
    const ws = Socket.last;
    for (const m of [pub('issues', 1), pub('issues', 1), pub('global', 1), pub('issues', 2), pub('issues', 1), pub('global', 1)]) {
      ws.receive(m);
    }
    assert.deepEqual(
      seen.map((m) => `${m.channel}:${m.seq}`),
      ['issues:1', 'global:1', 'issues:2'],
    );
  });

  test('test_gap_requests_history_and_delivers_in_order', () => {
    const client = openClient(['issues'], { issues: 2 });
    const seen = record(client, 'announcement');
    const ws = Socket.last;
    ws.receive(pub('issues', 3));
    ws.receive(pub('issues', 6));
    ws.receive(pub('issues', 7));
    const [req] = ws.sentOfType('history');
    assert.deepEqual({ ...req, ref: undefined }, { type: 'history', channel: 'issues', since: 3, limit: 2, ref: undefined });
    assert.equal(ws.sentOfType('history').length, 1, 'one request per gap');
    assert.deepEqual(seen.map((m) => m.seq), [3]);
    ws.receive({ type: 'history', channel: 'issues', messages: [pub('issues', 4), pub('issues', 5)], recovered: true, ref: req.ref });
    assert.deepEqual(seen.map((m) => m.seq), [3, 4, 5, 6, 7]);
    ws.receive(pub('issues', 5));
    ws.receive(pub('issues', 8));
    assert.deepEqual(seen.map((m) => m.seq), [3, 4, 5, 6, 7, 8]);
  });

  test('test_history_reply_with_more_asks_again_from_its_last_seq', () => {
    const client = openClient(['issues'], { issues: 2 });
    const seen = record(client, 'announcement');
    const resets = record(client, 'reset');
    const ws = Socket.last;
    ws.receive(pub('issues', 7));
    const [first] = ws.sentOfType('history');
    // The server stopped early (its 1 MiB bound): fewer than asked, more: true.
    ws.receive({ type: 'history', channel: 'issues', messages: [pub('issues', 3), pub('issues', 4)], recovered: true, more: true, ref: first.ref });
    const [, second] = ws.sentOfType('history');
    assert.equal(second.since, 4);
    ws.receive({ type: 'history', channel: 'issues', messages: [pub('issues', 5), pub('issues', 6)], recovered: true, more: false, ref: second.ref });
    assert.deepEqual(seen.map((m) => m.seq), [3, 4, 5, 6, 7]);
    assert.deepEqual(resets, []);
  });

  test('test_gap_that_history_cannot_fill_emits_reset_and_goes_on', () => {
    const client = openClient(['issues'], { issues: 2 });
    const seen = record(client, 'announcement');
    const resets = record(client, 'reset');
    const ws = Socket.last;
    ws.receive(pub('issues', 9));
    const [req] = ws.sentOfType('history');
    ws.receive({ type: 'history', channel: 'issues', messages: [], recovered: false, ref: req.ref });
    assert.deepEqual(resets, [{ channel: 'issues', reason: 'not_recovered', from: 2, to: 8 }]);
    assert.deepEqual(seen.map((m) => m.seq), [9]);
  });

  test('test_batch_frames_are_unwrapped_in_order', () => {
    const client = openClient(['issues', 'global'], {}, { batch: true });
    assert.match(Socket.last.url, /batch=1/);
    const seen = record(client);
    Socket.last.receive({ type: 'batch', messages: [pub('issues', 1), pub('global', 1), pub('issues', 2), pub('issues', 2)] });
    assert.deepEqual(
      seen.map((m) => `${m.type}:${m.channel}:${m.seq}`),
      ['announcement:issues:1', 'announcement:global:1', 'announcement:issues:2'],
    );
  });

  test('test_each_message_type_and_message_are_emitted', () => {
    const client = openClient(['issues']);
    const all = record(client, 'message');
    const updates = record(client, 'issue_update');
    Socket.last.receive({ type: 'issue_update', channel: 'issues', seq: 1, ts: 'x', update_type: 'resolved', issue_id: '1', data: {} });
    assert.equal(updates.length, 1);
    assert.equal(all.at(-1).type, 'issue_update');
  });

  test('test_resume_with_since_after_reconnect_delivers_missed_once', () => {
    const client = openClient(['issues', 'global'], { issues: 10, global: 0 });
    const seen = record(client, 'announcement');
    Socket.last.receive(pub('issues', 11));
    Socket.last.serverClose(1006);
    mock.timers.tick(5000);
    const ws = Socket.last;
    ws.hello();
    const subs = ws.sentOfType('subscribe');
    assert.deepEqual(
      subs.map((s) => [s.channel, s.since]),
      [['issues', 11], ['global', 0]],
    );
    ws.ackSubscribes({ issues: 13, global: 0 });
    // Replays, one of them a repeat of what was delivered before the drop.
    for (const seq of [11, 12, 13]) ws.receive(pub('issues', seq));
    assert.deepEqual(seen.map((m) => m.seq), [11, 12, 13]);
  });

  test('test_not_recovered_on_resubscribe_emits_reset', () => {
    const client = openClient(['issues'], { issues: 5 });
    const resets = record(client, 'reset');
    const seen = record(client, 'announcement');
    Socket.last.serverClose(4503);
    mock.timers.tick(5000);
    Socket.last.hello();
    Socket.last.ackSubscribes({ issues: 2000 }, false);
    assert.deepEqual(resets, [{ channel: 'issues', reason: 'not_recovered', from: 5, to: 2000 }]);
    Socket.last.receive(pub('issues', 1999)); // a partial replay: skipped, the page reloads
    Socket.last.receive(pub('issues', 2001));
    assert.deepEqual(seen.map((m) => m.seq), [2001]);
  });

  test('test_socket_closed_before_first_subscribed_emits_reset_on_resubscribe', () => {
    const client = makeClient();
    const resets = record(client, 'reset');
    client.subscribe('issues');
    client.subscribe('global');
    client.connect();
    Socket.last.hello();
    const first = Socket.last.sentOfType('subscribe');
    assert.equal(first.find((m) => m.channel === 'issues').since, undefined);
    const global = first.find((m) => m.channel === 'global');
    // `global` is answered; `issues` gets no reply: the server stops first.
    Socket.last.receive({ type: 'subscribed', channel: 'global', seq: 2, recovered: true, ref: global.ref });
    Socket.last.serverClose(4503);
    mock.timers.tick(5000);
    Socket.last.hello();
    const resent = Socket.last.sentOfType('subscribe');
    assert.equal(resent.find((m) => m.channel === 'issues').since, undefined, 'there is no seq to resume from');
    assert.equal(resent.find((m) => m.channel === 'global').since, 2);
    Socket.last.ackSubscribes({ issues: 7, global: 2 });
    // What was published on `issues` between the subscribe and now is gone: the page must reload.
    assert.deepEqual(resets, [{ channel: 'issues', reason: 'interrupted', from: undefined, to: 7 }]);
    assert.equal(client.lastSeq('issues'), 7);
    // A plain first subscribe, answered on its own socket, is no reset.
    client.subscribe('alerts');
    Socket.last.ackSubscribes({ alerts: 3 });
    assert.equal(resets.length, 1);
  });

  test('test_server_seq_rewound_emits_reset_and_accepts_new_messages', () => {
    const storage = new MemoryStorage({ 'dexter-realtime:last-seq:ws://test:8000': JSON.stringify({ issues: 50 }) });
    const client = makeClient({ storage });
    const resets = record(client, 'reset');
    client.subscribe('issues');
    client.connect();
    Socket.last.hello();
    assert.equal(Socket.last.sentOfType('subscribe')[0].since, 50);
    Socket.last.ackSubscribes({ issues: 3 });
    assert.deepEqual(resets, [{ channel: 'issues', reason: 'seq_rewound', from: 50, to: 3 }]);
    assert.equal(client.lastSeq('issues'), 3);
    const seen = record(client, 'announcement');
    Socket.last.receive(pub('issues', 4));
    assert.deepEqual(seen.map((m) => m.seq), [4]);
  });

  test('test_messages_for_unsubscribed_channels_are_dropped', () => {
    const client = openClient(['issues']);
    const seen = record(client, 'announcement');
    client.unsubscribe('issues');
    assert.equal(Socket.last.sentOfType('unsubscribe').length, 1);
    Socket.last.receive(pub('issues', 1));
    assert.equal(seen.length, 0);
  });

  test('test_last_seq_is_kept_in_storage_across_reloads', () => {
    const storage = new MemoryStorage();
    const first = openClient(['issues'], { issues: 7 }, { storage });
    Socket.last.receive(pub('issues', 8));
    first.close();
    assert.deepEqual(JSON.parse(storage.getItem('dexter-realtime:last-seq:ws://test:8000')), { issues: 8 });
    // A page reload: a new client with the same storage resumes after 8.
    openClient(['issues', 'global'], { issues: 9 }, { storage });
    const subs = Socket.last.sentOfType('subscribe');
    assert.deepEqual(
      subs.map((s) => [s.channel, s.since]),
      [['issues', 8], ['global', undefined]],
    );
  });
});

describe('requests and heartbeat', () => {
  test('test_send_resolves_with_the_reply_of_the_same_ref', async () => {
    const client = openClient([]);
    const reply = client.send({ type: 'ping', timestamp: 'now' });
    const [sent] = Socket.last.sentOfType('ping');
    assert.ok(sent.ref);
    Socket.last.receive({ type: 'pong', timestamp: 'other', server_time: 'x', ref: 'someone-else' });
    Socket.last.receive({ type: 'pong', timestamp: 'now', server_time: 'x', ref: sent.ref });
    assert.equal((await reply).timestamp, 'now');
  });

  test('test_send_rejects_on_error_reply', async () => {
    const client = openClient([]);
    const reply = client.send({ type: 'subscribe', channel: 'issues', ref: 'mine' });
    const errors = record(client, 'error');
    Socket.last.receive({ type: 'error', code: 'forbidden', message: 'sign in', channel: 'issues', ref: 'mine' });
    await assert.rejects(reply, (err) => err.code === 'forbidden' && err.channel === 'issues');
    assert.equal(errors.length, 1);
  });

  test('test_subscribe_error_rejects_and_is_not_retried_after_reconnect', async () => {
    const client = openClient([]);
    const sub = client.subscribe('issue:404');
    const [req] = Socket.last.sentOfType('subscribe');
    Socket.last.receive({ type: 'error', code: 'not_found', message: 'no such issue', channel: 'issue:404', ref: req.ref });
    await assert.rejects(sub, (err) => err.code === 'not_found');
    assert.deepEqual(client.channels, []);
  });

  test('test_history_helper_and_presence_and_queue_until_open', async () => {
    const client = makeClient();
    const presence = client.setPresence('away', 'viewing issue 1');
    await assert.rejects(client.history('issues', 3, 10), (err) => err.code === 'closed', 'never connected');
    client.connect();
    const hist = client.history('issues', 3, 10);
    const ws = Socket.last;
    assert.equal(ws.sent.length, 0, 'nothing is sent before the connection message');
    ws.hello();
    const [p] = ws.sentOfType('presence');
    const [h] = ws.sentOfType('history');
    assert.deepEqual([p.status, p.activity], ['away', 'viewing issue 1']);
    assert.deepEqual([h.channel, h.since, h.limit], ['issues', 3, 10]);
    ws.receive({ type: 'presence_ack', status: 'away', ref: p.ref });
    ws.receive({ type: 'history', channel: 'issues', messages: [], recovered: true, ref: h.ref });
    assert.equal((await presence).status, 'away');
    assert.equal((await hist).type, 'history');
    // Presence is set again after a reconnect.
    ws.serverClose(1006);
    mock.timers.tick(5000);
    Socket.last.hello();
    assert.equal(Socket.last.sentOfType('presence')[0].status, 'away');
  });

  test('test_request_without_reply_times_out', async () => {
    const client = openClient([], {}, { requestTimeout: 1000 });
    const reply = client.send({ type: 'ping' });
    mock.timers.tick(1000);
    await assert.rejects(reply, (err) => err.code === 'timeout');
  });

  test('test_heartbeat_pings_every_server_interval_and_detects_a_dead_socket', () => {
    const client = openClient([]);
    const ws = Socket.last;
    mock.timers.tick(30000);
    assert.equal(ws.sentOfType('ping').length, 1);
    ws.receive({ type: 'pong', timestamp: 'x', server_time: 'y' });
    mock.timers.tick(30000);
    mock.timers.tick(30000);
    assert.equal(ws.sentOfType('ping').length, 3);
    assert.equal(client.state, 'open');
    mock.timers.tick(30000); // three intervals of silence
    assert.equal(client.state, 'reconnecting');
    assert.equal(ws.closedWith.code, 4000);
  });

  test('test_heartbeat_uses_heartbeat_interval_from_connection', () => {
    makeClient().connect();
    Socket.last.hello({ heartbeat_interval: 2 });
    mock.timers.tick(2000);
    assert.equal(Socket.last.sentOfType('ping').length, 1);
  });
});

describe('options and environment', () => {
  test('test_default_export_and_url_with_client_id_and_token', () => {
    assert.equal(WebSocketClientDefault, WebSocketClient);
    const client = makeClient({ url: 'http://example.test:8000/', clientId: 'tab-9', token: 'a b' });
    client.connect();
    assert.equal(Socket.last.url, 'ws://example.test:8000/ws/tab-9/?token=a%20b');
    assert.equal(client.reconnectInterval, 5000);
    assert.equal(client.maxReconnectAttempts, 5);
  });

  test('test_client_id_is_generated_and_kept_per_tab', () => {
    const session = new MemoryStorage();
    const a = new WebSocketClient({ url: 'ws://x', sessionStorage: session, WebSocket: Socket, window: null, storage: null });
    const b = new WebSocketClient({ url: 'ws://x', sessionStorage: session, WebSocket: Socket, window: null, storage: null });
    assert.match(a.clientId, /^[A-Za-z0-9_.-]{1,64}$/);
    assert.equal(a.clientId, b.clientId);
    const other = new WebSocketClient({ url: 'ws://x', sessionStorage: new MemoryStorage(), WebSocket: Socket, window: null, storage: null });
    assert.notEqual(other.clientId, a.clientId);
  });

  test('test_on_returns_a_function_that_removes_the_handler', () => {
    const client = openClient(['global']);
    const seen = [];
    const off = client.on('announcement', (m) => seen.push(m.seq));
    Socket.last.receive(pub('global', 1));
    off();
    Socket.last.receive(pub('global', 2));
    assert.deepEqual(seen, [1]);
  });

  test('test_a_throwing_handler_does_not_stop_others', () => {
    const client = openClient(['global']);
    const seen = [];
    const errorLog = mock.method(console, 'error', () => {});
    client.on('announcement', () => {
      throw new Error('boom');
    });
    client.on('announcement', (m) => seen.push(m.seq));
    Socket.last.receive(pub('global', 1));
    assert.deepEqual(seen, [1]);
    assert.equal(errorLog.mock.callCount(), 1);
    errorLog.mock.restore();
  });

  test('test_debug_logs_frames_but_never_tokens', async () => {
    const lines = [];
    const debug = mock.method(console, 'debug', (...args) => lines.push(args.map(String).join(' ')));
    try {
      const client = openClient(['global'], {}, { debug: true, token: 'secret-access-token' });
      client.send({ type: 'auth', token: 'secret-refresh-token' });
      Socket.last.receive(pub('global', 1));
    } finally {
      debug.mock.restore();
    }
    const text = lines.join('\n');
    assert.match(text, /subscribe/);
    assert.match(text, /announcement/);
    assert.doesNotMatch(text, /secret/);
  });

  test('test_offline_closes_and_online_reconnects_at_once', () => {
    const win = new EventTarget();
    const client = openClient(['issues'], { issues: 1 }, { window: win });
    const ws = Socket.last;
    win.dispatchEvent(new Event('offline'));
    assert.equal(client.state, 'reconnecting');
    assert.ok(ws.closedWith);
    mock.timers.tick(60000);
    assert.equal(Socket.instances.length, 1, 'no retries while offline');
    win.dispatchEvent(new Event('online'));
    assert.equal(Socket.instances.length, 2);
    Socket.last.hello();
    assert.equal(client.state, 'open');
    assert.equal(Socket.last.sentOfType('subscribe')[0].since, 1);
    client.close();
    win.dispatchEvent(new Event('online'));
    assert.equal(Socket.instances.length, 2, 'a closed client ignores online');
  });

  test('test_connect_resolves_on_connection_and_rejects_when_closed_first', async () => {
    const client = makeClient();
    const opened = client.connect();
    Socket.last.hello({ authenticated: true, user: { id: '2', username: 'alice' } });
    assert.equal((await opened).type, 'connection');
    assert.equal(client.user.username, 'alice');
    const other = makeClient({ maxReconnectAttempts: 0 });
    const failing = other.connect();
    Socket.last.serverClose(1006);
    await assert.rejects(failing, (err) => err.code === 'closed');
  });
});
