"""Reviewed baselines and the change gate that compares an evaluation with them.

One file per prompt version (or ``offline``) and model in ``SANDBOX_EVAL_BASELINES``, written
only by ``sandbox eval --accept``; thresholds and waivers are in ``data/golden/gate.toml``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.config import ROOT, SandboxError, eval_baselines_dir
from sandbox.evals.runner import EvalRun

GATE_CONFIG = ROOT / "data" / "golden" / "gate.toml"
MAX_DIFF_LINES = 40


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gate and the reviewed prompt waivers."""

    max_agreement_drop: float = 0.0
    max_invalid_rate_rise: float = 0.0
    max_cost_per_row_rise: float = 0.05
    prompt_waivers: dict[str, str] = field(default_factory=dict)


def load_gate_config() -> GateConfig:
    """Read ``gate.toml`` (a clear error when it is missing, malformed or names no threshold)."""
    try:
        raw = tomllib.loads(GATE_CONFIG.read_text())
        limits = {name: float(value) for name, value in raw.get("thresholds", {}).items()}
        return GateConfig(**limits, prompt_waivers=raw.get("prompt_waivers", {}))
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
        raise SandboxError(
            f"cannot read the gate configuration {GATE_CONFIG} ({type(exc).__name__}: {exc}): "
            "restore it from git or fix the TOML"
        ) from None


def baseline_name(llm: str, model: str, prompt_version: str) -> str:
    """The file name of a baseline (see the module docstring)."""
    return f"offline__{model}.json" if llm == "mock" else f"{prompt_version}__{model}.json"


def baseline_record(run: EvalRun) -> dict:
    """What ``--accept`` writes: the scores and every case's answer and summary."""
    return {
        "llm": run.llm,
        "model": run.model,
        "prompt_version": run.prompt_version,
        "eval_run_id": run.eval_run_id,
        "evaluated_at": run.evaluated_at.isoformat(timespec="seconds"),
        "golden_inputs_sha": run.golden.inputs_sha,
        "summaries_sha": run.golden.summaries_sha,
        "scores": asdict(run.scores),
        "cases": {
            r.user_id: {
                "case": r.case,
                "acceptable": list(r.acceptable),
                "answer": r.outcome,
                "agrees": r.agrees,
                "summary": r.summary,
            }
            for r in run.results
        },
    }


def write_baseline(run: EvalRun) -> Path:
    """Store ``run`` as the reviewed baseline for its llm, model and prompt_version."""
    if not run.complete:
        raise SandboxError(
            f"this evaluation is incomplete ({run.skipped} case(s) not sent: the budget ran "
            "out), so it cannot become a baseline: raise --max-cost-usd and run it again"
        )
    path = eval_baselines_dir() / baseline_name(run.llm, run.model, run.prompt_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_record(run), indent=2, sort_keys=True) + "\n")
    return path


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SandboxError(
            f"cannot read the baseline {path} ({exc}): restore it from git, or record a new one "
            "with sandbox eval --accept"
        ) from None


def find_baseline(llm: str, model: str, prompt_version: str) -> tuple[Path, dict] | None:
    """The baseline to compare a run with: offline, ``offline__<model>.json``; live, the same
    prompt_version's file, else the model's newest, so a new prompt is compared with the last."""
    exact = eval_baselines_dir() / baseline_name(llm, model, prompt_version)
    if exact.is_file():
        return exact, _read(exact)
    if llm == "mock":
        return None
    live = [
        (path, _read(path))
        for path in eval_baselines_dir().glob(f"*__{model}.json")
        if not path.name.startswith("offline__")
    ]
    return max(live, key=lambda found: found[1]["evaluated_at"], default=None)


@dataclass
class GateVerdict:
    """The gate's judgement of one run: the broken thresholds and the cases that changed."""

    baseline: Path | None
    problems: list[str]
    changed: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """A readable report: what broke, then the cases whose answer or summary changed."""
        where = self.baseline.name if self.baseline else "no baseline"
        head = f"change gate: {'passed' if self.passed else 'FAILED'} against {where}"
        head += "".join(f"\n  - {problem}" for problem in self.problems)
        if not self.changed:
            return head + "\n  no case changed its answer or summary"
        body = "\n".join(self.changed[:MAX_DIFF_LINES])
        if len(self.changed) > MAX_DIFF_LINES:
            body += f"\n  ... and {len(self.changed) - MAX_DIFF_LINES} more lines"
        return f"{head}\ncases that changed (baseline -> now):\n{body}"


def _cut(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def diff_cases(run: EvalRun, baseline: dict) -> list[str]:
    """The cases whose answer, verdict or summary differs from the baseline: those that became
    wrong first, then other changed answers, then summaries (each shown before and after)."""
    before, now = baseline.get("cases", {}), {r.user_id: r for r in run.results}
    blocks: list[tuple[int, str, list[str]]] = []
    for user_id in sorted(before.keys() | now.keys()):
        old, new = before.get(user_id), now.get(user_id)
        if old is None:
            lines, rank = [f"  {user_id} {new.case}: new case, answered {new.outcome}"], 1
        elif new is None:
            lines, rank = [f"  {user_id} {old['case']}: no longer in the golden set"], 1
        else:
            answer_moved = old["answer"] != new.outcome
            summary_moved = old.get("summary") != new.summary
            if not (answer_moved or summary_moved or old["agrees"] != new.agrees):
                continue
            lines = [
                f"  {user_id} {new.case}: {old['answer']} -> {new.outcome} "
                f"(acceptable: {'|'.join(new.acceptable)}) {'ok' if new.agrees else 'WRONG'}"
            ]
            if summary_moved:
                lines.append(f"      was: {_cut(old.get('summary') or '')}")
                lines.append(f"      now: {_cut(new.summary)}")
            rank = 0 if (old["agrees"] and not new.agrees) else 1 if answer_moved else 2
        blocks.append((rank, user_id, lines))
    return [line for _, _, lines in sorted(blocks) for line in lines]


def compare(
    run: EvalRun, baseline: dict, config: GateConfig, path: Path | None = None
) -> GateVerdict:
    """Judge ``run`` against ``baseline`` with the thresholds of ``config``."""
    old, s, problems = baseline["scores"], run.scores, []
    # the baseline file stores rounded numbers: compare with a tolerance far below one case
    if s.agreement < old["agreement"] - config.max_agreement_drop - 1e-6:
        problems.append(
            f"agreement fell from {old['agreement']:.1%} to {s.agreement:.1%} "
            f"(allowed drop {config.max_agreement_drop:.1%})"
        )
    if s.invalid_rate > old["invalid_rate"] + config.max_invalid_rate_rise + 1e-6:
        problems.append(
            f"invalid-answer rate rose from {old['invalid_rate']:.1%} to {s.invalid_rate:.1%} "
            f"(allowed rise {config.max_invalid_rate_rise:.1%})"
        )
    old_cost = old["cost_per_row_usd"]
    if old_cost and s.cost_per_row_usd > old_cost * (1 + config.max_cost_per_row_rise + 1e-6):
        problems.append(
            f"cost per row rose from ${old_cost:.6f} to ${s.cost_per_row_usd:.6f} "
            f"(+{s.cost_per_row_usd / old_cost - 1:.1%}, allowed +{config.max_cost_per_row_rise:.0%})"
        )
    if not run.complete:
        problems.append(f"{run.skipped} case(s) were not sent (budget), so the run is incomplete")
    return GateVerdict(path, problems, diff_cases(run, baseline))


def check_gate(run: EvalRun) -> GateVerdict:
    """Compare ``run`` with its baseline; no baseline at all is a failure with the fix."""
    found = find_baseline(run.llm, run.model, run.prompt_version)
    if found is not None:
        return compare(run, found[1], load_gate_config(), found[0])
    kind, flag = ("offline", "") if run.llm == "mock" else ("live", " --llm anthropic")
    missing = (
        f"no {kind} baseline for {run.model} in {eval_baselines_dir()}: review this run, then "
        f"record it with `sandbox eval{flag} --model {run.model} --accept` and commit the file"
    )
    return GateVerdict(None, [missing], [])


def check_prompt_evaluated(prompt_version: str, model: str) -> str | None:
    """``None`` when ``prompt_version`` has a live baseline or a reviewed waiver (the version for
    any model, or ``<prompt_version>__<model>`` for one), else why it cannot ship."""
    name = baseline_name("anthropic", model, prompt_version)
    waived = {prompt_version, f"{prompt_version}__{model}"}
    if (eval_baselines_dir() / name).is_file() or waived & load_gate_config().prompt_waivers.keys():
        return None
    return (
        f"prompt_version {prompt_version} has no stored evaluation for {model}: the prompt, the "
        "answer schema or the user template changed. Measure it before it ships: run "
        "`sandbox eval --llm anthropic --accept` (needs ANTHROPIC_API_KEY; it estimates the cost "
        f"first), review and commit {eval_baselines_dir().name}/{name}"
    )
