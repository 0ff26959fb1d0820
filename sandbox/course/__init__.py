"""What the notebooks import: one set-up call, the labels of simulated output, and the checks.

A check turns a learner's answer into a verdict with a hint, never the answer.
"""

from sandbox.course.build import (
    check_dbt_model,
    check_new_golden_case,
    check_new_model,
    check_pipeline_task,
)
from sandbox.course.hidden import (
    check_escalation_cost,
    check_fading_users,
    check_one_request,
    check_summary_function,
    check_top_recommendation,
    check_type_predictor,
    recording_client,
)
from sandbox.course.notebook import AS_OF, SCRATCH_ENV, cost_note, notebook_home, setup, simulated
from sandbox.course.scale import build_phases, check_batch_cost, check_workers
from sandbox.course.storm import LOCAL_API_KEY, fault_storm, local_messages_api, plot_storm
from sandbox.course.verdicts import (
    MAX_ATTEMPTS,
    RERUN_DATE,
    check_custom_break,
    check_gate_explanation,
    check_planes,
    check_rerun_requests,
    check_trace,
)

# every notebook's exercise checks, in order (each check's ``.exercise`` is its id)
EXERCISES = {
    "00_start_here": (check_planes, check_top_recommendation),
    "01_data_plane": (check_fading_users, check_summary_function),
    "02_quality_gate": (check_gate_explanation, check_custom_break, check_dbt_model),
    "03_decision_plane": (check_type_predictor, check_escalation_cost, check_one_request),
    "04_control_plane": (check_pipeline_task, check_rerun_requests),
    "05_end_to_end": (check_trace, check_new_model),
    "06_scale_and_cost": (check_batch_cost, check_workers),
    "07_evals_and_drift": (check_new_golden_case,),
}

# the names the notebooks use besides the checks, which EXERCISES lists
__all__ = [
    "AS_OF",
    "EXERCISES",
    "LOCAL_API_KEY",
    "MAX_ATTEMPTS",
    "RERUN_DATE",
    "SCRATCH_ENV",
    "build_phases",
    "cost_note",
    "fault_storm",
    "local_messages_api",
    "notebook_home",
    "plot_storm",
    "recording_client",
    "setup",
    "simulated",
]
