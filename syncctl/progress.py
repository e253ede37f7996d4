"""Progress of a job whose size is known: how many of how many are done, the rate and the
time left, as one line. The library reports (done, total) to a callback; the CLI prints
these lines on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

ProgressCallback = Callable[[int, int], None]


@dataclass
class Progress:
    """Formats progress lines for `what` ("adoptions", ...), at most one every `every`
    seconds, and always the first and the last. A report of 0 done restarts the clock."""

    what: str
    every: float = 1.0
    started: float = field(default_factory=time.monotonic)
    _shown_at: float | None = None

    def line(self, done: int, total: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = done / elapsed
        text = f"{self.what}: {done:,} of {total:,}"
        if total:
            text += f" ({100 * done / total:.1f}%)"
        text += f", {rate:,.1f}/s"
        if rate > 0 and done < total:
            text += f", ETA {(total - done) / rate:,.0f} s"
        return text

    def due(self, done: int, total: int) -> bool:
        now = time.monotonic()
        if self._shown_at is None or done >= total or now - self._shown_at >= self.every:
            self._shown_at = now
            return True
        return False

    def printer(self, echo: Callable[[str], None]) -> ProgressCallback:
        """A callback that echoes a line when one is due."""

        def report(done: int, total: int) -> None:
            if done == 0:  # the job starts now: its rate counts from here
                self.started = time.monotonic()
            if self.due(done, total):
                echo(self.line(done, total))

        return report
