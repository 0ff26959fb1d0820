"""The data plane: raw files in, tested AI-ready features out (dbt on DuckDB).

It knows nothing of LLMs: the decision plane reads its tables, never its functions.
"""

from sandbox.data.build import BuildResult, NodeOutcome, build, docs
from sandbox.data.dbt_runner import dbt_args, project_dir, target_dir
from sandbox.data.gate import GateFailed, GateFailure
from sandbox.data.generate import GeneratedFiles, generate

__all__ = [
    "BuildResult",
    "GateFailed",
    "GateFailure",
    "GeneratedFiles",
    "NodeOutcome",
    "build",
    "dbt_args",
    "docs",
    "generate",
    "project_dir",
    "target_dir",
]
