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

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar, cast

from dbos import DBOS, WorkflowSerializationFormat

from services.contract import PROGRESS_EVENT_KEY, Progress, logs, tracing
from services.worker.executions import EXECUTIONS
from services.worker.fleet import WorkflowRow
from services.worker.metrics import METRICS, Ended

PORTABLE: Final = WorkflowSerializationFormat.PORTABLE

F = TypeVar("F", bound=Callable[..., Any])

log = logs.get_logger(__name__)

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
            with EXECUTIONS.running(workflow_id) as row, _workflow_context(workflow_id, name, row):
                log.debug("workflow.started")
                ended = Ended()
                try:
                    with METRICS.workflow(workflow_id, row, ended), _children_join_trace():
                        return func(*args, **kwargs)
                finally:
                    log.log(
                        logging.INFO if ended.outcome == "success" else logging.WARNING,
                        "workflow.ended",
                        outcome=ended.outcome,
                        duration_ms=round(ended.seconds * 1000, 1),
                        **({"error": ended.error} if ended.error else {}),
                    )

        registered = cast(F, DBOS.workflow(name=name, serialization_type=PORTABLE)(tracked))
        DEFINED[name] = registered
        return registered

    return decorate


def _workflow_context(workflow_id: str | None, name: str, row: WorkflowRow | None) -> Any:
    """Every line logged while the workflow's code runs (DBOS's, the code's own) names the
    workflow, its queue and type, and the request that enqueued it."""
    return logs.context(
        workflow_id=workflow_id,
        workflow=name,
        queue=row.queue_name if row is not None else None,
        request_id=row.request_id if row is not None else None,
    )


def _children_join_trace() -> AbstractContextManager[Any]:
    """With tracing on, the workflows this one starts or enqueues continue its trace (DBOS
    leaves a child to start a trace of its own unless told)."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    from dbos import PropagateOtelContext

    return PropagateOtelContext()


def get_logger(name: str) -> logs.EventLogger:
    """A logger of events for a workflow module: `log.info("resize.done", width=640)`; its
    lines name the workflow, queue and request they come from. Plain `logging` works too."""
    return logs.get_logger(name)


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
