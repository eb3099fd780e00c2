"""SlicedRateThrottle (realtime/throttles.py): DRF's scoped rates, with a state of fixed size."""

import random
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from rest_framework.throttling import ScopedRateThrottle

from realtime.throttles import SLICES, SlicedRateThrottle

VIEW = SimpleNamespace(throttle_scope="test")
REQUEST = SimpleNamespace(user=SimpleNamespace(pk=7, is_authenticated=True), META={})


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"test": "10/min"})
    yield
    cache.clear()


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def throttle(self) -> SlicedRateThrottle:
        throttle = SlicedRateThrottle()
        throttle.timer = lambda: self.now
        return throttle


def test_the_rate_is_let_through_then_refused_with_the_wait_until_the_oldest_slice_ages_out():
    clock = Clock()
    assert all(clock.throttle().allow_request(REQUEST, VIEW) for _ in range(10))
    clock.now += 20
    refused = clock.throttle()
    assert not refused.allow_request(REQUEST, VIEW)
    # The first ten came 20 s ago: DRF's exact log says 40 s; a slice (3 s) later at most.
    assert 40 <= refused.wait() <= 40 + 60 / SLICES
    clock.now += refused.wait()
    assert clock.throttle().allow_request(REQUEST, VIEW)


def test_a_refused_request_is_not_counted():
    clock = Clock()
    for _ in range(10):
        clock.throttle().allow_request(REQUEST, VIEW)
    for _ in range(50):
        assert not clock.throttle().allow_request(REQUEST, VIEW)
    clock.now += 63
    assert sum(clock.throttle().allow_request(REQUEST, VIEW) for _ in range(11)) == 10


def test_never_more_than_the_rate_in_any_window():
    clock, rng, allowed = Clock(), random.Random(13), []
    for _ in range(5000):
        clock.now += rng.expovariate(1.0)  # about 60 attempts a minute against 10/min
        if clock.throttle().allow_request(REQUEST, VIEW):
            allowed.append(clock.now)
    assert all(later - allowed[i] >= 60 for i, later in enumerate(allowed[10:]))
    # And not much fewer than the rate: a count expires at most a slice late.
    assert len(allowed) >= 10 * (allowed[-1] - allowed[0]) / (60 + 60 / SLICES) - 10


def test_the_state_stays_bounded_whatever_the_rate(monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"test": "100000/min"})
    clock = Clock()
    for _ in range(20_000):
        clock.now += 0.01
        assert clock.throttle().allow_request(REQUEST, VIEW)
    throttle = clock.throttle()
    throttle.allow_request(REQUEST, VIEW)
    assert len(cache.get(throttle.key)) <= SLICES + 1


def test_no_scope_or_no_rate_lets_everything_through(monkeypatch):
    clock = Clock()
    assert clock.throttle().allow_request(REQUEST, SimpleNamespace())
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"test": None})
    assert all(clock.throttle().allow_request(REQUEST, VIEW) for _ in range(100))
