"""Model ids, list prices (``models.json``), token counts and the cost arithmetic behind
estimates and the budget; no prompt-cache discount is assumed.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sandbox.config import SandboxError

MODELS_FILE = Path(__file__).with_name("models.json")


@dataclass(frozen=True)
class ModelPrice:
    """One model's id and list prices (USD per million tokens)."""

    id: str
    label: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    structured_outputs: bool = True
    min_cacheable_prompt_tokens: int = 1024
    aliases: tuple[str, ...] = ()
    max_tokens: int = 300  # room for the answer, and any thinking
    request: dict = field(default_factory=dict, hash=False)  # extra parameters, e.g. thinking
    status: str = "active"  # or legacy: still served, with a newer model to move to

    def cost(self, input_tokens: int, output_tokens: int, *, discount: float = 1.0) -> float:
        """USD for one request's tokens, times ``discount`` (0.5 for the Batches API)."""
        usd = input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        return usd / 1_000_000 * discount


@dataclass(frozen=True)
class PriceBook:
    """The contents of ``models.json``: default tiers, batch discount and prices."""

    primary: str
    escalation: str
    batch_discount: float
    models: dict[str, ModelPrice]

    def get(self, name: str) -> ModelPrice:
        """The model with this id or alias; a clear error when the file does not list it."""
        for model in self.models.values():
            if name == model.id or name in model.aliases:
                return model
        known = ", ".join(sorted(self.models))
        raise SandboxError(
            f"model {name!r} has no price in {MODELS_FILE.name} (known: {known}): add it to "
            f"{MODELS_FILE} with its input/output price per million tokens, or pick a known one"
        )


@lru_cache(maxsize=4)
def load_price_book(path: Path = MODELS_FILE) -> PriceBook:
    """Read ``models.json`` (or ``path``) into a :class:`PriceBook`."""
    try:
        raw = json.loads(Path(path).read_text())
        models = {
            model_id: ModelPrice(
                id=model_id,
                label=spec.get("label", model_id),
                input_usd_per_mtok=float(spec["input_usd_per_mtok"]),
                output_usd_per_mtok=float(spec["output_usd_per_mtok"]),
                structured_outputs=bool(spec.get("structured_outputs", False)),
                min_cacheable_prompt_tokens=int(spec.get("min_cacheable_prompt_tokens", 1024)),
                aliases=tuple(spec.get("aliases", ())),
                max_tokens=int(spec.get("max_tokens", 300)),
                request=spec.get("request") or {},
                status=str(spec.get("status", "active")),
            )
            for model_id, spec in raw["models"].items()
        }
        book = PriceBook(raw["primary"], raw["escalation"], float(raw["batch_discount"]), models)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SandboxError(
            f"cannot read the price file {path} ({type(exc).__name__}: {exc}): restore it from git "
            "or fix the JSON (each model needs input_usd_per_mtok and output_usd_per_mtok)"
        ) from None
    book.get(book.primary)
    book.get(book.escalation)
    return book


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class TokenCount:
    """A request's input tokens: the shared prefix plus the summary at a per-character rate
    (``counted`` by the count endpoint, else the characters / 4 guess, low for newer tokenizers)."""

    prefix_tokens: int
    tokens_per_char: float = 0.25
    counted: bool = False

    def tokens(self, summary: str) -> int:
        """Input tokens of one request whose summary is ``summary``."""
        return self.prefix_tokens + math.ceil(len(summary) * self.tokens_per_char - 1e-9)


def cache_note(model: ModelPrice, prefix_tokens: int) -> str:
    """Why the estimate assumes no prompt-cache discount (or that it could apply)."""
    minimum = model.min_cacheable_prompt_tokens
    if prefix_tokens < minimum:
        return (
            f"no prompt-cache discount: the shared prefix is ~{prefix_tokens:,} tokens, below the "
            f"{minimum:,}-token minimum {model.label} caches"
        )
    return (
        f"the shared prefix (~{prefix_tokens:,} tokens) is long enough to cache on {model.label}, "
        "but the estimate assumes list price"
    )


@dataclass(frozen=True)
class CostEstimate:
    """What a run should cost before it is sent: ``expected_usd`` at the expected output and
    escalation share, ``worst_usd`` at ``max_tokens`` with every answer escalated."""

    rows: int
    primary: str
    escalation: str | None
    batch: bool
    input_tokens: int
    expected_usd: float
    worst_usd: float
    escalation_share: float
    note: str

    def render(self) -> str:
        """One line for the CLI and notebooks."""
        tier = self.primary
        if self.escalation:
            tier += f" + {self.escalation} for ~{self.escalation_share:.0%} of rows"
        price = "batch price" if self.batch else "list price"
        return (
            f"estimate for {self.rows:,} rows on {tier} at {price}: ~${self.expected_usd:.4f} "
            f"expected, at most ${self.worst_usd:.4f}; {self.note}"
        )


def estimate_cost(
    book: PriceBook,
    *,
    primary: str,
    escalation: str | None,
    input_tokens: list[int],
    expected_output_tokens: int,
    max_output_tokens: int,
    batch: bool,
    prefix_tokens: int,
    escalation_share: float = 0.0,
) -> CostEstimate:
    """Price a run from per-row input token counts (see :class:`CostEstimate`)."""
    rows, total_in = len(input_tokens), sum(input_tokens)
    discount = book.batch_discount if batch else 1.0
    first, second = book.get(primary), escalation and book.get(escalation)
    expected = first.cost(total_in, expected_output_tokens * rows, discount=discount)
    worst = first.cost(total_in, max_output_tokens * rows, discount=discount)
    if second:
        share = escalation_share
        expected += share * second.cost(total_in, expected_output_tokens * rows, discount=discount)
        worst += second.cost(total_in, max_output_tokens * rows, discount=discount)
    return CostEstimate(
        rows=rows, primary=first.id, escalation=second.id if second else None, batch=batch,
        input_tokens=total_in, expected_usd=expected, worst_usd=worst,
        escalation_share=escalation_share if second else 0.0, note=cache_note(first, prefix_tokens),
    )  # fmt: skip


class Budget:
    """A spend limit: ``reserve`` a worst case before sending (refused once ``spent + reserved +
    worst case`` would pass it), ``settle`` when done. With no limit every reservation succeeds."""

    def __init__(self, limit_usd: float | None):
        if limit_usd is not None and not (math.isfinite(limit_usd) and limit_usd > 0):
            raise SandboxError(
                f"--max-cost-usd must be a positive number of dollars, got {limit_usd!r}: pass "
                "e.g. --max-cost-usd 0.50, or leave it out for no limit"
            )
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = False
        self._lock = threading.Lock()

    def reserve(self, amount_usd: float) -> bool:
        """Hold ``amount_usd`` if it still fits under the limit; remember a refusal."""
        with self._lock:
            if (
                self.limit_usd is not None
                and self.spent_usd + self.reserved_usd + amount_usd > self.limit_usd + 1e-12
            ):
                self.refused = True
                return False
            self.reserved_usd += amount_usd
            return True

    def settle(self, reserved_usd: float, spent_usd: float) -> None:
        """Release a reservation and record what the work really cost."""
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
            self.spent_usd += spent_usd

    def check_estimate(self, estimate: CostEstimate) -> None:
        """Refuse, before anything is sent, a run whose expected cost exceeds the limit."""
        if self.limit_usd is not None and estimate.expected_usd > self.limit_usd:
            cheaper = "" if estimate.batch else ", or use --mode batch (half price)"
            raise SandboxError(
                f"estimated cost ${estimate.expected_usd:.4f} for {estimate.rows:,} rows exceeds "
                f"--max-cost-usd {self.limit_usd:g}: raise the budget, process fewer rows "
                f"(batch_size){cheaper}. {estimate.render()}"
            )
