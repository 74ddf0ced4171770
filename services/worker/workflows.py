"""The durable workflow the fleet runs: a number of steps, with progress published after each."""

import logging
import time

from dbos import DBOS, WorkflowSerializationFormat

from services.contract import (
    DEFAULT_NUM_STEPS,
    DEFAULT_STEP_SECONDS,
    PROGRESS_EVENT_KEY,
    WORKFLOW_NAME,
    Progress,
)
from services.worker.executions import EXECUTIONS
from services.worker.metrics import METRICS

logger = logging.getLogger(__name__)

# Portable JSON keeps inputs, events and outputs readable by the API without unpickling
# anything that came from the database.
PORTABLE = WorkflowSerializationFormat.PORTABLE


@DBOS.workflow(name=WORKFLOW_NAME, serialization_type=PORTABLE)
def workflow(
    num_steps: int = DEFAULT_NUM_STEPS, step_seconds: float = DEFAULT_STEP_SECONDS
) -> Progress:
    workflow_id = DBOS.workflow_id
    with EXECUTIONS.running(workflow_id) as row, METRICS.workflow(workflow_id, row):
        progress: Progress = {"steps_completed": 0, "num_steps": num_steps}
        DBOS.set_event(PROGRESS_EVENT_KEY, progress, serialization_type=PORTABLE)
        for index in range(num_steps):
            step(index, step_seconds)
            progress = {"steps_completed": index + 1, "num_steps": num_steps}
            DBOS.set_event(PROGRESS_EVENT_KEY, progress, serialization_type=PORTABLE)
        return progress


@DBOS.step()
def step(index: int, step_seconds: float) -> None:
    with METRICS.step():
        perform_step(index, step_seconds)
    logger.debug("step.completed workflow_id=%s index=%d", DBOS.workflow_id, index)


def perform_step(index: int, step_seconds: float) -> None:
    """The step's work: here it only takes time. Steps run at least once, so work done here
    must be safe to repeat (a worker that dies mid-step has it run again elsewhere)."""
    time.sleep(step_seconds)
