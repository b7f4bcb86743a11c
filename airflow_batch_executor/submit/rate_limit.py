"""Client-side token bucket for SubmitJob, which AWS limits to 50 calls per second per account.

When Batch throttles anyway (other users of the account share the budget), the rate halves and then
creeps back up, so the executor backs off as a group instead of every thread retrying at full speed.
"""

from __future__ import annotations

import threading
import time

RECOVERY_PER_SECOND = 0.1
MIN_RATE = 0.5


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.configured_rate = rate
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate / 4)
        self._tokens = self._capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        self._updated = now
        self._rate = min(
            self.configured_rate, self._rate + elapsed * RECOVERY_PER_SECOND * self.configured_rate
        )
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)

    def acquire(self, stop: threading.Event) -> bool:
        """Block until a call may be made; False when ``stop`` is set first."""
        while not stop.is_set():
            with self._lock:
                self._refill(time.monotonic())
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self._rate
            stop.wait(wait)
        return False

    def throttled(self) -> None:
        """Batch answered TooManyRequests: halve the rate and drop the burst allowance."""
        with self._lock:
            self._refill(time.monotonic())
            self._rate = max(MIN_RATE, self._rate / 2)
            self._tokens = 0
