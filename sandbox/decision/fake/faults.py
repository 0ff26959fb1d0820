"""Seeded faults of the fake (``SANDBOX_MOCK_FAULTS``): which request gets which failure.

The spec and how shares pick a fault are in docs/offline-fake.md, "Faults";
:data:`FAULT_GROUPS` lists the groups, the server module what each kind does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from sandbox.config import SandboxError

__all__ = ["FAULT_GROUPS", "FAULT_KINDS", "FAULT_OPTIONS", "Faults", "uniform"]

FAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "request": ("auth", "bad_request"),
    "invalid": ("invalid_request",),
    "transient": ("rate_limit", "overloaded", "server_error", "timeout", "slow"),
    "answer": ("malformed", "out_of_range", "wrong_enum", "max_tokens", "refusal", "unsafe"),
    "batch": ("expired", "canceled"),
    "batch_create": ("batch_create_lost", "batch_create_timeout"),
    "batch_poll": ("batch_poll_error",),
    "batch_results": ("batch_results_error",),
}
FAULT_KINDS: tuple[str, ...] = tuple(k for kinds in FAULT_GROUPS.values() for k in kinds)
FAULT_OPTIONS: tuple[str, ...] = ("seed", "retry_after", "rpm", "slow_s")
_GROUP_OF = {kind: group for group, kinds in FAULT_GROUPS.items() for kind in kinds}


def uniform(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (the faults' seeded coin)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Faults:
    """Parsed ``SANDBOX_MOCK_FAULTS``: a share per fault kind, a seed and the options."""

    shares: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    retry_after_s: float = 0.01
    rpm: int | None = None
    slow_s: float | None = None

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Read ``kind=share,...`` (see the module docstring); a clear error on typos."""
        shares: dict[str, float] = {}
        options: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in (spec or "").split(","))):
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            try:
                number = float(value) if sep else float("nan")
            except ValueError:
                number = float("nan")
            if not math.isfinite(number):
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: {item!r} is not kind=number (e.g. rate_limit=0.2)"
                )
            if name in FAULT_OPTIONS:
                if number < 0 or (name == "rpm" and (number < 1 or number != int(number))):
                    raise SandboxError(
                        f"SANDBOX_MOCK_FAULTS: {name}={value.strip()} must be "
                        + (
                            "a whole number of requests, 1 or more"
                            if name == "rpm"
                            else "0 or more"
                        )
                    )
                options[name] = number
            elif name in _GROUP_OF:
                if not 0.0 <= number <= 1.0:
                    raise SandboxError(
                        f"SANDBOX_MOCK_FAULTS: {name}={value} must be between 0 and 1"
                    )
                shares[name] = number
            else:
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: unknown fault {name!r}; use one of "
                    f"{', '.join(FAULT_KINDS)} (or the options {'=, '.join(FAULT_OPTIONS)}=)"
                )
        for group, kinds in FAULT_GROUPS.items():
            total = sum(shares.get(k, 0.0) for k in kinds)
            if total > 1.0 + 1e-9:
                raise SandboxError(
                    f"SANDBOX_MOCK_FAULTS: the {group} faults ({', '.join(kinds)}) add up to "
                    f"{total:g}; their shares must add up to 1 or less"
                )
        return cls(
            shares=shares,
            seed=int(options.get("seed", 0)),
            retry_after_s=options.get("retry_after", 0.01),
            rpm=int(options["rpm"]) if "rpm" in options else None,
            slow_s=options.get("slow_s"),
        )

    def active(self, group: str) -> bool:
        """Whether any fault of ``group`` has a share (skip building keys when not)."""
        return any(self.shares.get(k) for k in FAULT_GROUPS[group])

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
