"""Bounded frames (section 5): the publication bound, and the history and batch splits."""

from __future__ import annotations

import json

import pytest

from realtime import protocol
from realtime.models import ChannelSequence, Message
from realtime.publisher import latest_seq, publish


@pytest.mark.django_db
def test_a_publication_over_the_bound_is_refused_before_anything_is_stored(settings):
    import realtime

    settings.REALTIME_MAX_PUBLICATION_SIZE = 4096
    publish("global", {"type": "announcement", "message": "small"})
    with pytest.raises(realtime.PublicationTooLarge) as refused:
        publish("global", {"type": "announcement", "message": "é" * 2100})  # 4200 bytes in UTF-8
    assert isinstance(refused.value, ValueError)
    assert "REALTIME_MAX_PUBLICATION_SIZE (4096)" in str(refused.value) and refused.value.size > 4096
    assert latest_seq("global") == 1 and Message.objects.count() == 1  # no seq used, nothing stored
    assert publish("global", {"type": "announcement", "message": "next"})["seq"] == 2


@pytest.mark.django_db
def test_a_publication_holding_nan_is_refused_before_anything_is_stored():
    with pytest.raises(ValueError):
        publish("global", {"type": "announcement", "value": float("nan")})
    assert not ChannelSequence.objects.filter(channel="global", last_seq__gt=0).exists()
    assert Message.objects.count() == 0


def texts(count: int, size: int) -> list[str]:
    return [protocol.encode({"type": "announcement", "seq": i, "message": "x" * size}) for i in range(1, count + 1)]


def test_history_reply_stops_under_the_cap_and_says_more():
    frames = texts(1000, 1200)
    reply, taken, skipped = protocol.history_reply("global", frames, True, "r1")
    assert len(reply.encode()) <= protocol.MAX_FRAME_SIZE
    body = json.loads(reply)
    assert body["more"] is True and body["recovered"] is True and body["ref"] == "r1"
    assert 0 < taken < 1000 and len(body["messages"]) == taken and not skipped
    rest, taken2, _ = protocol.history_reply("global", frames[taken:], True, None)
    assert json.loads(rest)["more"] is False and taken + taken2 == 1000


def test_history_reply_that_fits_says_no_more():
    body = json.loads(protocol.history_reply("global", texts(3, 10), True, None)[0])
    assert body["more"] is False and [m["seq"] for m in body["messages"]] == [1, 2, 3]


def test_history_reply_skips_a_row_too_large_for_any_frame_and_says_not_recovered():
    frames = texts(1, 10) + [protocol.encode({"type": "announcement", "seq": 2, "m": "y" * (1 << 20)})] + texts(1, 10)
    body = json.loads(protocol.history_reply("global", frames, True, None)[0])
    assert [m["seq"] for m in body["messages"]] == [1, 1] and body["recovered"] is False and body["more"] is False


def test_batch_frames_split_under_the_cap_in_order():
    frames = texts(400, 3000)
    out = protocol.batch_frames(frames)
    assert len(out) > 1 and all(len(f.encode()) <= protocol.MAX_FRAME_SIZE for f in out)
    seqs = [m["seq"] for f in out for m in json.loads(f)["messages"]]
    assert seqs == list(range(1, 401))
    assert protocol.batch_frames(frames[:1]) == frames[:1]  # a lone publication goes as itself
