"""A fan-out: a parent starts one child workflow per item and sums their results.

Each child makes one call to an external service (simulated: it takes time, and each attempt
fails with probability `failure_rate`), as a step DBOS retries with backoff, five attempts in
all. A child whose five attempts fail ends in ERROR; its fan-out then cancels the children not
yet done (they would only spend the service's quota) and fails too.

The children run on the `fanout-items` queue, which the registry declares rate limited (the
service's quota holds across every worker) and partitioned by parent (each fan-out gets at
most a few workers at once, so a large one cannot starve a small one that came after it).
The parent's progress counts the children done.
"""

import random
import time
from typing import TypedDict

from dbos import DBOS, SetEnqueueOptions
from dbos import error as dbos_error

from services.worker import sdk

log = sdk.get_logger(__name__)

ITEMS_QUEUE = "fanout-items"


class FanoutResult(TypedDict):
    items: int
    total: int


class ServiceUnavailable(Exception):
    """The external service failed this call; the step is retried."""


@sdk.workflow("fanout")
def fanout(items: int = 5, item_seconds: float = 0.5, failure_rate: float = 0.0) -> FanoutResult:
    parent = DBOS.workflow_id
    assert parent is not None
    sdk.publish_progress(0, items)
    # Partitioned by parent: the children of one fan-out share a partition.
    with SetEnqueueOptions(queue_partition_key=parent):
        handles = [
            DBOS.enqueue_workflow(
                ITEMS_QUEUE,
                fanout_item,
                index=index,
                seconds=item_seconds,
                failure_rate=failure_rate,
            )
            for index in range(items)
        ]
    total = 0
    for done, handle in enumerate(handles, start=1):
        try:
            total += handle.get_result()
        except (dbos_error.DBOSWorkflowCancelledError, dbos_error.DBOSWorkflowConflictIDError):
            raise  # this execution itself was cancelled or taken over: nothing to clean up
        except Exception:
            log.info("fanout.item_failed", index=done - 1)
            DBOS.cancel_workflows([h.workflow_id for h in handles[done:]])
            raise
        sdk.publish_progress(done, items)
    return {"items": items, "total": total}


@sdk.workflow("fanout_item")
def fanout_item(index: int, seconds: float = 0.5, failure_rate: float = 0.0) -> int:
    return call_service(index, seconds, failure_rate)


@sdk.step(retries_allowed=True, max_attempts=5, interval_seconds=0.1, backoff_rate=2.0)
def call_service(index: int, seconds: float, failure_rate: float) -> int:
    """The external call: the step runs at least once, so it must be safe to repeat."""
    time.sleep(seconds)
    if random.random() < failure_rate:
        log.info("fanout.call_failed", index=index)
        raise ServiceUnavailable(f"the service failed item {index}; retrying")
    return index * index
