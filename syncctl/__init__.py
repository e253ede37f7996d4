"""syncctl: customer sync between a webshop's PostgreSQL and the tritonX customer master."""

from __future__ import annotations

__version__ = "0.1.0"
