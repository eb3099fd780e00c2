/**
 * Type declarations for dexter-realtime.js, the Dexter real-time client
 * (protocol version 1, docs/protocol.md in the repository).
 */

export declare const PROTOCOL_VERSION: 1;

export declare const CLOSE_CODES: {
  /** 1001, 1006, 1011, 4408, 4429, 4500, 4503: reconnect with backoff, resume with `since`. */
  readonly reconnect: readonly number[];
  /** 4401: get a fresh token (getToken) first, give up if there is none. */
  readonly tokenInvalid: 4401;
  /** 1000, 1008, 4403, 4409, 4413: stay closed. */
  readonly final: readonly number[];
};

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
export declare const STATES: readonly ConnectionState[];

/** Delay (ms) before reconnect attempt `attempt` (1-based): in [d/2, d], d = min(cap, base * 2^(attempt-1)). */
export declare function computeBackoff(attempt: number, base?: number, cap?: number, random?: () => number): number;
export declare function generateClientId(): string;
/** The `exp` claim of a JWT in ms since the epoch (payload decoded, not verified), or null. */
export declare function tokenExpiry(token: string | null | undefined): number | null;
/**
 * ms to wait before refreshing a token expiring at `expiresAt` (ms): 80% of the remaining
 * lifetime or 30 s before expiry, whichever is earlier, at least 1 s; null if there is
 * no expiry or it comes before then.
 */
export declare function tokenRefreshDelay(expiresAt: number | null, now?: number): number | null;

export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason?: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: any) => void) | null;
  onopen?: ((event: any) => void) | null;
}

export interface WebSocketClientOptions {
  /** Server base, as `ws://localhost:8000` (http(s) is turned into ws(s)); default: this page's host. */
  url?: string;
  /** Stable id of this tab/device; default: generated and kept per tab in sessionStorage. */
  clientId?: string;
  /** A SimpleJWT access token, sent as `?token=`. */
  token?: string | null;
  /**
   * Returns a current access token: used when no `token` is given, on every reconnect, for a fresh one after
   * close 4401, and shortly before the socket's token expires (its JWT `exp`), when the
   * client hands the fresh one to the server with an `auth` message and keeps it for
   * the next reconnect. A failure there is left to the 4401 path.
   */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Base of the jittered exponential backoff, ms. Default 5000. */
  reconnectInterval?: number;
  /** Cap of the backoff, ms. Default 60000. */
  maxReconnectDelay?: number;
  /** Reconnect attempts before giving up (state `closed`). Default 5. */
  maxReconnectAttempts?: number;
  /** Ping interval: default the server's `heartbeat_interval`; a number (ms) overrides it, `false` turns pings off. */
  heartbeat?: boolean | number;
  /** How long send()/history() wait for their reply, ms. Default 10000. */
  requestTimeout?: number;
  /** Connect with `?batch=1` (frames may arrive as `batch`; the client unwraps them). */
  batch?: boolean;
  /** Log frames with console.debug (tokens are never logged). */
  debug?: boolean;
  /** Where the last seq per channel is kept across reloads; default localStorage, `null` to keep nothing. */
  storage?: StorageLike | null;
  /** Where the generated client id is kept; default sessionStorage. */
  sessionStorage?: StorageLike | null;
  /** WebSocket constructor (tests inject a fake). Default globalThis.WebSocket. */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Target of `online`/`offline` events. Default globalThis.window; `null` to ignore them. */
  window?: { addEventListener(type: string, fn: () => void): void; removeEventListener(type: string, fn: () => void): void } | null;
  /** Random source for the backoff jitter (tests). Default Math.random. */
  random?: () => number;
  /**
   * Transports in order of preference (protocol section 13). Default `["websocket", "sse"]`:
   * after `sseAfterFailures` WebSockets in a row fail to open (or close before their first
   * frame) the client reads `GET /sse/` through an EventSource, with the same events, resume
   * and API (presence over `POST /api/realtime/presence/`, history over the HTTP API), and
   * tries a WebSocket again every `websocketRetryInterval` ms, moving back when one works.
   */
  transports?: Array<'websocket' | 'sse'>;
  /** WebSocket failures in a row before SSE. Default 2. */
  sseAfterFailures?: number;
  /** While on SSE, ms between background WebSocket tries. Default 30000. */
  websocketRetryInterval?: number;
  /** EventSource constructor (tests inject a fake). Default globalThis.EventSource. */
  EventSource?: new (url: string) => any;
  /** fetch for the SSE transport's HTTP calls. Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Target of `visibilitychange` (a page visible again reconnects at once). Default globalThis.document; `null` to ignore. */
  document?: { visibilityState?: string; addEventListener(type: string, fn: () => void): void; removeEventListener(type: string, fn: () => void): void } | null;
}

export type Transport = 'websocket' | 'sse';

export interface User {
  id: string;
  username: string;
}

export interface ConnectionMessage {
  type: 'connection';
  protocol: number;
  client_id: string;
  connection_id: string;
  authenticated: boolean;
  user: User | null;
  heartbeat_interval: number;
  server_time: string;
}

/** Envelope of every publication (section 4). */
export interface Publication {
  type: string;
  channel: string;
  seq: number;
  ts: string;
  [field: string]: any;
}

export interface IssueUpdateMessage extends Publication {
  type: 'issue_update';
  update_type: 'created' | 'updated' | 'status_changed' | 'resolved' | 'assigned' | 'commented' | 'deleted';
  issue_id: string;
  data: Record<string, any>;
}

export interface AlertTriggerMessage extends Publication {
  type: 'alert_trigger';
  alert_id: string;
  trigger_id: string;
  issue_id: string | null;
  data: Record<string, any>;
}

export type PresenceStatus = 'online' | 'away' | 'busy' | 'offline';

export interface PresenceUpdateMessage extends Publication {
  type: 'presence_update';
  user_id: string;
  status: PresenceStatus;
  activity: string | null;
  last_seen: string | null;
  timestamp: string;
}

export interface PresenceStateMessage {
  type: 'presence_state';
  channel: 'presence';
  users: Array<{ user_id: string; status: PresenceStatus; activity: string | null; last_seen: string | null }>;
}

export interface NotificationMessage extends Publication {
  type: 'notification';
  kind: string;
  issue_id?: string;
  data?: Record<string, any>;
}

export interface AnnouncementMessage extends Publication {
  type: 'announcement';
  message: string;
}

export interface SubscribedMessage {
  type: 'subscribed';
  channel: string;
  seq: number;
  recovered: boolean;
  ref?: string;
}

export interface HistoryMessage {
  type: 'history';
  channel: string;
  messages: Publication[];
  recovered: boolean;
  /** The server stopped early (each frame is at most 1 MiB): ask again with `since` = the last seq. */
  more: boolean;
  ref?: string;
}

/** One member of a channel's presence (section 10): a user, with their connection count there. */
export interface ChannelMember {
  user_id: string;
  username: string;
  /** `viewing` unless the user set another with setActivity. */
  activity: string;
  since: string;
  connections: number;
}

export interface ChannelPresenceMessage {
  type: 'channel_presence';
  channel: string;
  members: ChannelMember[];
}

/** A changed member is a leave of the old entry and a join of the new one. */
export interface ChannelPresenceDiffMessage {
  type: 'channel_presence_diff';
  channel: string;
  joins: ChannelMember[];
  leaves: ChannelMember[];
}

/** A passing event (section 11): never stored, no seq, never echoed to its sender. */
export interface SignalMessage<D = Record<string, any>> {
  type: 'signal';
  channel: string;
  event: string;
  user_id: string;
  data: D;
}

export interface SubscribeOptions {
  /** Join the channel's presence too (issue:<id>, alert:<id>, kinds registered with presence). */
  presence?: boolean;
  /** Resume from this seq: the `Realtime-Position` of an HTTP load (section 12). */
  since?: number;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  channel?: string;
  ref?: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
  /** False when the client stays closed (a final code, no fresh token, or attempts used up). */
  willReconnect: boolean;
  attempt?: number;
  /** ms until the next attempt. */
  delay?: number;
}

/**
 * The server could not replay what was missed: reload this channel's state from the HTTP API.
 * `interrupted`: the socket closed before the first `subscribed` reply, so there was no seq to resume from.
 */
export interface ResetEvent {
  channel: string;
  reason: 'not_recovered' | 'seq_rewound' | 'history_failed' | 'interrupted' | string;
  from: number | undefined;
  to: number;
}

export interface ClientEvents {
  open: ConnectionMessage;
  close: CloseInfo;
  reset: ResetEvent;
  message: { type: string; [field: string]: any };
  connection: ConnectionMessage;
  subscribed: SubscribedMessage;
  unsubscribed: { type: 'unsubscribed'; channel: string; ref?: string };
  issue_update: IssueUpdateMessage;
  alert_trigger: AlertTriggerMessage;
  presence_update: PresenceUpdateMessage;
  presence_state: PresenceStateMessage;
  presence_ack: { type: 'presence_ack'; status?: PresenceStatus; channel?: string; activity?: string | null; ref?: string };
  channel_presence: ChannelPresenceMessage;
  channel_presence_diff: ChannelPresenceDiffMessage;
  signal: SignalMessage;
  notification: NotificationMessage;
  announcement: AnnouncementMessage;
  history: HistoryMessage;
  pong: { type: 'pong'; timestamp: any; server_time: string; ref?: string };
  authenticated: { type: 'authenticated'; user: User; ref?: string };
  error: ErrorMessage;
}

/** A protocol `error` reply, or a client-side failure (`closed`, `disconnected`, `timeout`, `queue_full`). */
export declare class RealtimeError extends Error {
  code: string;
  channel?: string;
  frame: ErrorMessage | null;
}

export declare class WebSocketClient {
  constructor(options?: WebSocketClientOptions);
  readonly url: string;
  readonly clientId: string;
  readonly state: ConnectionState;
  readonly isConnected: boolean;
  readonly user: User | null;
  readonly channels: string[];
  /** The transport in use. */
  readonly transport: Transport;
  /** The state and the transport, as a connection indicator shows them. */
  readonly status: { state: ConnectionState; transport: Transport };
  readonly transports: Transport[];
  /** The last `connection` message. */
  readonly connection: ConnectionMessage | null;
  reconnectInterval: number;
  maxReconnectAttempts: number;
  debug: boolean;

  /** Resolves with the `connection` message once open; rejects if the client closes first. */
  connect(): Promise<ConnectionMessage>;
  /** Close for good (default code 1000). */
  close(code?: number, reason?: string): void;
  /** Resolves with the first `subscribed` reply; kept and resumed with `since` across reconnects. */
  subscribe(channel: string, options?: SubscribeOptions): Promise<SubscribedMessage>;
  /** Members of a channel subscribed with `{presence: true}`, by username; kept up to date. */
  members(channel: string): ChannelMember[];
  /** This connection's activity on a channel held with presence; null: `viewing`. Re-set after reconnects. */
  setActivity(channel: string, activity: string | null): Promise<ClientEvents['presence_ack']>;
  /** Send a signal to the channel's other subscribers; false when not open (dropped, never queued). */
  signal(channel: string, event: string, data?: Record<string, any>): boolean;
  /** Signals on `channel` (of `event` only, when given); returns the remover. */
  onSignal(channel: string, handler: (msg: SignalMessage) => void): () => void;
  onSignal(channel: string, event: string, handler: (msg: SignalMessage) => void): () => void;
  unsubscribe(channel: string): Promise<{ type: 'unsubscribed'; channel: string }>;
  setPresence(status: 'online' | 'away' | 'busy', activity?: string | null): Promise<ClientEvents['presence_ack']>;
  /** Send a client message; resolves with the reply carrying the same `ref`, rejects with RealtimeError on `error`. */
  send<T = any>(message: { type: string; ref?: string; [field: string]: any }): Promise<T>;
  history(channel: string, since?: number, limit?: number): Promise<HistoryMessage>;
  ping(): Promise<ClientEvents['pong']>;
  /** The access token this client uses (asked of `getToken` when it has none yet). */
  currentToken(): Promise<string | null>;
  /** Last seq delivered on `channel`. */
  lastSeq(channel: string): number | undefined;

  on(type: 'status', handler: (state: ConnectionState, previous: ConnectionState, transport: Transport) => void): () => void;
  on(type: 'transport', handler: (transport: Transport) => void): () => void;
  /** A channel's members changed (snapshot or diff); [] after unsubscribe. */
  on(type: 'members', handler: (channel: string, members: ChannelMember[]) => void): () => void;
  on<K extends keyof ClientEvents>(type: K, handler: (event: ClientEvents[K]) => void): () => void;
  on(type: string, handler: (message: any) => void): () => void;
  off(type: string, handler: (...args: any[]) => void): void;
}

export default WebSocketClient;
