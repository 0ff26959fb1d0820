"""The data plane: raw files in, tested AI-ready features out (dbt on DuckDB).

It knows nothing of LLMs: the decision plane reads its tables, never its functions.
"""

from sandbox.data.build import BuildResult, NodeOutcome, build, docs
from sandbox.data.dbt_runner import dbt_args, target_dir
from sandbox.data.drills import DRILLS, broken_inputs, run_drill, window_off_by_one
from sandbox.data.gate import GateFailed, GateFailure
from sandbox.data.generate import GeneratedFiles, generate

__all__ = [
    "DRILLS",
    "BuildResult",
    "GateFailed",
    "GateFailure",
    "GeneratedFiles",
    "NodeOutcome",
    "broken_inputs",
    "build",
    "dbt_args",
    "docs",
    "generate",
    "run_drill",
    "target_dir",
    "window_off_by_one",
]
