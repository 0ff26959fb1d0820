"""The data plane: raw files in, tested AI-ready features out (dbt on DuckDB).

It knows nothing of LLMs: the decision plane reads its tables, never its functions.
"""

from sandbox.data.build import BuildResult, build
from sandbox.data.dbt_runner import target_dir
from sandbox.data.drills import DRILLS, broken_inputs, run_drill, window_off_by_one
from sandbox.data.gate import GateFailed, GateFailure
from sandbox.data.generate import generate

__all__ = [
    "DRILLS",
    "BuildResult",
    "GateFailed",
    "GateFailure",
    "broken_inputs",
    "build",
    "generate",
    "run_drill",
    "target_dir",
    "window_off_by_one",
]
