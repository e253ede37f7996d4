"""The daemon's running total of its pulls: counts add up, the position and whether it is
caught up are those of the latest pull."""

from __future__ import annotations

from collections import Counter

from syncctl.controller import PullReport


def test_the_total_adds_counts_and_keeps_the_latest_position() -> None:
    total = PullReport()
    total.merge(PullReport(pages=2, events=7, states=Counter(applied=7), last_seq=7))
    total.merge(PullReport(pages=1, events=0, caught_up=True))
    assert (total.pages, total.events, total.states["applied"]) == (3, 7, 7)
    assert total.last_seq == 7 and total.caught_up
    total.merge(PullReport(pages=1, events=3, last_seq=10, caught_up=False))
    assert total.last_seq == 10 and not total.caught_up
