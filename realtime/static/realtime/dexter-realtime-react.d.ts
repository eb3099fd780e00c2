/**
 * Type declarations for dexter-realtime-react.js: React hooks over the Dexter
 * real-time client. `react` is a peer dependency (16.8 or later).
 */
import type { ReactNode, ReactElement } from 'react';
import {
  WebSocketClient,
  WebSocketClientOptions,
  ConnectionState,
  IssueUpdateMessage,
  NotificationMessage,
  PresenceStatus,
  SubscribedMessage,
  SubscribeOptions,
  ChannelMember,
  User,
} from './dexter-realtime';

export { WebSocketClient };

/** The subset of a React Query QueryClient the hooks use. */
export interface QueryClientLike {
  invalidateQueries(filters: { queryKey: unknown[] }): unknown;
}

export interface RealtimeConfig extends WebSocketClientOptions {
  /** Used by useRealtimeIssueUpdates when the hook is not given one. */
  queryClient?: QueryClientLike | null;
}

/** Set up the module-level shared client (closing the previous one) and return it. */
export declare function configureRealtime(options?: RealtimeConfig | WebSocketClient): WebSocketClient;
export declare function getRealtimeClient(): WebSocketClient;
export declare function useRealtimeClient(): WebSocketClient;

export interface RealtimeProviderProps {
  /** A ready client; else one is built from `options`, connected on mount and closed on unmount. */
  client?: WebSocketClient;
  options?: WebSocketClientOptions;
  queryClient?: QueryClientLike | null;
  children?: ReactNode;
}
export declare function RealtimeProvider(props: RealtimeProviderProps): ReactElement;

/** Reference-counted subscribe/unsubscribe shared by all hooks on a client. */
export declare function acquireChannel(
  client: WebSocketClient,
  channel: string,
  options?: SubscribeOptions,
): Promise<SubscribedMessage>;
export declare function releaseChannel(client: WebSocketClient, channel: string): void;

export interface RealtimeUpdates {
  isConnected: boolean;
  state: ConnectionState;
  subscribe(channel: string): Promise<SubscribedMessage>;
  unsubscribe(channel: string): void;
  client: WebSocketClient;
  user: User | null;
  send<T = any>(message: { type: string; [field: string]: any }): Promise<T>;
  /** Connect again after the client gave up or was closed. */
  reconnect(): Promise<unknown>;
}
export declare function useRealtimeUpdates(): RealtimeUpdates;

/** An issue as GET /api/issues/<id>/ gives it (docs/protocol.md section 8). */
export interface Issue {
  id: string;
  title: string;
  culprit: string;
  level: 'debug' | 'info' | 'warning' | 'error' | 'fatal';
  status: 'unresolved' | 'resolved' | 'ignored';
  assignee: string | null;
  fingerprint: string;
  event_count: number;
  first_seen: string;
  last_seen: string;
  created_at: string;
  updated_at: string;
  /** Set once a `deleted` update arrived. */
  deleted?: boolean;
}

/** `issue` after one `issue_update` (its data fields applied). */
export declare function applyIssueUpdate<T extends Partial<Issue> | null>(issue: T, message: IssueUpdateMessage): T;

export interface IssueUpdatesOptions {
  onUpdate?: (message: IssueUpdateMessage) => void;
  queryClient?: QueryClientLike | null;
  /** Load /api/issues/<id>/ first and subscribe from its Realtime-Position (default true). */
  load?: boolean;
}
export interface IssueUpdates {
  isConnected: boolean;
  /** The loaded issue, kept up to date (null until loaded, or with `load: false`). */
  issue: Issue | null;
  loading: boolean;
  error: Error | null;
  lastUpdate: IssueUpdateMessage | null;
  /** Invalidate ['issue', issueId] in the query client. */
  refreshIssue(): Promise<unknown>;
}
export declare function useRealtimeIssueUpdates(
  issueId: string | number | null | undefined,
  options?: IssueUpdatesOptions,
): IssueUpdates;

export interface RealtimeIssues {
  isConnected: boolean;
  /** The loaded list (first page of /api/issues/?query), kept up to date. */
  issues: Issue[];
  loading: boolean;
  error: Error | null;
}
/** The issue list: loads /api/issues/?query, then subscribes to `issues` from its Realtime-Position. */
export declare function useRealtimeIssues(options?: {
  query?: string;
  onUpdate?: (message: IssueUpdateMessage) => void;
}): RealtimeIssues;

export interface ChannelPresence {
  isConnected: boolean;
  /** Members by username; a user with two tabs is one member with `connections: 2`. */
  members: ChannelMember[];
  setActivity(activity: string | null): Promise<unknown>;
  error: Error | null;
}
/** Who is on `channel` (subscribed with presence); `activity` sets this connection's activity there. */
export declare function useChannelPresence(
  channel: string | null | undefined,
  options?: { activity?: string | null },
): ChannelPresence;

export interface Typing {
  /** The other users typing on the channel (username when they are members of its presence). */
  typing: { user_id: string; username: string | null }[];
  /** Call on each keystroke: sends a `typing` signal at most every timeout/2 ms; false when not sent. */
  notifyTyping(): boolean;
  /** Sends `typing_stop` (the comment was sent or cleared). */
  stopTyping(): boolean;
}
/** "bob is typing...": typing signals on `channel`; a user types until `timeout` ms (default 4000) after their last. */
export declare function useTyping(channel: string | null | undefined, options?: { timeout?: number }): Typing;

export interface PresenceUser {
  user_id: string;
  status: PresenceStatus;
  activity: string | null;
  last_seen: string | null;
}
export interface RealtimePresence {
  isConnected: boolean;
  /** Users that are not offline. */
  users: PresenceUser[];
  setPresence(status: 'online' | 'away' | 'busy', activity?: string | null): Promise<unknown>;
  /** Set when subscribing to `presence` failed (e.g. `forbidden` for an anonymous connection). */
  error: Error | null;
}
export declare function useRealtimePresence(options?: {
  status?: 'online' | 'away' | 'busy';
  activity?: string | null;
}): RealtimePresence;

export interface RealtimeNotifications {
  isConnected: boolean;
  /** Newest first. */
  notifications: NotificationMessage[];
  unreadCount: number;
  markAllRead(): void;
  clear(): void;
}
export declare function useRealtimeNotifications(options?: {
  limit?: number;
  onNotification?: (message: NotificationMessage) => void;
}): RealtimeNotifications;
