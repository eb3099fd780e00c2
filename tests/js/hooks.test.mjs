// The React hooks (realtime/static/realtime/dexter-realtime-react.js) against a
// LIVE server, rendered with react-dom into jsdom; the sockets are jsdom's.
//
//     SERVER_URL=http://127.0.0.1:8000 TOKEN=<access token> node --test tests/js/hooks.test.mjs
//
// Run by tests/test_js_client.py, which starts the server and gets the token.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { after, before, test } from 'node:test';

register('./resolve-react.mjs', import.meta.url);

const SERVER_URL = (process.env.SERVER_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.TOKEN || '';
const skip = !SERVER_URL || !TOKEN ? 'set SERVER_URL and TOKEN (tests/test_js_client.py does)' : false;

let React;
let createRoot;
let hooks;
let dom;
let client;

async function api(method, path, body) {
  const response = await fetch(SERVER_URL + path, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

async function waitFor(check, what, timeout = 8000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Render `Component` and return {latest: () => last hook result, unmount}. */
function render(useHook) {
  let latest;
  const container = dom.window.document.createElement('div');
  dom.window.document.body.appendChild(container);
  function Probe() {
    latest = useHook();
    return null;
  }
  const root = createRoot(container);
  root.render(React.createElement(Probe));
  return {
    latest: () => latest,
    unmount: () => root.unmount(),
  };
}

before(async () => {
  if (skip) return;
  const { JSDOM } = await import('jsdom');
  // The page's origin is the server's, as for the dashboard, so the handshake's
  // Origin header passes the server's check.
  dom = new JSDOM('<!doctype html><html><body></body></html>', { url: SERVER_URL + '/' });
  globalThis.window = dom.window;
  globalThis.document = dom.window.document;
  Object.defineProperty(globalThis, 'navigator', { value: dom.window.navigator, configurable: true, writable: true });
  // Updates arrive from sockets, outside act(); the tests poll for their effect.
  globalThis.IS_REACT_ACT_ENVIRONMENT = false;
  React = await import('react');
  ({ createRoot } = await import('react-dom/client'));
  hooks = await import('../../realtime/static/realtime/dexter-realtime-react.js');
  client = hooks.configureRealtime({
    url: SERVER_URL,
    token: TOKEN,
    WebSocket: dom.window.WebSocket,
    window: dom.window,
    storage: null,
    sessionStorage: null,
    reconnectInterval: 200,
  });
});

after(() => {
  if (client) client.close();
  if (dom) dom.window.close();
});

test('test_use_realtime_updates_connects_and_subscribes_like_the_seed_example', { skip }, async () => {
  const { useEffect } = React;
  let effectRan = 0;
  const view = render(() => {
    const result = hooks.useRealtimeUpdates();
    const { subscribe, unsubscribe } = result;
    useEffect(() => {
      effectRan++;
      subscribe('issues');
      subscribe('alerts');
      return () => {
        unsubscribe('issues');
        unsubscribe('alerts');
      };
    }, []);
    return result;
  });
  await waitFor(() => view.latest()?.isConnected, 'isConnected');
  assert.equal(view.latest().client, client);
  assert.equal(client.user.username !== undefined, true);
  await waitFor(() => client.lastSeq('issues') !== undefined && client.lastSeq('alerts') !== undefined, 'subscribed');
  assert.deepEqual(client.channels.sort(), ['alerts', 'issues']);
  assert.equal(effectRan, 1);
  view.unmount();
  assert.deepEqual(client.channels, []);
});

test('test_use_realtime_issue_updates_calls_on_update_and_invalidates_the_query', { skip }, async () => {
  const issue = await api('POST', '/api/issues/', { title: 'TypeError in checkout (hooks test)', level: 'error' });
  const updates = [];
  const invalidated = [];
  const queryClient = { invalidateQueries: (filters) => invalidated.push(filters) };
  const view = render(() =>
    hooks.useRealtimeIssueUpdates(issue.id, { onUpdate: (msg) => updates.push(msg), queryClient }),
  );
  await waitFor(() => view.latest()?.isConnected && client.lastSeq(`issue:${issue.id}`) !== undefined, 'subscribed');
  await api('PATCH', `/api/issues/${issue.id}/`, { status: 'resolved' });
  await waitFor(() => updates.length >= 1, 'issue_update');
  assert.equal(updates[0].type, 'issue_update');
  assert.equal(updates[0].channel, `issue:${issue.id}`);
  assert.equal(updates[0].update_type, 'resolved');
  assert.equal(String(updates[0].issue_id), String(issue.id));
  await waitFor(() => view.latest().lastUpdate, 'lastUpdate');
  assert.equal(view.latest().lastUpdate.update_type, 'resolved');
  assert.deepEqual(invalidated, [{ queryKey: ['issue', issue.id] }]);
  await view.latest().refreshIssue();
  assert.equal(invalidated.length, 2);
  view.unmount();
  assert.ok(!client.channels.includes(`issue:${issue.id}`));
});

test('test_use_realtime_presence_lists_this_user_and_follows_set_presence', { skip }, async () => {
  await waitFor(() => client.user, 'connection');
  const me = String(client.user.id);
  const view = render(() => hooks.useRealtimePresence());
  await waitFor(() => view.latest()?.users.some((u) => u.user_id === me && u.status === 'online'), 'online in presence');
  await view.latest().setPresence('away', 'reviewing issues');
  await waitFor(
    () => view.latest().users.some((u) => u.user_id === me && u.status === 'away' && u.activity === 'reviewing issues'),
    'away in presence',
  );
  assert.equal(view.latest().error, null);
  await client.setPresence('online');
  view.unmount();
});

test('test_use_realtime_notifications_receives_an_assignment', { skip }, async () => {
  await waitFor(() => client.user, 'connection');
  const me = String(client.user.id);
  const seen = [];
  const view = render(() => hooks.useRealtimeNotifications({ onNotification: (m) => seen.push(m) }));
  await waitFor(() => client.lastSeq(`user:${me}`) !== undefined, `subscribed to user:${me}`);
  const issue = await api('POST', '/api/issues/', { title: 'Assigned in hooks test', level: 'warning' });
  await api('PATCH', `/api/issues/${issue.id}/`, { assignee: me });
  await waitFor(() => view.latest().notifications.length >= 1, 'notification');
  const [note] = view.latest().notifications;
  assert.equal(note.type, 'notification');
  assert.equal(note.kind, 'assigned');
  assert.equal(String(note.issue_id), String(issue.id));
  assert.equal(view.latest().unreadCount, 1);
  assert.equal(seen.length, 1);
  view.latest().markAllRead();
  await waitFor(() => view.latest().unreadCount === 0, 'markAllRead');
  view.unmount();
});

// --- sections 10-12: load then go live, channel presence, typing -------------

const BOB_TOKEN = process.env.BOB_TOKEN || '';

/** A second client, as bob (or this user's other tab without `token`). */
function otherClient(token = BOB_TOKEN, clientId = 'bob-tab') {
  return new hooks.WebSocketClient({
    url: SERVER_URL,
    token,
    clientId,
    WebSocket: dom.window.WebSocket,
    window: dom.window,
    storage: null,
    sessionStorage: null,
  });
}

test('test_use_realtime_issue_updates_loads_then_follows_from_the_position', { skip }, async () => {
  const issue = await api('POST', '/api/issues/', { title: 'Loaded then live (hooks test)', level: 'error' });
  const view = render(() => hooks.useRealtimeIssueUpdates(issue.id));
  await waitFor(() => view.latest()?.issue, 'the loaded issue');
  assert.equal(view.latest().issue.title, 'Loaded then live (hooks test)');
  assert.equal(view.latest().loading, false);
  await api('PATCH', `/api/issues/${issue.id}/`, { status: 'resolved' });
  await waitFor(() => view.latest().issue.status === 'resolved', 'the issue follows its updates');
  await api('PATCH', `/api/issues/${issue.id}/`, { title: 'Renamed' });
  await waitFor(() => view.latest().issue.title === 'Renamed', 'the title follows');
  view.unmount();
});

test('test_use_realtime_issues_loads_the_list_then_follows_it', { skip }, async () => {
  const view = render(() => hooks.useRealtimeIssues({ query: 'limit=200' }));
  await waitFor(() => view.latest() && !view.latest().loading, 'the loaded list');
  const issue = await api('POST', '/api/issues/', { title: 'Listed live (hooks test)', level: 'warning' });
  await waitFor(() => view.latest().issues.some((i) => String(i.id) === String(issue.id)), 'the created issue');
  await api('PATCH', `/api/issues/${issue.id}/`, { status: 'ignored' });
  await waitFor(
    () => view.latest().issues.find((i) => String(i.id) === String(issue.id))?.status === 'ignored',
    'its row follows',
  );
  view.unmount();
});

test('test_use_channel_presence_and_use_typing_see_bob_join_type_and_leave', { skip: skip || !BOB_TOKEN }, async () => {
  const issue = await api('POST', '/api/issues/', { title: 'Worked on together (hooks test)', level: 'error' });
  const channel = `issue:${issue.id}`;
  await waitFor(() => client.user, 'connection');
  const view = render(() => ({ presence: hooks.useChannelPresence(channel), typing: hooks.useTyping(channel) }));
  const usernames = () => (view.latest()?.presence.members ?? []).map((m) => `${m.username}:${m.activity}:${m.connections}`);
  await waitFor(() => usernames().length === 1, 'this user as a member');
  assert.deepEqual(usernames(), [`${client.user.username}:viewing:1`]);

  const bob = otherClient();
  await bob.connect();
  await bob.subscribe(channel, { presence: true });
  await waitFor(() => usernames().includes('bob:viewing:1'), 'bob joins');
  await bob.setActivity(channel, 'commenting');
  await waitFor(() => usernames().includes('bob:commenting:1'), "bob's activity");
  assert.equal(bob.signal(channel, 'typing', {}), true);
  await waitFor(() => view.latest().typing.typing.some((t) => t.username === 'bob'), 'bob is typing');
  bob.signal(channel, 'typing_stop', {});
  await waitFor(() => view.latest().typing.typing.length === 0, 'bob stopped typing');

  // This user types: bob gets the signal (never this socket itself).
  const got = [];
  bob.onSignal(channel, 'typing', (m) => got.push(m.user_id));
  view.latest().typing.notifyTyping();
  await waitFor(() => got.length === 1, 'bob sees this user typing');
  assert.equal(got[0], String(client.user.id));

  await view.latest().presence.setActivity('triaging');
  await waitFor(() => bob.members(channel).some((m) => m.activity === 'triaging'), 'bob sees the activity');
  await bob.unsubscribe(channel);
  await waitFor(() => !usernames().some((u) => u.startsWith('bob:')), 'bob leaves');
  bob.close();
  view.unmount();
});
