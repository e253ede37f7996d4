"""The grammar of identifiers, tritonX event ids and customer numbers, as sql/05_grammar.sql
states it (sync.is_identifier, sync.is_event_id, sync.is_customer_number): the one Python
statement of it. tests/migration/test_grammar.py checks that both sides agree."""

from __future__ import annotations

import re

# the characters of an identifier and an event id: ASCII letters, digits and . _ : -
_WORD = "A-Za-z0-9._:-"
IDENTIFIER_MAX = 64
EVENT_ID_MAX = 100
CUSTOMER_NUMBER_MAX = 32

_IDENTIFIER = re.compile(f"[{_WORD}]{{1,{IDENTIFIER_MAX}}}")
_EVENT_ID = re.compile(f"[{_WORD}]{{1,{EVENT_ID_MAX}}}")
_CUSTOMER_NUMBER = re.compile(f"[A-Za-z0-9]{{1,{CUSTOMER_NUMBER_MAX}}}")
_NOT_WORD = re.compile(f"[^{_WORD}]")


def is_identifier(value: object) -> bool:
    """An actor or reason code: 1 to 64 ASCII letters, digits and . _ : - (no @, no spaces)."""
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def is_event_id(value: object) -> bool:
    """A tritonX event id as the feed accepts one: 1 to 100 ASCII letters, digits and . _ : -."""
    return isinstance(value, str) and _EVENT_ID.fullmatch(value) is not None


def is_customer_number(value: object) -> bool:
    """A tritonX customer number as the feed accepts one: 1 to 32 ASCII letters and digits."""
    return isinstance(value, str) and _CUSTOMER_NUMBER.fullmatch(value) is not None


def identifier_from(prefix: str, text: str) -> str:
    """`prefix` + `text` made an identifier: every other character of `text` becomes `_`, and
    the result is cut to the identifier's length (so `anna@corp` cannot put an e-mail in the
    audit)."""
    return (prefix + _NOT_WORD.sub("_", text))[:IDENTIFIER_MAX]
