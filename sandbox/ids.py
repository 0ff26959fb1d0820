"""Random ids that must be unique, not secret: the engine's row and journal ids, the fake's.

One generator seeded once from ``os.urandom`` (``uuid4`` would release the GIL per id),
reseeded in a forked child so a child never repeats its parent's ids.
"""

from __future__ import annotations

import os
import random
import uuid

_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def random_hex(digits: int) -> str:
    """``digits`` random lowercase hex digits (an id's random part)."""
    return f"{_ids.getrandbits(4 * digits):0{digits}x}"


def new_id() -> str:
    """A random version-4 UUID as 32 hex digits, like ``uuid.uuid4().hex``."""
    return uuid.UUID(int=_ids.getrandbits(128), version=4).hex
