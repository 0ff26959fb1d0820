"""Three-Plane Data + AI Sandbox: the code the notebooks and the Airflow DAGs call.

- ``sandbox.data``: the data plane (dbt on DuckDB), raw data generator.
- ``sandbox.decision``: the decision plane (LLM inference through the Anthropic SDK).
- ``sandbox.control``: the control plane (Airflow DAG task callables, gate checks, runs).
- ``sandbox.warehouse``: DuckDB connections and the tables dbt does not own.

Sub-packages are imported lazily, so ``import sandbox`` stays cheap.
"""

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, raw_dir, warehouse_path

__version__ = "0.1.0"

__all__ = ["SHIPPED_AS_OF_DATE", "SandboxError", "__version__", "raw_dir", "warehouse_path"]
