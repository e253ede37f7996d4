"""The feed's page size under a statement_timeout: halved on a time-out, doubled again after a
run of full pages; a size that timed out again right after it was grown into waits twice as
long before the next try, so a backlog does not pay a time-out (a page's work thrown away, a
WARNING) every few pages."""

from __future__ import annotations

from syncctl.controller import GROW_AFTER_PAGES, Feed


class _NoSource:
    def fetch_changes(self, after: str | None, limit: int) -> None:
        raise AssertionError("not fetched here")


def _full_pages_until_grown(feed: Feed) -> int:
    pages = 0
    size = feed.page_size
    while feed.page_size == size:
        feed._grow_page_size(feed.page_size)
        pages += 1
        assert pages < 10_000
    return pages


def test_a_size_that_fails_again_is_tried_half_as_often() -> None:
    feed = Feed(_NoSource(), page_size=4000)  # type: ignore[arg-type]
    feed._lower_page_size(300)
    feed._lower_page_size(300)
    assert feed.page_size == 1000  # fits
    assert _full_pages_until_grown(feed) == GROW_AFTER_PAGES
    assert feed.page_size == 2000
    feed._lower_page_size(300)  # 2000 still does not fit
    assert _full_pages_until_grown(feed) == 2 * GROW_AFTER_PAGES
    feed._lower_page_size(300)
    assert _full_pages_until_grown(feed) == 4 * GROW_AFTER_PAGES
    # 2000 fits now (the load went): a full page at it, and the next step is tried as soon
    # as at first
    feed._grow_page_size(2000)
    assert _full_pages_until_grown(feed) == GROW_AFTER_PAGES - 1
    assert feed.page_size == 4000


def test_the_size_never_passes_the_configured_one() -> None:
    feed = Feed(_NoSource(), page_size=3000)  # type: ignore[arg-type]
    feed._lower_page_size(300)
    _full_pages_until_grown(feed)
    assert feed.page_size == 3000
    for _ in range(100):
        feed._grow_page_size(3000)
    assert feed.page_size == 3000
