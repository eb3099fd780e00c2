"""Token buckets: the one rate limiter of realtime (connect attempts, socket messages).

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; each
``take(now)`` spends one, or refuses when less than one is left (so a
``burst`` under 1 refuses everything). Time is the
caller's (``time.monotonic()``), so a caller that already read the clock pays
for no second read, and a test needs no clock of its own.

    bucket = TokenBucket(rate=10, burst=20)   # 10 a second, bursts up to 20
    if not bucket.take(time.monotonic()):
        ...  # over the rate: drop, or close

``KeyedTokenBuckets`` is one bucket per key (a client address), forgetting the
keys whose bucket is full again once it holds more than ``max_keys``: a
forgotten key starts with a full bucket, which is what it had anyway.
"""

from __future__ import annotations

from collections.abc import Hashable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst``; starts full."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float | None = None) -> None:
        if rate < 0 or burst < 0:
            raise ValueError(f"a token bucket needs rate >= 0 and burst >= 0 (got rate={rate}, burst={burst})")
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = self.burst
        self.last = now  # None: the first take() starts the clock, with a full bucket

    def _refill(self, now: float) -> None:
        if self.last is not None and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def take(self, now: float) -> bool:
        """Spend one token at ``now``: True if there was one, False (nothing spent) if not."""
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        """Whether the bucket is back at ``burst`` by ``now`` (then forgetting it changes nothing)."""
        if self.last is None:
            return True
        return self.tokens + max(0.0, now - self.last) * self.rate >= self.burst


class KeyedTokenBuckets:
    """A ``TokenBucket(rate, burst)`` per key, made on the key's first ``take``."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10000) -> None:
        TokenBucket(rate, burst)  # the same check, at once rather than at the first key
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.buckets: dict[Hashable, TokenBucket] = {}

    def __len__(self) -> int:
        return len(self.buckets)

    def take(self, key: Hashable, now: float) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, now)
        allowed = bucket.take(now)
        if allowed and len(self.buckets) > self.max_keys:
            self.buckets = {k: b for k, b in self.buckets.items() if not b.full(now)}
        return allowed
