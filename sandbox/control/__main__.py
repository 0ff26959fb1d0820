"""``python -m sandbox.control run ...``: the ``run`` command without the full ``sandbox`` CLI."""

from __future__ import annotations

import argparse
import sys

from sandbox.config import SandboxError
from sandbox.control.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.control")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
