"""Results and the printed table: each row is one figure next to the baseline it is judged
against, with the ratio and whether the goal was met. Goals are reported, never asserted."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Direction(Enum):
    AT_LEAST = ">="
    AT_MOST = "<="


@dataclass(frozen=True)
class Goal:
    """ratio (or value, when absolute) must be >= or <= limit."""

    direction: Direction
    limit: float
    absolute: bool = False  # compare the value itself, not the ratio
    unit: str = "x"

    def met(self, number: float) -> bool:
        if self.direction is Direction.AT_LEAST:
            return number >= self.limit
        return number <= self.limit

    def __str__(self) -> str:
        if self.absolute:
            return f"{self.direction.value} {_number(self.limit)} {self.unit}"
        return f"{self.direction.value} {self.limit:g}x"


@dataclass(frozen=True)
class Row:
    scenario: str
    size: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    goal: Goal | None = None
    note: str = ""
    shop: str = ""  # the test schema the figure was taken on (bench.shops)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        number = self.value if self.goal.absolute else self.ratio
        return None if number is None else self.goal.met(number)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(rows: list[Row]) -> str:
    """A Markdown table, so the output can be pasted into docs/performance.md; with a schema
    column when any row names its test schema."""
    with_shop = any(row.shop for row in rows)
    header = ["scenario", *(["schema"] if with_shop else []), "size"]
    header += ["result", "baseline", "ratio", "goal", "met"]
    lines = [header]
    for row in rows:
        baseline = (
            f"{_number(row.baseline)} {row.unit} ({row.baseline_name})"
            if row.baseline is not None
            else row.baseline_name
        )
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        met = {True: "yes", False: "NO", None: ""}[row.met]
        result = f"{_number(row.value)} {row.unit}" + (f" ({row.note})" if row.note else "")
        lines.append(
            [
                row.scenario,
                *([row.shop] if with_shop else []),
                row.size,
                result,
                baseline,
                ratio,
                str(row.goal) if row.goal else "",
                met,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append(
            "| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |"
        )
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def size_label(size: int) -> str:
    if size >= 1_000_000 and size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}k"
    return str(size)


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(text[:-1] if factor > 1 else text) * factor
