"""tritonX's JSON as syncctl reads it: a page is never refused as a whole for what one record
holds, so that record becomes a dead letter and the feed goes on (docs/tritonx-contract.md,
"What syncctl does with a record it cannot read").

Python's parser gives up on a whole body for one value: nesting deeper than its recursion
limit, an integer of more than 4300 digits, bytes that are not UTF-8; it takes NaN and
Infinity, which are not JSON and which jsonb refuses, and turns 1e400 into an infinity. Here
NaN, Infinity and a number beyond a float's range are kept as their text (a string), and when
the plain parse fails the body is read again: bytes that are not UTF-8 become lone surrogates
(the loader keeps such a record as text in sync.inbox.raw, each byte recoverable), an integer
too long for Python is kept as its text, and whatever lies deeper than MAX_DEPTH levels is kept
as its JSON text (a string). A field syncctl reads is then of the wrong type, and the record a
dead letter naming it; the text tritonX sent stays in the inbox."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

# deeper values are kept as their text on the second reading; a record of the contract is 4
# levels deep, and Python's own recursion (about 1000 frames) stays far off
MAX_DEPTH = 256
# longer integers are kept as their text: as many digits as Python converts (4300 by default,
# the first parse's limit too, so a record's integer is read the same way in both)
_MAX_INTEGER_DIGITS = sys.get_int_max_str_digits() or 4300
# a JSON string (escapes included), or a bracket outside one
_TOKENS = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*"|[\[\]{}]')


def _constant_as_text(name: str) -> str:
    return name  # NaN, Infinity, -Infinity


def _finite_or_text(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _integer_or_text(text: str) -> int | str:
    return int(text) if len(text.lstrip("-")) <= _MAX_INTEGER_DIGITS else text


def _shallow(text: str, limit: int) -> str:
    """`text` with every value nested deeper than `limit` replaced by a JSON string holding its
    text; unchanged when its brackets do not balance (the parse then says why)."""
    parts: list[str] = []
    depth, start, done = 0, -1, 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == limit + 1:
                start = match.start()
        else:
            if depth == limit + 1 and start >= 0:
                parts += [text[done:start], json.dumps(text[start : match.end()])]
                done, start = match.end(), -1
            depth -= 1
    if depth != 0 or start >= 0:
        return text
    parts.append(text[done:])
    return "".join(parts)


def storable(text: str) -> bool:
    """Whether PostgreSQL's text can hold `text`: no U+0000, no lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def loads(content: bytes) -> Any:
    """The JSON value of a body from tritonX; ValueError when it is not JSON at all."""
    try:
        return json.loads(content, parse_constant=_constant_as_text, parse_float=_finite_or_text)
    except (ValueError, RecursionError):
        pass
    text = content.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    return json.loads(
        _shallow(text, MAX_DEPTH),
        parse_constant=_constant_as_text,
        parse_float=_finite_or_text,
        parse_int=_integer_or_text,
    )
