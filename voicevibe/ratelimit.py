"""Reports that would repeat (a dead OSC target, a misbehaving sender) reach the operator at most
once per key every few seconds, and say how many were held back in between."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

MAX_KEYS = 1024  # spoofed senders must not grow the table without bound


class RateLimiter:
    """At most one report per key every `seconds`; occurrences in between are counted."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._keys: dict[Hashable, tuple[float, int]] = {}  # key -> (last report, held back since)

    def hold(self, key: Hashable) -> None:
        """Count an occurrence that is never reported by itself."""
        last, held = self._keys.get(key, (float("-inf"), 0))
        self._keys[key] = (last, held + 1)

    def allow(self, key: Hashable) -> int | None:
        """None when this occurrence is held back (and counted); else how many were held back before it."""
        now = self.clock()
        last, held = self._keys.get(key, (float("-inf"), 0))
        if now - last < self.seconds:
            self._keys[key] = (last, held + 1)
            return None
        if len(self._keys) >= MAX_KEYS and key not in self._keys:
            self._keys.clear()
        self._keys[key] = (now, 0)
        return held
