import type { ChannelMember, ChannelPresenceDiffMessage, ChannelPresenceMessage } from './dexter-realtime';

/** The members map after a snapshot or a diff (leaves, then joins); `current` is not modified. */
export declare function applyChannelPresence(
  current: Map<string, ChannelMember> | null | undefined,
  message: ChannelPresenceMessage | ChannelPresenceDiffMessage,
): Map<string, ChannelMember>;
export declare function memberList(members: Map<string, ChannelMember> | null | undefined): ChannelMember[];
export declare function validSignalEvent(event: unknown): boolean;
