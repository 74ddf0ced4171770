"""A second workflow type for rehearsals of two worker pools: the demo's steps under another
name, so that a registry can put it on a queue of its own (and a pool of its own)."""

from services.contract import Progress
from services.worker import sdk, workflows

NAME = "rehearsal_b"


@sdk.workflow(NAME)
def rehearsal_b(num_steps: int = 10, step_seconds: float = 1.0) -> Progress:
    return workflows.run_steps(num_steps, step_seconds)
