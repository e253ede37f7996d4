"""The tritonX simulator: a deterministic Dutch customer population behind a real HTTP server
implementing the contract in docs/tritonx-contract.md, with admin commands and chaos."""

from __future__ import annotations
