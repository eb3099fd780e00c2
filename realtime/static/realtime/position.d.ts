import type { WebSocketClient } from './dexter-realtime';

/** `issues=131,issue:123=57` -> {issues: 131, 'issue:123': 57} (docs/protocol.md section 12). */
export declare function parsePosition(header: string | null | undefined): Record<string, number>;
/** The HTTP base of a client's server. */
export declare function httpBase(client: WebSocketClient): string;
/** GET `path` as the client's user: the JSON body and its Realtime-Position. */
export declare function loadWithPosition<T = any>(
  client: WebSocketClient,
  path: string,
  options?: { fetch?: typeof fetch },
): Promise<{ data: T; position: Record<string, number> }>;
