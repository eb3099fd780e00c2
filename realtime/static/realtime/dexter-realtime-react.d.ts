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
export declare function acquireChannel(client: WebSocketClient, channel: string): Promise<SubscribedMessage>;
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

export interface IssueUpdatesOptions {
  onUpdate?: (message: IssueUpdateMessage) => void;
  queryClient?: QueryClientLike | null;
}
export interface IssueUpdates {
  isConnected: boolean;
  lastUpdate: IssueUpdateMessage | null;
  /** Invalidate ['issue', issueId] in the query client. */
  refreshIssue(): Promise<unknown>;
}
export declare function useRealtimeIssueUpdates(
  issueId: string | number | null | undefined,
  options?: IssueUpdatesOptions,
): IssueUpdates;

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
