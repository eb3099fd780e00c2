"""Shared history reads (realtime/replay.py): one read for concurrent callers, each answered as by history()."""

import asyncio
import itertools
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from realtime import replay
from realtime.models import Message
from realtime.publisher import history, publish
from tests.realtime.helpers import DatabaseThreadQueries

pytestmark = pytest.mark.django_db(transaction=True)

SINCES = [-1, 0, 1, 4, 9, 10, 11, 17, 24, 25, 26, 2**62]
LIMITS = [1, 3, 7, 1000]


def publish_many(n: int, channel: str = "global") -> None:
    for i in range(n):
        publish(channel, {"type": "announcement", "message": f"m{i}"})


def test_a_shared_read_answers_each_caller_as_its_own_history_call(settings):
    settings.REALTIME_HISTORY_SIZE = 20  # seqs 1..5 are past the floor
    publish_many(25)
    # Two of the kept rows past the TTL: a hole in the middle of the window.
    Message.objects.filter(channel="global", seq__in=[12, 13]).update(created_at=timezone.now() - timedelta(days=2))
    wants = list(itertools.product(SINCES, LIMITS))
    assert replay.read_shared("global", wants) == [history("global", since, limit) for since, limit in wants]
    # Every subset, the hardest being one caller far behind and others up to date.
    for group in ([(0, 3), (2**62, 1000)], [(24, 1), (0, 1000)], [(25, 5), (26, 5)], [(9, 2), (17, 2)]):
        assert replay.read_shared("global", group) == [history("global", s, n) for s, n in group]


def test_a_channel_without_messages_is_answered_with_latest_zero():
    assert replay.read_shared("global", [(0, 10), (2**62, 1000)]) == [([], True, 0), ([], True, 0)]


async def test_concurrent_callers_of_one_channel_share_one_read():
    await database_sync_to_async(publish_many)(30)
    wants = [(since, 1000) for since in range(0, 30, 3)] * 10  # 100 callers, 10 distinct sinces
    async with DatabaseThreadQueries() as queries:
        answers = await asyncio.gather(*(replay.history("global", since, limit) for since, limit in wants))
    expected = [await database_sync_to_async(history)("global", s, n) for s, n in wants]
    assert answers == expected
    assert len(queries.on("realtime_message")) == 1
    assert len(queries.on("realtime_channelsequence")) == 1


async def test_callers_who_are_up_to_date_cost_no_message_query():
    await database_sync_to_async(publish_many)(5)
    async with DatabaseThreadQueries() as queries:
        answers = await asyncio.gather(*(replay.history("global", since, 1000) for since in (5, 6, 2**62)))
    assert answers == [([], True, 5)] * 3
    assert queries.on("realtime_message") == []


async def test_a_caller_after_the_read_started_gets_the_next_read():
    """Nothing committed before a caller asked is missing from its answer."""
    await database_sync_to_async(publish_many)(3)
    first = asyncio.ensure_future(replay.history("global", 0, 1000))
    await asyncio.wait_for(first, 5)
    await database_sync_to_async(publish_many)(2)
    rows, recovered, latest = await replay.history("global", 0, 1000)
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5] and recovered and latest == 5


async def test_channels_are_read_apart():
    await database_sync_to_async(publish_many)(2, "global")
    await database_sync_to_async(publish_many)(4, "presence")
    (g_rows, _, g_latest), (p_rows, _, p_latest) = await asyncio.gather(
        replay.history("global", 0, 1000), replay.history("presence", 1, 1000)
    )
    assert (g_latest, [s for s, _ in g_rows]) == (2, [1, 2])
    assert (p_latest, [s for s, _ in p_rows]) == (4, [2, 3, 4])


async def test_a_failed_read_fails_every_caller_and_the_next_read_works(settings):
    await database_sync_to_async(publish_many)(2)
    settings.REALTIME_HISTORY_SIZE = "not a number"  # int() raises inside the read
    results = await asyncio.gather(*(replay.history("global", 0, 10) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    settings.REALTIME_HISTORY_SIZE = 1000
    assert (await replay.history("global", 0, 10))[2] == 2
