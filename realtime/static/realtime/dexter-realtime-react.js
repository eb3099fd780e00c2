/**
 * React hooks over the Dexter real-time client (dexter-realtime.js).
 *
 * `react` is a peer dependency: bundler users get theirs; a page without a build
 * step maps `react` with an import map. One client is shared by every hook: the
 * nearest <RealtimeProvider>, else the module-level client set up by
 * `configureRealtime(options)` (created on first use, and connected by the first
 * hook that mounts). The rule a caller must know: subscriptions made through the
 * hooks are reference-counted per client, so two components on `issues` share one
 * server subscription and the first to unmount does not cut off the other.
 */

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import { WebSocketClient } from './dexter-realtime.js';
import { loadWithPosition } from './position.js';

export { WebSocketClient };

let sharedClient = null;
let sharedOptions = {};
let sharedQueryClient = null;
const configListeners = new Set();
// Clients a hook already connected once: a client that gave up or was closed
// (4409, 4403, ...) is not silently reopened by the next component that mounts.
const autoStarted = new WeakSet();
const channelCounts = new WeakMap(); // client -> Map(channel -> number of holders)
const presenceStores = new WeakMap(); // client -> shared presence state

const RealtimeContext = createContext(null);

/**
 * Configure the module-level client used outside a <RealtimeProvider>: either
 * WebSocketClient options (plus an optional `queryClient` for cache invalidation)
 * or a ready WebSocketClient. Closes the previous shared client. Returns the client.
 */
export function configureRealtime(options = {}) {
  const previous = sharedClient;
  if (options instanceof WebSocketClient) {
    sharedClient = options;
    sharedOptions = {};
  } else {
    const { queryClient, ...clientOptions } = options;
    sharedQueryClient = queryClient || null;
    sharedOptions = clientOptions;
    sharedClient = null;
  }
  if (previous && previous !== sharedClient) previous.close();
  const client = getRealtimeClient();
  for (const listener of Array.from(configListeners)) listener(client);
  return client;
}

/** The module-level shared client, created from configureRealtime's options on first use. */
export function getRealtimeClient() {
  if (!sharedClient) sharedClient = new WebSocketClient(sharedOptions);
  return sharedClient;
}

/** Provide a client to the hooks below: `client`, or one built from `options` (closed on unmount). */
export function RealtimeProvider({ client, options, queryClient, children }) {
  const [own] = useState(() => (client ? null : new WebSocketClient(options || {})));
  const active = client || own;
  useEffect(() => {
    if (!own) {
      ensureConnected(active);
      return undefined;
    }
    own.connect();
    return () => own.close();
  }, [active, own]);
  const value = useMemo(() => ({ client: active, queryClient: queryClient || null }), [active, queryClient]);
  return createElement(RealtimeContext.Provider, { value }, children);
}

function useRealtimeContext() {
  const context = useContext(RealtimeContext);
  const [shared, setShared] = useState(() => (context ? null : getRealtimeClient()));
  useEffect(() => {
    if (context) return undefined;
    configListeners.add(setShared);
    setShared(getRealtimeClient());
    return () => configListeners.delete(setShared);
  }, [context]);
  if (context) return context;
  return { client: shared || getRealtimeClient(), queryClient: sharedQueryClient };
}

/** The client the hooks below use (provider's, else the shared one). */
export function useRealtimeClient() {
  return useRealtimeContext().client;
}

function ensureConnected(client) {
  if (client.state === 'closed' && !autoStarted.has(client)) {
    autoStarted.add(client);
    client.connect();
  }
}

/** Take a reference-counted hold on `channel`; the first holder subscribes. */
export function acquireChannel(client, channel, options) {
  let counts = channelCounts.get(client);
  if (!counts) channelCounts.set(client, (counts = new Map()));
  const n = (counts.get(channel) || 0) + 1;
  counts.set(channel, n);
  // The client's subscribe is idempotent: later holders get the same promise.
  return client.subscribe(channel, options);
}

/** Drop a hold taken by acquireChannel; the last holder unsubscribes. */
export function releaseChannel(client, channel) {
  const counts = channelCounts.get(client);
  const n = (counts && counts.get(channel)) || 0;
  if (n <= 1) {
    if (counts) counts.delete(channel);
    if (n === 1) client.unsubscribe(channel);
    return;
  }
  counts.set(channel, n - 1);
}

function useConnectionState(client) {
  const [state, setState] = useState(client.state);
  useEffect(() => {
    setState(client.state);
    return client.on('status', (next) => setState(next));
  }, [client]);
  return state;
}

function useCurrentUser(client) {
  const [user, setUser] = useState(client.user);
  useEffect(() => {
    setUser(client.user);
    return client.on('open', (msg) => setUser(msg.user || null));
  }, [client]);
  return user;
}

function useLatest(value) {
  const ref = useRef(value);
  ref.current = value;
  return ref;
}

/**
 * Connection state and subscriptions. Channels subscribed through this hook are
 * released when the component unmounts, even if it never called unsubscribe.
 */
export function useRealtimeUpdates() {
  const { client } = useRealtimeContext();
  const state = useConnectionState(client);
  const held = useRef(new Map()); // channel -> client it was acquired on

  useEffect(() => {
    ensureConnected(client);
  }, [client]);

  useEffect(
    () => () => {
      for (const [channel, c] of held.current) releaseChannel(c, channel);
      held.current.clear();
    },
    [],
  );

  const subscribe = useCallback(
    (channel) => {
      if (held.current.has(channel)) return client.subscribe(channel);
      held.current.set(channel, client);
      return acquireChannel(client, channel);
    },
    [client],
  );

  const unsubscribe = useCallback((channel) => {
    const c = held.current.get(channel);
    if (!c) return;
    held.current.delete(channel);
    releaseChannel(c, channel);
  }, []);

  return {
    isConnected: state === 'open',
    state,
    subscribe,
    unsubscribe,
    client,
    user: client.user,
    send: useCallback((message) => client.send(message), [client]),
    reconnect: useCallback(() => client.connect(), [client]),
  };
}

function invalidateIssue(queryClient, issueId) {
  if (!queryClient || typeof queryClient.invalidateQueries !== 'function') return Promise.resolve();
  // The filters-object form works with React Query 3, 4 and 5.
  return Promise.resolve(queryClient.invalidateQueries({ queryKey: ['issue', issueId] }));
}

// The fields of an issue_update's data that are the issue's own (docs/protocol.md section 4).
const ISSUE_FIELDS = ['title', 'culprit', 'level', 'status', 'assignee', 'event_count', 'last_seen'];

/** An issue (as the HTTP API gives it) after one `issue_update`. */
export function applyIssueUpdate(issue, msg) {
  if (!issue) return issue;
  if (msg.update_type === 'deleted') return { ...issue, deleted: true };
  const next = { ...issue };
  for (const field of ISSUE_FIELDS) if (msg.data && field in msg.data) next[field] = msg.data[field];
  return next;
}

/**
 * Load `path`, then hold `channel` from the load's Realtime-Position (section 12):
 * `apply(msg)` gets every change after the load, none before it. A `reset` (the
 * missed changes are gone) loads again. Returns the cleanup.
 */
function loadThenFollow(client, path, channel, { onData, onError, apply, types }) {
  let cancelled = false;
  let loadedAt = -1;
  let holding = false;
  const load = () =>
    loadWithPosition(client, path).then(
      ({ data, position }) => {
        if (cancelled) return;
        loadedAt = position[channel] ?? 0;
        onData(data);
        if (!holding) {
          holding = true;
          acquireChannel(client, channel, { since: loadedAt }).catch((err) => {
            if (!cancelled && err && err.code !== 'unsubscribed' && err.code !== 'closed') onError(err);
          });
        }
      },
      (err) => {
        if (!cancelled) onError(err);
      },
    );
  const offs = types.map((type) =>
    client.on(type, (msg) => {
      // A change the load already holds (the channel was held before the load) is skipped.
      if (!cancelled && msg.channel === channel && loadedAt >= 0 && msg.seq > loadedAt) apply(msg);
    }),
  );
  offs.push(
    client.on('reset', (event) => {
      if (!cancelled && event.channel === channel) load();
    }),
  );
  load();
  ensureConnected(client);
  return () => {
    cancelled = true;
    for (const off of offs) off();
    if (holding) releaseChannel(client, channel);
  };
}

/**
 * One issue, live: loads `/api/issues/<id>/`, then subscribes to `issue:<id>`
 * from its Realtime-Position, so no update made while loading is missed.
 * `issue` is kept up to date; `onUpdate` gets each `issue_update` (comments are
 * `commented` updates with `data.comment`), and the React Query key
 * ['issue', issueId] is invalidated. `{load: false}` only subscribes.
 */
export function useRealtimeIssueUpdates(issueId, { onUpdate, queryClient, load = true } = {}) {
  const context = useRealtimeContext();
  const { client } = context;
  const state = useConnectionState(client);
  const [lastUpdate, setLastUpdate] = useState(null);
  const [issue, setIssue] = useState(null);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(Boolean(load));
  const onUpdateRef = useLatest(onUpdate);
  const queryClientRef = useLatest(queryClient || context.queryClient);

  useEffect(() => {
    if (issueId === null || issueId === undefined || issueId === '') return undefined;
    const channel = `issue:${issueId}`;
    const apply = (msg) => {
      if (msg.type !== 'issue_update') return;
      setLastUpdate(msg);
      setIssue((current) => applyIssueUpdate(current, msg));
      if (onUpdateRef.current) onUpdateRef.current(msg);
      invalidateIssue(queryClientRef.current, issueId);
    };
    if (load) {
      setLoading(true);
      return loadThenFollow(client, `/api/issues/${encodeURIComponent(issueId)}/`, channel, {
        types: ['issue_update'],
        apply,
        onData: (data) => {
          setIssue(data);
          setError(null);
          setLoading(false);
        },
        onError: (err) => {
          setError(err);
          setLoading(false);
        },
      });
    }
    const offUpdate = client.on('issue_update', (msg) => {
      if (msg.channel === channel) apply(msg);
    });
    const offReset = client.on('reset', (event) => {
      if (event.channel === channel) invalidateIssue(queryClientRef.current, issueId);
    });
    acquireChannel(client, channel);
    ensureConnected(client);
    return () => {
      offUpdate();
      offReset();
      releaseChannel(client, channel);
    };
  }, [client, issueId, load, onUpdateRef, queryClientRef]);

  const refreshIssue = useCallback(() => invalidateIssue(queryClientRef.current, issueId), [issueId, queryClientRef]);

  return { isConnected: state === 'open', issue, loading, error, lastUpdate, refreshIssue };
}

/**
 * The issue list, live: loads `/api/issues/?<query>`, then subscribes to
 * `issues` from its Realtime-Position. Updates patch their row, `created`
 * adds one on top, `deleted` removes it.
 */
export function useRealtimeIssues({ query = '', onUpdate } = {}) {
  const { client } = useRealtimeContext();
  const state = useConnectionState(client);
  const [issues, setIssues] = useState([]);
  const [error, setError] = useState(null);
  const [loading, setLoading] = useState(true);
  const onUpdateRef = useLatest(onUpdate);

  useEffect(() => {
    setLoading(true);
    const path = '/api/issues/' + (query ? `?${query}` : '');
    return loadThenFollow(client, path, 'issues', {
      types: ['issue_update'],
      apply: (msg) => {
        const id = String(msg.issue_id);
        setIssues((list) => {
          if (msg.update_type === 'deleted') return list.filter((i) => String(i.id) !== id);
          if (!list.some((i) => String(i.id) === id)) {
            return msg.update_type === 'created' ? [applyIssueUpdate({ id }, msg), ...list] : list;
          }
          return list.map((i) => (String(i.id) === id ? applyIssueUpdate(i, msg) : i));
        });
        if (onUpdateRef.current) onUpdateRef.current(msg);
      },
      onData: (data) => {
        setIssues(Array.isArray(data) ? data : data.results || []);
        setError(null);
        setLoading(false);
      },
      onError: (err) => {
        setError(err);
        setLoading(false);
      },
    });
  }, [client, query, onUpdateRef]);

  return { isConnected: state === 'open', issues, loading, error };
}

/**
 * Who is on `channel` (section 10): subscribes with presence and keeps its
 * members ({user_id, username, activity, since, connections}). With
 * `activity`, sets this connection's activity there.
 */
export function useChannelPresence(channel, { activity } = {}) {
  const { client } = useRealtimeContext();
  const state = useConnectionState(client);
  const [members, setMembers] = useState(() => (channel ? client.members(channel) : []));
  const [error, setError] = useState(null);

  useEffect(() => {
    if (!channel) return undefined;
    setMembers(client.members(channel));
    const off = client.on('members', (name, list) => {
      if (name === channel) setMembers(list);
    });
    acquireChannel(client, channel, { presence: true }).then(
      () => setError(null),
      (err) => {
        if (err && err.code !== 'unsubscribed' && err.code !== 'closed') setError(err);
      },
    );
    ensureConnected(client);
    return () => {
      off();
      releaseChannel(client, channel);
    };
  }, [client, channel]);

  useEffect(() => {
    if (channel && activity !== undefined) client.setActivity(channel, activity).catch(() => {});
  }, [client, channel, activity]);

  const setActivity = useCallback((value) => client.setActivity(channel, value), [client, channel]);
  return { isConnected: state === 'open', members, setActivity, error };
}

/**
 * "bob is typing...": `typing` lists the other users typing on `channel`
 * ({user_id, username}); call `notifyTyping()` on each keystroke (sent at most
 * every timeout/2 ms) and `stopTyping()` when the text is sent or cleared. A
 * user counts as typing until `timeout` ms after their last signal.
 */
export function useTyping(channel, { timeout = 4000 } = {}) {
  const { client } = useRealtimeContext();
  const [typing, setTyping] = useState([]);
  const lastSent = useRef(0);

  useEffect(() => {
    if (!channel) return undefined;
    const timers = new Map(); // user_id -> timer
    const publish = () => {
      const members = new Map(client.members(channel).map((m) => [m.user_id, m.username]));
      setTyping(Array.from(timers.keys()).map((id) => ({ user_id: id, username: members.get(id) ?? null })));
    };
    const stop = (id) => {
      clearTimeout(timers.get(id));
      if (timers.delete(id)) publish();
    };
    const offs = [
      client.onSignal(channel, 'typing', (msg) => {
        const id = String(msg.user_id);
        if (client.user && String(client.user.id) === id) return; // this user's other tab
        clearTimeout(timers.get(id));
        timers.set(id, setTimeout(() => stop(id), timeout));
        publish();
      }),
      client.onSignal(channel, 'typing_stop', (msg) => stop(String(msg.user_id))),
      client.on('members', (name) => {
        if (name === channel && timers.size) publish();
      }),
    ];
    acquireChannel(client, channel).catch(() => {});
    ensureConnected(client);
    return () => {
      for (const off of offs) off();
      for (const timer of timers.values()) clearTimeout(timer);
      releaseChannel(client, channel);
    };
  }, [client, channel, timeout]);

  const notifyTyping = useCallback(() => {
    const now = Date.now();
    if (now - lastSent.current < timeout / 2) return false;
    lastSent.current = now;
    return client.signal(channel, 'typing', {});
  }, [client, channel, timeout]);
  const stopTyping = useCallback(() => {
    lastSent.current = 0;
    return client.signal(channel, 'typing_stop', {});
  }, [client, channel]);

  return { typing, notifyTyping, stopTyping };
}

function presenceStore(client) {
  let store = presenceStores.get(client);
  if (store) return store;
  store = { users: new Map(), listeners: new Set(), holders: 0, offs: [] };
  const changed = () => {
    for (const listener of Array.from(store.listeners)) listener();
  };
  store.start = () => {
    store.offs = [
      client.on('presence_state', (msg) => {
        store.users = new Map((msg.users || []).map((u) => [String(u.user_id), { ...u, user_id: String(u.user_id) }]));
        changed();
      }),
      client.on('presence_update', (msg) => {
        const users = new Map(store.users);
        const id = String(msg.user_id);
        if (msg.status === 'offline') users.delete(id);
        else users.set(id, { user_id: id, status: msg.status, activity: msg.activity ?? null, last_seen: msg.last_seen ?? null });
        store.users = users;
        changed();
      }),
    ];
  };
  store.stop = () => {
    for (const off of store.offs) off();
    store.offs = [];
    store.users = new Map();
  };
  presenceStores.set(client, store);
  return store;
}

/**
 * Who is online: subscribes to `presence` and keeps the users that are not
 * offline ({user_id, status, activity, last_seen}). With `status` (and
 * `activity`), also sets this user's own presence.
 */
export function useRealtimePresence({ status, activity } = {}) {
  const { client } = useRealtimeContext();
  const state = useConnectionState(client);
  const [users, setUsers] = useState(() => Array.from(presenceStore(client).users.values()));
  const [error, setError] = useState(null);

  useEffect(() => {
    const store = presenceStore(client);
    if (store.holders++ === 0) store.start();
    const listener = () => setUsers(Array.from(store.users.values()));
    store.listeners.add(listener);
    listener();
    acquireChannel(client, 'presence').then(
      () => setError(null),
      (err) => {
        if (err && err.code !== 'unsubscribed' && err.code !== 'closed') setError(err);
      },
    );
    ensureConnected(client);
    return () => {
      store.listeners.delete(listener);
      releaseChannel(client, 'presence');
      if (--store.holders === 0) store.stop();
    };
  }, [client]);

  useEffect(() => {
    if (status) client.setPresence(status, activity ?? null);
  }, [client, status, activity]);

  const setPresence = useCallback((s, a) => client.setPresence(s, a), [client]);
  return { isConnected: state === 'open', users, setPresence, error };
}

/**
 * Notifications for the signed-in user: subscribes to `user:<id>` once the
 * connection knows who that is, and keeps the newest `limit` of them.
 */
export function useRealtimeNotifications({ limit = 50, onNotification } = {}) {
  const { client } = useRealtimeContext();
  const state = useConnectionState(client);
  const user = useCurrentUser(client);
  const userId = user ? String(user.id) : null;
  const [notifications, setNotifications] = useState([]);
  const [unreadCount, setUnreadCount] = useState(0);
  const onNotificationRef = useLatest(onNotification);

  useEffect(() => {
    ensureConnected(client);
  }, [client]);

  useEffect(() => {
    if (!userId) return undefined;
    const channel = `user:${userId}`;
    const off = client.on('notification', (msg) => {
      if (msg.channel !== channel) return;
      setNotifications((list) => [msg, ...list].slice(0, limit));
      setUnreadCount((n) => n + 1);
      if (onNotificationRef.current) onNotificationRef.current(msg);
    });
    acquireChannel(client, channel);
    return () => {
      off();
      releaseChannel(client, channel);
    };
  }, [client, userId, limit, onNotificationRef]);

  const markAllRead = useCallback(() => setUnreadCount(0), []);
  const clear = useCallback(() => {
    setNotifications([]);
    setUnreadCount(0);
  }, []);

  return { isConnected: state === 'open', notifications, unreadCount, markAllRead, clear };
}
