"""Three-Plane Data + AI Sandbox: the code the notebooks and the Airflow DAGs call.

- ``sandbox.data``: the data plane (dbt on DuckDB), raw data generator.
- ``sandbox.decision``: the decision plane (LLM inference through the Anthropic SDK).
- ``sandbox.control``: the control plane (Airflow DAG task callables, gate checks, runs).
- ``sandbox.warehouse``: DuckDB connections and the tables dbt does not own.

Sub-packages are imported lazily, so ``import sandbox`` stays cheap.
"""

import sys as _sys

# Start-up time. dbt and Airflow import `jsonschema`, which registers an IRI format checker
# when the optional `rfc3987-syntax` package is installed; that package compiles 38 Earley
# grammars when imported: about 0.8 s of dbt's 3.6 s start-up on this course's machines.
# Only JupyterLab's server pulls it into this environment (jupyter-events asks for
# `jsonschema[format-nongpl]`), and nothing in the sandbox's own processes validates IRIs, so
# they import `jsonschema` the way a plain `pip install dbt-core apache-airflow` would: without
# it. (A `None` entry in `sys.modules` makes that import raise ImportError, which jsonschema
# expects from an optional package.) The JupyterLab server runs in its own process, unchanged.
if "jsonschema" not in _sys.modules:
    _sys.modules.setdefault("rfc3987_syntax", None)

from sandbox.config import SHIPPED_AS_OF_DATE, SandboxError, raw_dir, warehouse_path  # noqa: E402

__version__ = "0.1.0"

__all__ = ["SHIPPED_AS_OF_DATE", "SandboxError", "__version__", "raw_dir", "warehouse_path"]
