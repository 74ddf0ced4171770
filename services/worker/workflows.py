"""The demo workflow: a number of steps, with progress published after each."""

import time

from services.contract import DEFAULT_NUM_STEPS, DEFAULT_STEP_SECONDS, WORKFLOW_NAME, Progress
from services.worker import sdk

log = sdk.get_logger(__name__)


@sdk.workflow(WORKFLOW_NAME)
def workflow(
    num_steps: int = DEFAULT_NUM_STEPS, step_seconds: float = DEFAULT_STEP_SECONDS
) -> Progress:
    return run_steps(num_steps, step_seconds)


def run_steps(num_steps: int, step_seconds: float) -> Progress:
    """The demo's body, inside a workflow: the steps, with progress published after each."""
    sdk.publish_progress(0, num_steps)
    for index in range(num_steps):
        step(index, step_seconds)
        sdk.publish_progress(index + 1, num_steps)
    return {"steps_completed": num_steps, "num_steps": num_steps}


@sdk.step()
def step(index: int, step_seconds: float) -> None:
    perform_step(index, step_seconds)
    log.debug("step.completed", index=index)


def perform_step(index: int, step_seconds: float) -> None:
    """The step's work: here it only takes time. Steps run at least once, so work done here
    must be safe to repeat (a worker that dies mid-step has it run again elsewhere)."""
    time.sleep(step_seconds)
