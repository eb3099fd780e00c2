// Channel presence, activity, signals and the position helpers of the client
// (docs/protocol.md sections 10-12), with a fake WebSocket: no server.
//
//     node --test tests/js/collab.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { applyChannelPresence } from '../../realtime/static/realtime/channel-presence.js';
import { WebSocketClient } from '../../realtime/static/realtime/dexter-realtime.js';
import { loadWithPosition, parsePosition } from '../../realtime/static/realtime/position.js';

class FakeSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    FakeSocket.instances.push(this);
  }
  static get last() {
    return FakeSocket.instances[FakeSocket.instances.length - 1];
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {}
  receive(message) {
    this.onmessage({ data: JSON.stringify(message) });
  }
  hello() {
    this.receive({ type: 'connection', protocol: 1, client_id: 'tab-1', connection_id: 'c1', authenticated: true,
      user: { id: '1', username: 'alice' }, heartbeat_interval: 30, server_time: '2026-11-25T12:00:00Z' });
  }
  of(type) {
    return this.sent.filter((m) => m.type === type);
  }
  ackSubscribes(seq = 0) {
    for (const m of this.of('subscribe')) {
      if (m._acked) continue;
      m._acked = true;
      this.receive({ type: 'subscribed', channel: m.channel, seq, recovered: true, ref: m.ref });
    }
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const member = (id, username, activity = 'viewing', connections = 1) => ({
  user_id: id, username, activity, since: '2026-11-25T12:00:00.000Z', connections,
});

function makeClient() {
  return new WebSocketClient({
    url: 'ws://test:8000', clientId: 'tab-1', WebSocket: FakeSocket, storage: null, window: null,
    heartbeat: false, token: 'tok', reconnectInterval: 2, maxReconnectDelay: 2, requestTimeout: 300,
  });
}

async function opened() {
  const client = makeClient();
  const connected = client.connect();
  FakeSocket.last.hello();
  await connected;
  return client;
}

test('subscribe with presence sends presence: true and keeps the members up to date', async () => {
  const client = await opened();
  const seen = [];
  client.on('members', (channel, members) => seen.push([channel, members.map((m) => m.username)]));
  const subscribed = client.subscribe('issue:7', { presence: true });
  const ws = FakeSocket.last;
  assert.equal(ws.of('subscribe')[0].presence, true);
  ws.ackSubscribes();
  await subscribed;
  ws.receive({ type: 'channel_presence', channel: 'issue:7', members: [member('2', 'bob'), member('1', 'alice')] });
  assert.deepEqual(client.members('issue:7').map((m) => m.username), ['alice', 'bob']);
  ws.receive({ type: 'channel_presence_diff', channel: 'issue:7', joins: [member('2', 'bob', 'commenting')],
    leaves: [member('2', 'bob')] });
  assert.deepEqual(client.members('issue:7').map((m) => [m.username, m.activity]), [['alice', 'viewing'], ['bob', 'commenting']]);
  ws.receive({ type: 'channel_presence_diff', channel: 'issue:7', joins: [], leaves: [member('2', 'bob', 'commenting')] });
  assert.deepEqual(client.members('issue:7').map((m) => m.username), ['alice']);
  assert.deepEqual(seen.at(-1), ['issue:7', ['alice']]);
  await client.unsubscribe('issue:7').catch(() => {});
  assert.deepEqual(client.members('issue:7'), []);
  client.close();
});

test('a subscribe again with presence upgrades a plain subscription', async () => {
  const client = await opened();
  client.subscribe('issue:8');
  const ws = FakeSocket.last;
  ws.ackSubscribes();
  client.subscribe('issue:8', { presence: true });
  assert.deepEqual(ws.of('subscribe').map((m) => Boolean(m.presence)), [false, true]);
  client.close();
});

test('subscribe since a Realtime-Position resumes from it', async () => {
  const client = await opened();
  client.subscribe('issues', { since: 131 });
  assert.equal(FakeSocket.last.of('subscribe')[0].since, 131);
  client.close();
});

test('setActivity is sent, and sent again after a reconnect re-subscribes', async () => {
  const client = await opened();
  client.subscribe('issue:9', { presence: true });
  let ws = FakeSocket.last;
  ws.ackSubscribes();
  const ack = client.setActivity('issue:9', 'commenting');
  const sent = ws.of('presence')[0];
  assert.deepEqual({ channel: sent.channel, activity: sent.activity }, { channel: 'issue:9', activity: 'commenting' });
  ws.receive({ type: 'presence_ack', channel: 'issue:9', activity: 'commenting', ref: sent.ref });
  assert.equal((await ack).activity, 'commenting');
  const count = FakeSocket.instances.length;
  ws.onclose({ code: 1006, reason: '', wasClean: false });
  while (FakeSocket.instances.length === count) await new Promise((resolve) => setTimeout(resolve, 5));
  ws = FakeSocket.last;
  ws.hello();
  await flush();
  ws.ackSubscribes(3);
  await flush();
  assert.equal(ws.of('subscribe')[0].presence, true);
  assert.equal(ws.of('presence')[0].activity, 'commenting');
  client.close();
});

test('signal is fire and forget, dropped when not open, and onSignal filters by channel and event', async () => {
  const client = makeClient();
  assert.equal(client.signal('issue:1', 'typing'), false); // not open: dropped, never queued
  assert.throws(() => client.signal('issue:1', 'Typing!'), TypeError);
  const connected = client.connect();
  FakeSocket.last.hello();
  await connected;
  const ws = FakeSocket.last;
  assert.equal(client.signal('issue:1', 'typing', { field: 'comment' }), true);
  const [frame] = ws.of('signal');
  assert.deepEqual(frame, { type: 'signal', channel: 'issue:1', event: 'typing', data: { field: 'comment' } });
  const got = [];
  const off = client.onSignal('issue:1', 'typing', (m) => got.push(m.user_id));
  client.onSignal('issue:1', (m) => got.push('any:' + m.event));
  ws.receive({ type: 'signal', channel: 'issue:1', event: 'typing', user_id: '2', data: {} });
  ws.receive({ type: 'signal', channel: 'issue:2', event: 'typing', user_id: '3', data: {} });
  ws.receive({ type: 'signal', channel: 'issue:1', event: 'typing_stop', user_id: '2', data: {} });
  off();
  ws.receive({ type: 'signal', channel: 'issue:1', event: 'typing', user_id: '4', data: {} });
  assert.deepEqual(got, ['2', 'any:typing', 'any:typing_stop', 'any:typing']);
  client.close();
});

test('applyChannelPresence does not change the map it is given', () => {
  const before = applyChannelPresence(null, { type: 'channel_presence', channel: 'c', members: [member('1', 'a')] });
  const after = applyChannelPresence(before, { type: 'channel_presence_diff', channel: 'c', joins: [member('2', 'b')], leaves: [] });
  assert.equal(before.size, 1);
  assert.equal(after.size, 2);
});

test('parsePosition and loadWithPosition read the Realtime-Position header', async () => {
  assert.deepEqual(parsePosition('issues=131, issue:123=57'), { issues: 131, 'issue:123': 57 });
  assert.deepEqual(parsePosition(''), {});
  assert.deepEqual(parsePosition('bad,x=-1,y=z'), {});
  const client = makeClient();
  const calls = [];
  const fakeFetch = async (url, init) => {
    calls.push([url, init.headers.Authorization]);
    return { ok: true, json: async () => ({ id: '5' }), headers: { get: () => 'issue:5=9' } };
  };
  const { data, position } = await loadWithPosition(client, '/api/issues/5/', { fetch: fakeFetch });
  assert.deepEqual(data, { id: '5' });
  assert.deepEqual(position, { 'issue:5': 9 });
  assert.deepEqual(calls, [['http://test:8000/api/issues/5/', 'Bearer tok']]);
  const failing = async () => ({ ok: false, status: 404, headers: { get: () => null } });
  await assert.rejects(loadWithPosition(client, '/api/issues/6/', { fetch: failing }), (err) => err.status === 404);
});
