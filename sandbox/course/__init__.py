"""What the notebooks import: one set-up call, the labels of simulated output, and the checks.

The notebooks call the real planes; this package prepares each notebook's environment and
turns a learner's answer into a verdict with a hint, never the answer.
"""

# notebook: set-up and labels | verdicts: Verdict, attempts, hashes, helpers switched off
# hidden: queries and functions on randomized cases (00, 01, 03) | recall: 00, 02, 04, 05
# build_dbt (02, 05), build_request (03), build_dag (04): build-it checks | scale: 06
# golden: 07 | storm: fault storm, local Messages API | grade, edition, store, cli: tools

from sandbox.course.build_dag import check_pipeline_task
from sandbox.course.build_dbt import LESSON_MODELS, check_dbt_model, check_new_model
from sandbox.course.build_request import RecordedExchange, check_one_request, recording_client
from sandbox.course.golden import check_new_golden_case
from sandbox.course.hidden import (
    check_escalation_cost,
    check_fading_users,
    check_summary_function,
    check_top_recommendation,
    check_type_predictor,
)
from sandbox.course.notebook import (
    AS_OF,
    SCRATCH_ENV,
    SIMULATED,
    cost_note,
    notebook_home,
    offline,
    setup,
    simulated,
)
from sandbox.course.recall import (
    RERUN_DATE,
    TRACED_AFTER,
    check_custom_break,
    check_gate_explanation,
    check_planes,
    check_rerun_requests,
    check_trace,
)
from sandbox.course.scale import build_phases, check_batch_cost, check_workers
from sandbox.course.storm import LOCAL_API_KEY, Storm, fault_storm, local_messages_api, plot_storm
from sandbox.course.verdicts import MAX_ATTEMPTS, Verdict

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
"""Every notebook's exercise checks, in order (each check's ``.exercise`` is its id)."""

__all__ = [
    "AS_OF",
    "EXERCISES",
    "LESSON_MODELS",
    "LOCAL_API_KEY",
    "MAX_ATTEMPTS",
    "RERUN_DATE",
    "SCRATCH_ENV",
    "SIMULATED",
    "TRACED_AFTER",
    "RecordedExchange",
    "Storm",
    "Verdict",
    "build_phases",
    "check_batch_cost",
    "check_custom_break",
    "check_dbt_model",
    "check_escalation_cost",
    "check_fading_users",
    "check_gate_explanation",
    "check_new_golden_case",
    "check_new_model",
    "check_one_request",
    "check_pipeline_task",
    "check_planes",
    "check_rerun_requests",
    "check_summary_function",
    "check_top_recommendation",
    "check_trace",
    "check_type_predictor",
    "check_workers",
    "cost_note",
    "fault_storm",
    "local_messages_api",
    "notebook_home",
    "offline",
    "plot_storm",
    "recording_client",
    "setup",
    "simulated",
]
