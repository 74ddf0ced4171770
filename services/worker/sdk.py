"""What a workflow module uses to join the fleet: `workflow`, `step` and `publish_progress`.

    from services.worker import sdk

    @sdk.workflow("resize")
    def resize(url: str, width: int = 640) -> str:
        ...

`sdk.workflow(name)` is `DBOS.workflow(name=name)` with portable JSON (so the API reads the
inputs, events and outputs without unpickling anything), plus what the fleet needs of every
execution: it is listed in the worker's heartbeats while its code runs (a resume waits for a
cancelled execution to be gone) and counted in the worker's metrics. The name is the registry
entry's; the worker refuses to start when a module it imports does not define one of its types.
Workflows are synchronous functions; their keyword arguments are the input object's properties.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from dbos import DBOS, WorkflowSerializationFormat

from services.contract import PROGRESS_EVENT_KEY, Progress
from services.worker.executions import EXECUTIONS
from services.worker.metrics import METRICS

PORTABLE: Final = WorkflowSerializationFormat.PORTABLE

F = TypeVar("F", bound=Callable[..., Any])

# The workflows defined with `workflow`, by name: what the worker checks its types against.
DEFINED: dict[str, Callable[..., Any]] = {}


def workflow(name: str) -> Callable[[F], F]:
    """Register a durable workflow under the registry's name for it."""

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):
            raise TypeError(f"workflow {name!r}: async workflows are not supported here")

        @functools.wraps(func)
        def tracked(*args: Any, **kwargs: Any) -> Any:
            workflow_id = DBOS.workflow_id
            with EXECUTIONS.running(workflow_id) as row, METRICS.workflow(workflow_id, row):
                return func(*args, **kwargs)

        registered = cast(F, DBOS.workflow(name=name, serialization_type=PORTABLE)(tracked))
        DEFINED[name] = registered
        return registered

    return decorate


def step(**options: Any) -> Callable[[F], F]:
    """`DBOS.step(**options)` (retries_allowed, max_attempts, ...), timed in the metrics."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with METRICS.step():
                return func(*args, **kwargs)

        return cast(F, DBOS.step(**options)(timed))

    return decorate


def publish_progress(steps_completed: int, num_steps: int) -> None:
    """Publish the workflow's progress (the API lists it; the page draws it as a bar)."""
    progress: Progress = {"steps_completed": steps_completed, "num_steps": num_steps}
    DBOS.set_event(PROGRESS_EVENT_KEY, progress, serialization_type=PORTABLE)
