"""realtime/ratelimit.py: the token buckets, on a clock the test holds."""

from __future__ import annotations

import pytest

from realtime.ratelimit import KeyedTokenBuckets, TokenBucket


def takes(bucket: TokenBucket, now: float, n: int) -> list[bool]:
    return [bucket.take(now) for _ in range(n)]


def test_a_bucket_starts_full_and_allows_a_burst_then_refuses():
    bucket = TokenBucket(rate=10, burst=3)
    assert takes(bucket, 100.0, 4) == [True, True, True, False]


def test_it_refills_at_the_rate_and_never_past_the_burst():
    bucket = TokenBucket(rate=4, burst=3)
    takes(bucket, 0.0, 3)
    assert not bucket.take(0.125)  # half a token
    assert bucket.take(0.25)  # one token after 0.25 s at 4/s
    assert not bucket.take(0.25)
    assert takes(bucket, 1000.0, 4) == [True, True, True, False]  # a long pause refills to 3, not 9999


def test_a_refusal_spends_nothing():
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.take(0.0)
    assert [bucket.take(t) for t in (0.25, 0.5, 0.75)] == [False] * 3
    assert bucket.take(1.0)  # refused takes did not push the refill back


def test_a_rate_a_minute_is_a_rate_of_rate_over_60_a_second():
    bucket = TokenBucket(rate=60 / 60.0, burst=60)
    assert takes(bucket, 0.0, 61).count(True) == 60
    assert not bucket.take(0.5) and bucket.take(1.0)


def test_full_tells_when_forgetting_the_bucket_changes_nothing():
    bucket = TokenBucket(rate=2, burst=2)
    assert bucket.full(0.0)
    bucket.take(0.0)
    assert not bucket.full(0.4) and bucket.full(0.5)


def test_a_burst_under_one_refuses_everything():
    bucket = TokenBucket(rate=0.3, burst=0.6)
    assert [bucket.take(t) for t in (0.0, 10.0, 100.0)] == [False] * 3


@pytest.mark.parametrize("rate, burst", [(-1, 5), (1, -0.5)])
def test_nonsense_is_refused_at_once(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
    with pytest.raises(ValueError):
        KeyedTokenBuckets(rate, burst)


def test_keyed_buckets_are_one_per_key():
    buckets = KeyedTokenBuckets(rate=1, burst=2)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [True, True, False]
    assert buckets.take("b", 0.0)
    assert len(buckets) == 2


def test_past_max_keys_the_full_buckets_are_forgotten_and_the_others_kept():
    buckets = KeyedTokenBuckets(rate=1, burst=2, max_keys=3)
    for key in ("old1", "old2", "old3"):
        buckets.take(key, 0.0)
    buckets.take("busy", 9.0)
    buckets.take("busy", 9.0)  # empty at 9.0: must be kept
    buckets.take("new", 10.0)  # five keys > 3: the old ones are full again by 10.0
    assert sorted(buckets.buckets) == ["busy", "new"]
    assert buckets.take("busy", 10.0) and not buckets.take("busy", 10.0)  # its state survived
