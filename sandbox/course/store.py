"""Keep the notebooks' stored outputs clean: no live-widget views, no colour codes.

A stored widget view needs the kernel that drew it, so :func:`clean` drops those outputs,
the widget state and timestamps: ``python -m sandbox.course.store notebooks/*.ipynb``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

__all__ = ["WIDGET_VIEW", "clean"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean(path: Path) -> int:
    """Clean one ``.ipynb`` in place; return how many outputs were dropped."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    dropped = 0
    for cell in nb.get("cells", []):
        kept = []
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                dropped += 1
                continue
            if output.get("output_type") == "stream":
                text = output["text"]
                joined = "".join(text) if isinstance(text, list) else text
                output["text"] = _ANSI.sub("", joined).splitlines(keepends=True)
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
        cell.get("metadata", {}).pop("execution", None)  # timestamps: the machine's clock
    nb.get("metadata", {}).pop("widgets", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return dropped


def main(argv: list[str]) -> int:
    """Clean every notebook named on the command line."""
    for name in argv:
        print(f"{name}: {clean(Path(name))} widget view(s) dropped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
