"""Entry module for `faust -A agents.worker worker`: imports every agent so Faust registers them."""
from __future__ import annotations

from agents import commands, pages, projection, status  # noqa: F401
from shared.processes import tune_gc
from streams.app import app

tune_gc()  # before the worker starts consuming: imported first by `faust -A agents.worker`

__all__ = ["app"]
