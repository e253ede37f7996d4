"""Acting as one of the engine's roles in a test: `refused` says whether a statement was
denied (a missing privilege, or a trigger that refuses it, as the audit's does)."""

from __future__ import annotations

from typing import Any

import psycopg

DENIED = psycopg.errors.InsufficientPrivilege


def refused(c: psycopg.Connection[Any], statement: str, *params: Any) -> bool:
    try:
        c.execute(statement, list(params))
    except (DENIED, psycopg.errors.RaiseException):
        return True
    return False
