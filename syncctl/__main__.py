"""`python -m syncctl` is the `syncctl` command."""

from __future__ import annotations

from syncctl.cli import main

main()
