"""Backoff: exponential with full jitter, capped, never sooner than Retry-After."""

from __future__ import annotations

import random

from syncctl.controller import Backoff


def test_delays_grow_exponentially_within_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(3))
    delays = [backoff.delay() for _ in range(10)]
    ceilings = [min(8.0, 2.0**i) for i in range(10)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays[5:]) > 1.0, "jitter never left the first step: no growth"


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(base=0.01, cap=0.02, rng=random.Random(1))
    assert backoff.delay(retry_after=3.0) == 3.0


def test_reset_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=100.0, rng=random.Random(2))
    for _ in range(6):
        backoff.delay()
    backoff.reset()
    assert backoff.delay() <= 1.0
