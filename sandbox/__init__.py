"""Three-Plane Data + AI Sandbox: the code the notebooks and the Airflow DAGs call.

One sub-package per plane (``data``: dbt on DuckDB; ``decision``: the LLM through the Anthropic
SDK; ``control``: Airflow), ``evals`` (golden set, drift) and ``course`` (the notebooks' checks).
"""

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, raw_dir, warehouse_path

__version__ = "0.1.0"

__all__ = ["SHIPPED_AS_OF_DATE", "SandboxError", "__version__", "raw_dir", "warehouse_path"]
