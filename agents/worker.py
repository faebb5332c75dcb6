"""Entry module for `faust -A agents.worker worker`: imports every agent so Faust registers them."""
from __future__ import annotations

from agents import commands, pages, projection, status  # noqa: F401
from streams.app import app

__all__ = ["app"]
