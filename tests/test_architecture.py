"""The layering rules hold (import-linter, configured in pyproject.toml): no driver in the domain or the
application layer, a plain-Python domain, a web view that never imports the agents."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.stack import ROOT


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout and "3 kept" in done.stdout, done.stdout
