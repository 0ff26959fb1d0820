"""Run a Python script or module (``peak.py script.py ...`` / ``peak.py -m module ...``) and,
when it exits, leave its own peak memory (``VmHWM``) where ``common.run_child`` reads it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402,F401  (registers the exit hook that writes the peak)

if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "-m":
        sys.argv = [sys.argv[2], *sys.argv[3:]]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
