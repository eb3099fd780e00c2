"""Outgoing frames assembled from already-encoded text: ``batch`` frames and ``history``
replies splice stored publications in without decoding them, under the frame cap.
"""

from __future__ import annotations

from .jsontext import encode, utf8_len
from .messages import with_ref

# The largest frame the server sends (section 5): the WebSocket layer's own cap
# (autobahn refuses to send more, PayloadExceededError), in bytes of payload.
MAX_FRAME_SIZE = 1 << 20


def batch_frame(texts: list[str]) -> str:
    """Join already-encoded publications into one ``batch`` frame without re-encoding."""
    return '{"type":"batch","messages":[' + ",".join(texts) + "]}"


_BATCH_OVERHEAD = len(batch_frame([]))


def batch_frames(texts: list[str], limit: int = MAX_FRAME_SIZE) -> list[str]:
    """``texts`` as few frames as fit under ``limit`` bytes each, in order: one
    ``batch`` per run that fits, a lone publication as itself (never a batch of one)."""
    out: list[str] = []
    run: list[str] = []
    size = _BATCH_OVERHEAD
    for text in texts:
        n = utf8_len(text) + 1  # and its comma
        if run and size + n > limit:
            out.append(run[0] if len(run) == 1 else batch_frame(run))
            run, size = [], _BATCH_OVERHEAD
        run.append(text)
        size += n
    if run:
        out.append(run[0] if len(run) == 1 else batch_frame(run))
    return out


def history_frame(channel: str, frames: list[str], recovered: bool, ref: str | None) -> str:
    """The ``history`` body of the HTTP API, splicing stored frames in without decoding them."""
    head = encode(with_ref({"type": "history", "channel": channel, "recovered": recovered}, ref))
    return head[:-1] + ',"messages":[' + ",".join(frames) + "]}"


def history_reply(
    channel: str, frames: list[str], recovered: bool, ref: str | None, limit: int = MAX_FRAME_SIZE
) -> tuple[str, int, bool]:
    """The ``history`` reply on the socket, splicing stored frames in without decoding them.

    Holds as many of ``frames`` (in order) as fit under ``limit`` bytes; returns
    (reply, how many it holds, whether one of them was too large for any
    reply and is left out). ``more`` is true when it stopped before the end.
    A stored frame too large even alone (a row from before
    REALTIME_MAX_PUBLICATION_SIZE) is skipped, and ``recovered`` is then false:
    the client cannot have that message and must reload its state.
    """

    def head(recovered: bool, more: bool) -> str:
        message = {"type": "history", "channel": channel, "recovered": recovered, "more": more}
        return encode(with_ref(message, ref))[:-1] + ',"messages":['

    room = limit - utf8_len(head(False, False)) - 2  # the closing "]}"
    kept: list[str] = []
    used = 0
    skipped = False
    taken = 0
    for text in frames:
        n = utf8_len(text) + (1 if kept else 0)
        if n - (1 if kept else 0) > room:
            skipped = True  # never fits: leave it out, but say so
            taken += 1
            continue
        if used + n > room:
            break
        kept.append(text)
        used += n
        taken += 1
    more = taken < len(frames)
    return head(recovered and not skipped, more) + ",".join(kept) + "]}", taken, skipped
