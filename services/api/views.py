"""The JSON documents the API answers with: workflows, their steps, the fleet."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.api.fleet import FleetSnapshot
from services.api.listing import WorkflowRecord
from services.api.steps import StepRecord
from services.contract.registry import Registry


def workflow_json(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "workflow_id": record.workflow_id,
        "workflow": record.workflow,
        "status": record.status,
        "queue": record.queue_name,
        "partition_key": record.partition_key,
        "priority": record.priority,
        "created_at": _iso(record.created_at_ms),
        "updated_at": _iso(record.updated_at_ms),
        "steps_completed": record.steps_completed,
        "num_steps": record.num_steps,
        "executor_id": record.executor_id,
        "application_version": record.application_version,
    }


def steps_json(workflow_id: str, steps: list[StepRecord]) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "steps": [
            {
                "step_id": step.step_id,
                "name": step.name,
                "status": step.status,
                "started_at": None if step.started_at_ms is None else _iso(step.started_at_ms),
                "completed_at": (
                    None if step.completed_at_ms is None else _iso(step.completed_at_ms)
                ),
                "error": (
                    None
                    if step.error is None
                    else {"name": step.error.name, "message": step.error.message}
                ),
                "child_workflow_id": step.child_workflow_id,
            }
            for step in steps
        ],
    }


def fleet_json(snapshot: FleetSnapshot, grace_seconds: float) -> dict[str, Any]:
    return {
        "grace_seconds": grace_seconds,
        "executors": [
            {
                "executor_id": e.executor_id,
                "application_version": e.application_version,
                "hostname": e.hostname,
                "alive": e.alive,
                "started_at": _iso(e.started_at_ms),
                "last_heartbeat_at": _iso(e.heartbeat_at_ms),
                "stopped_at": None if e.stopped_at_ms is None else _iso(e.stopped_at_ms),
            }
            for e in snapshot.executors
        ],
        "orphaned_workflows": [{"queue": q, "workflows": n} for q, n in snapshot.orphaned],
        "stranded_workflows": [
            {"queue": q, "application_version": v, "workflows": n} for q, v, n in snapshot.stranded
        ],
    }


def registry_json(registry: Registry) -> dict[str, Any]:
    return {
        "default_workflow": registry.default_workflow,
        "workflow_types": [
            {
                "name": name,
                "description": workflow.description,
                "queue": workflow.queue,
                "partitioned": registry.queues[workflow.queue].partitioned,
                "input_schema": workflow.input_schema,
                "defaults": workflow.defaults.model_dump(),
            }
            for name, workflow in sorted(registry.workflows.items())
        ],
        "queues": [
            {
                "name": name,
                "description": queue.description,
                "partitioned": queue.partitioned,
                **queue.model_dump(exclude={"description"}),
            }
            for name, queue in sorted(registry.queues.items())
        ],
    }


def audit_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": _iso(row["at_ms"]),
        "actor": row["actor"],
        "roles": json.loads(row["roles"]),
        "action": row["action"],
        "target": row["target"],
        "outcome": row["outcome"],
        "request_id": row["request_id"],
        "detail": None if row["detail"] is None else json.loads(row["detail"]),
    }


def _iso(epoch_ms: int) -> str:
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError):  # beyond what a datetime holds (year 9999)
        return "9999-12-31T23:59:59.999+00:00" if epoch_ms > 0 else "0001-01-01T00:00:00.000+00:00"
