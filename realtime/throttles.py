"""The throttles of the publishing endpoints: DRF's scoped rates, counted in a state of fixed size.

DRF's ``SimpleRateThrottle`` keeps every request's timestamp of the last
``duration`` in the cache and reads, trims and writes that whole list on every
request: at 6,000/min a busy publisher's list is 6,000 floats pickled twice a
request (330 us of CPU, against 40 us for an empty one; bench/README.md, "Lean
publish path", fifth round). ``SlicedRateThrottle`` counts per slice of the
window instead, ``SLICES`` of them (for 6000/min: one count per 3 s), so its
state in the cache is at most ``SLICES + 1`` pairs whatever the rate:

- a request counts until its slice's *end* plus ``duration``, so at most
  ``num_requests`` are ever let through in any ``duration`` (a request counts
  up to one slice longer than DRF's exact log would count it, never shorter);
- ``wait()`` (the ``Retry-After`` of the 429) is the time until enough of the
  oldest slices have aged out for one more request.

The state lives in Django's cache as before (this process's memory, or Redis
shared by every server: ``dexter/cache.py``).

``PublishThrottle`` also has a working default rate: DRF's ``ScopedRateThrottle``
answers 500 (ImproperlyConfigured) when the project's ``DEFAULT_THROTTLE_RATES``
lacks the view's scope, so a project that installs ``realtime`` would have to
configure it first. It takes the project's ``realtime_publish`` rate when it
has one, else ``REALTIME_PUBLISH_THROTTLE`` (realtime/conf.py, default 600/min).
"""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from . import conf

SCOPE = "realtime_publish"
# 20 slices: a count is at most 5% of the window late to expire (3 s of a
# minute), and the state stays ~20 pairs (a few us to pickle).
SLICES = 20


class SlicedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` (the view's ``throttle_scope``, DRF's rates) with a bounded state."""

    # Not DRF's key: a list of timestamps left in a shared cache by DRF's class is not read as slices.
    cache_format = "throttle_sliced_%(scope)s_%(ident)s"

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.num_requests is None or self.duration is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = now = self.timer()
        width = self.duration / SLICES
        current = int(now // width)
        # Oldest first: [slice, count]; a slice counts while its end + duration is ahead.
        self.slices = [pair for pair in self.cache.get(self.key, ()) if pair[0] + 1 + SLICES > now / width]
        if sum(count for _, count in self.slices) >= self.num_requests:
            return False
        if self.slices and self.slices[-1][0] == current:
            self.slices[-1] = (current, self.slices[-1][1] + 1)
        else:
            self.slices.append((current, 1))
        self.cache.set(self.key, self.slices, self.duration)
        return True

    def wait(self) -> float | None:
        """Seconds until one more request is allowed (after a refusal)."""
        slices = getattr(self, "slices", None)
        if not slices or self.num_requests is None or self.duration is None:
            return None
        width = self.duration / SLICES
        excess = sum(count for _, count in slices) - self.num_requests + 1
        for index, count in slices:
            excess -= count
            if excess <= 0:
                return max(0.0, (index + 1 + SLICES) * width - self.now)
        return None  # unreachable: the counts sum to more than the excess


class PublishThrottle(SlicedRateThrottle):
    def get_rate(self) -> str | None:
        if self.scope == SCOPE and SCOPE not in self.THROTTLE_RATES:
            return conf.get("REALTIME_PUBLISH_THROTTLE")
        return super().get_rate()
