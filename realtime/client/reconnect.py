"""What the client does after a close (docs/protocol.md section 5): reconnect, refresh, or stop,
and how long it waits before reconnecting. No I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Close codes of docs/protocol.md section 5, by what a client does after them.
RECONNECT_CODES = frozenset({1001, 1006, 1011, 4408, 4429, 4500, 4503})
FINAL_CODES = frozenset({1000, 1008, 4403, 4409, 4413})
CLOSE_TOKEN_INVALID = 4401

RECONNECT = "reconnect"
REFRESH_TOKEN = "refresh_token"
STOP = "stop"


def close_action(code: int) -> str:
    """What to do after the server closes with ``code`` (section 5).

    Codes the contract does not list (1005, 1012, ...) are most likely network or
    server trouble, so they reconnect; the attempt limit bounds the retries.
    """
    if code in FINAL_CODES:
        return STOP
    if code == CLOSE_TOKEN_INVALID:
        return REFRESH_TOKEN
    return RECONNECT


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect ``attempt`` (1-based): in [d/2, d], d = min(cap, base * 2**(attempt-1)).

    Half fixed, half random ("equal jitter"): clients dropped together spread out
    without any of them retrying at once.
    """
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 30))
    return ceiling / 2 + rand() * ceiling / 2
