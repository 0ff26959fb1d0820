"""Seeded faults of the fake (``SANDBOX_MOCK_FAULTS``): which request gets which failure."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from sandbox.config import SandboxError

__all__ = ["FAULT_GROUPS", "FAULT_KINDS", "Faults", "uniform"]

FAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "request": ("auth", "bad_request"),
    "transient": ("rate_limit", "overloaded", "server_error", "timeout"),
    "answer": ("malformed", "out_of_range", "wrong_enum", "max_tokens", "refusal"),
    "batch": ("expired", "canceled"),
}
FAULT_KINDS: tuple[str, ...] = tuple(k for kinds in FAULT_GROUPS.values() for k in kinds)
_GROUP_OF = {kind: group for group, kinds in FAULT_GROUPS.items() for kind in kinds}


def uniform(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (the faults' seeded coin)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Faults:
    """Parsed ``SANDBOX_MOCK_FAULTS``: a share per fault kind, a seed and the retry-after."""

    shares: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 0.01

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Read ``kind=share,...`` (see the module docstring); a clear error on typos."""
        shares: dict[str, float] = {}
        seed, retry_after = 0, 0.01
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            try:
                number = float(value) if sep else float("nan")
            except ValueError:
                number = float("nan")
            if math.isnan(number):
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: {item!r} is not kind=number (e.g. rate_limit=0.2)"
                )
            if name == "seed":
                seed = int(number)
            elif name == "retry_after":
                retry_after = max(0.0, number)
            elif name in _GROUP_OF:
                if not 0.0 <= number <= 1.0:
                    raise SandboxError(
                        f"SANDBOX_MOCK_FAULTS: {name}={value} must be between 0 and 1"
                    )
                shares[name] = number
            else:
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: unknown fault {name!r}; use one of "
                    f"{', '.join(FAULT_KINDS)} (or seed=, retry_after=)"
                )
        for group, kinds in FAULT_GROUPS.items():
            total = sum(shares.get(k, 0.0) for k in kinds)
            if total > 1.0 + 1e-9:
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: the {group} faults ({', '.join(kinds)}) add up to "
                    f"{total:g}; their shares must add up to 1 or less"
                )
        return cls(shares=shares, seed=seed, retry_after_s=retry_after)

    def pick(self, group: str, *key: object) -> str | None:
        """The fault of ``group`` that hits ``key`` (``None`` for no fault)."""
        kinds = [k for k in FAULT_GROUPS[group] if self.shares.get(k)]
        if not kinds:
            return None
        u = uniform(self.seed, group, *key)
        edge = 0.0
        for kind in kinds:
            edge += self.shares[kind]
            if u < edge:
                return kind
        return None
