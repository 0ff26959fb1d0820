"""Send everything a block of code prints (Python streams, logging, fds 1 and 2) to a file.

Files stay open for the process's life: loggers created inside the block keep a reference,
and a late line must land in the file, not on a closed stream.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_OPEN: dict[Path, TextIO] = {}


def log_file(path: Path, *, truncate: bool = False) -> TextIO:
    """The process-wide handle of ``path`` (append mode), optionally emptied first."""
    path = path.resolve()
    file = _OPEN.get(path)
    if file is None or file.closed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        file = _OPEN[path] = path.open("a", encoding="utf-8", errors="replace", buffering=1)
    if truncate:
        file.seek(0)
        file.truncate()
    return file


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [
        h
        for lg in loggers
        for h in lg.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


@contextlib.contextmanager
def _fds_to(file: TextIO) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``file`` (C code and child processes write there)."""
    saved = []
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved.append((fd, os.dup(fd)))
        for fd, _ in saved:
            os.dup2(file.fileno(), fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)


def _swap_stream(handler: logging.StreamHandler, stream: TextIO) -> TextIO | None:
    """``handler.setStream(stream)``, also when the handler's old stream is already closed.

    ``setStream`` flushes the old stream first, which raises ValueError on a closed file (a
    handler left behind by an earlier, finished capture); there is nothing to flush then.
    """
    try:
        return handler.setStream(stream)
    except ValueError:
        old, handler.stream = handler.stream, stream
        return old


@contextlib.contextmanager
def captured_output(path: Path, *, truncate: bool = False) -> Iterator[Path]:
    """Send all output of the ``with`` block to ``path`` instead of the terminal or cell."""
    file = log_file(path, truncate=truncate)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    previous = []
    for handler in _stream_handlers():
        with contextlib.suppress(AttributeError):  # logging's last-resort handler is read-only
            previous.append((handler, _swap_stream(handler, file)))
    try:
        with _fds_to(file), contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
            yield path
    finally:
        file.flush()
        for handler, stream in previous:
            if stream is not None and stream is not file:
                handler.setStream(stream)
