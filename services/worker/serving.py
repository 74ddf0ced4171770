"""What a worker serves: its queues (a pool) from the registry, and their workflows' code."""

import importlib
from typing import Any

from services.contract.registry import QueueSpec, Registry
from services.worker import sdk
from services.worker.settings import WorkerSettings


def served_queues(settings: WorkerSettings, registry: Registry) -> list[str]:
    """The queues named by WORKER_QUEUES, or every queue; ValueError naming an unknown one."""
    if settings.queues is None:
        return sorted(registry.queues)
    names = [name.strip() for name in settings.queues.split(",") if name.strip()]
    unknown = [name for name in names if name not in registry.queues]
    if unknown or not names:
        raise ValueError(
            f"WORKER_QUEUES names {', '.join(unknown) or 'no queue'}; the registry declares "
            f"{', '.join(sorted(registry.queues))}"
        )
    return sorted(set(names))


def import_workflows(registry: Registry, queues: list[str]) -> list[str]:
    """Import the modules of the types on these queues, which registers their workflows with
    DBOS; the names of those types. ValueError when a module is missing or lacks its type."""
    types = registry.workflows_on(set(queues))
    for name, workflow_type in sorted(types.items()):
        try:
            importlib.import_module(workflow_type.module)
        except ImportError as exc:
            raise ValueError(
                f"workflow {name!r}: cannot import module {workflow_type.module!r} ({exc}); "
                "is its package installed in this worker's image?"
            ) from None
        if name not in sdk.DEFINED:
            raise ValueError(
                f"workflow {name!r}: module {workflow_type.module!r} defines no workflow of that "
                'name (decorate it with @sdk.workflow("' + name + '"), '
                "from services.worker import sdk)"
            )
    return sorted(types)


def queue_options(settings: WorkerSettings, spec: QueueSpec) -> dict[str, Any]:
    """DBOS register_queue's keyword arguments: the registry's, with this worker's overrides;
    ValueError when an override breaks the queue's global concurrency.

    DBOS keeps a queue's settings in the database and every worker reads them from there: an
    override holds for every worker of the queue, so all of them must be given the same.
    """
    options = spec.dbos_options()
    if settings.worker_concurrency is not None:
        if spec.global_concurrency is not None and (
            settings.worker_concurrency > spec.global_concurrency
        ):
            raise ValueError(
                f"WORKER_CONCURRENCY {settings.worker_concurrency} exceeds a served queue's "
                f"global_concurrency {spec.global_concurrency}"
            )
        options["worker_concurrency"] = settings.worker_concurrency
    if settings.polling_interval_seconds is not None:
        options["polling_interval_sec"] = settings.polling_interval_seconds
    return options
