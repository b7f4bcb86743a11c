"""The token bucket that paces SubmitJob."""

from __future__ import annotations

from airflow_batch_executor.submit.rate_limit import RateLimiter


def test_rate_limiter_halves_on_throttle_and_recovers(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("airflow_batch_executor.submit.rate_limit.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(40)
    limiter.throttled()
    assert limiter.rate == 20
    limiter.throttled()
    assert limiter.rate == 10
    clock[0] += 100
    limiter.throttled()
    assert limiter.rate == 20


def test_rate_limiter_hands_out_tokens_at_the_rate(monkeypatch):
    import threading

    clock = [0.0]
    monkeypatch.setattr("airflow_batch_executor.submit.rate_limit.time.monotonic", lambda: clock[0])
    limiter = RateLimiter(10, burst=2)
    stop = threading.Event()
    assert limiter.acquire(stop) and limiter.acquire(stop)
    stop.set()
    assert limiter.acquire(stop) is False
    stop.clear()
    clock[0] += 0.1
    assert limiter.acquire(stop)
