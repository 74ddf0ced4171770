"""The worker's settings, read once from the environment."""

import os
import socket
import uuid
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services import contract
from services.contract.logs import LogFormat

# What a heartbeat may lose to a new connection (libpq's connect timeout is at least 2 s).
RECONNECT_ALLOWANCE_SECONDS = 2.0
# Where Kubernetes mounts a pod's service account token, CA bundle and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def _local_executor_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


class WorkerSettings(BaseModel):
    """Typed worker configuration; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    database_url: str = Field(
        contract.DEFAULT_DATABASE_URL, alias=contract.ENV_DATABASE_URL, min_length=1
    )
    # The pod name in Kubernetes; locally the host name plus a random suffix, so two workers on
    # one host differ. Never DBOS's shared default "local": a new process with the same id would
    # "recover" (re-run) the in-flight work of a live one.
    executor_id: str = Field(default_factory=_local_executor_id, alias="DBOS__VMID", min_length=1)
    application_version: str = Field(
        contract.APP_VERSION, alias=contract.ENV_APP_VERSION, min_length=1
    )
    # The queues this worker serves (a pool), comma-separated; unset: every queue of the
    # registry (services.contract.registry).
    queues: str | None = Field(None, alias="WORKER_QUEUES", pattern=r"^[A-Za-z0-9._,\s-]+$")
    # Set, these replace the registry's worker_concurrency and polling interval of every queue
    # this worker serves (a pool's own sizing).
    worker_concurrency: int | None = Field(None, alias="WORKER_CONCURRENCY", ge=1, le=1000)
    polling_interval_seconds: float | None = Field(
        None, alias="WORKER_POLLING_INTERVAL_SECONDS", ge=0.01, le=60
    )
    drain_timeout_seconds: int = Field(20, alias="WORKER_DRAIN_TIMEOUT_SECONDS", ge=0, le=3600)
    db_pool_size: int = Field(4, alias="WORKER_DB_POOL_SIZE", ge=1, le=200)
    heartbeat_interval_seconds: float = Field(
        5.0, alias="HEARTBEAT_INTERVAL_SECONDS", ge=0.1, le=300
    )
    executor_grace_seconds: float = Field(
        contract.DEFAULT_EXECUTOR_GRACE_SECONDS,
        alias=contract.ENV_EXECUTOR_GRACE_SECONDS,
        ge=1,
        le=3600,
    )
    reaper_interval_seconds: float = Field(10.0, alias="REAPER_INTERVAL_SECONDS", ge=0.1, le=3600)
    # Finished workflows older than this are deleted; 0 keeps them forever.
    retention_seconds: float = Field(7 * 86400, alias="RETENTION_SECONDS", ge=0)
    retention_interval_seconds: float = Field(
        300.0, alias="RETENTION_INTERVAL_SECONDS", ge=0.1, le=86400
    )
    # Bounded by the database drivers' limit on bound parameters per statement.
    retention_batch_size: int = Field(1000, alias="RETENTION_BATCH_SIZE", ge=1, le=10_000)
    # False where the worker's database role may not run DDL: then `python -m services.worker
    # migrate` must have run, and the worker only checks the schema.
    run_migrations: bool = Field(True, alias="WORKER_RUN_MIGRATIONS")
    # /healthz, /readyz and /metrics of this worker; port 0 turns them off.
    probe_host: str = Field("127.0.0.1", alias="WORKER_PROBE_HOST", min_length=1)
    probe_port: int = Field(9000, alias="WORKER_PROBE_PORT", ge=0, le=65535)
    log_level: str = Field("INFO", alias="LOG_LEVEL", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    # One line per record: "text" to read in a terminal, "json" for a log pipeline (the chart).
    log_format: LogFormat = Field("text", alias="LOG_FORMAT")
    # Keep this pod's controller.kubernetes.io/pod-deletion-cost equal to the workflows it runs,
    # so a scale-in deletes idle workers first (services.worker.deletion_cost).
    pod_deletion_cost: bool = Field(False, alias="WORKER_POD_DELETION_COST")
    # How often the cost may follow the count; a change between idle and busy goes out at once.
    pod_deletion_cost_interval_seconds: float = Field(
        10.0, alias="WORKER_POD_DELETION_COST_INTERVAL_SECONDS", ge=1, le=3600
    )
    # The pod and its namespace, from the downward API (the chart sets both); the namespace
    # defaults to the service account's.
    pod_name: str | None = Field(None, alias="WORKER_POD_NAME", pattern=_DNS_SUBDOMAIN)
    pod_namespace: str | None = Field(None, alias="WORKER_POD_NAMESPACE", pattern=_DNS_LABEL)
    # Where the service account's token, ca.crt and namespace are mounted.
    service_account_dir: str = Field(
        SERVICE_ACCOUNT_DIR, alias="WORKER_SERVICE_ACCOUNT_DIR", min_length=1
    )
    # The Kubernetes API's address, which the kubelet gives every container.
    kubernetes_host: str | None = Field(None, alias="KUBERNETES_SERVICE_HOST", min_length=1)
    kubernetes_port: int | None = Field(None, alias="KUBERNETES_SERVICE_PORT", ge=1, le=65535)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        return contract.normalize_database_url(url)

    @model_validator(mode="after")
    def _grace_outlasts_heartbeats(self) -> Self:
        if self.executor_grace_seconds < self.minimum_grace_seconds:
            raise ValueError(
                f"{contract.ENV_EXECUTOR_GRACE_SECONDS} must be at least four times "
                f"HEARTBEAT_INTERVAL_SECONDS plus {RECONNECT_ALLOWANCE_SECONDS:g} seconds "
                f"({self.minimum_grace_seconds:g} here): a live worker may miss heartbeats for "
                "a stall of two intervals, its cadence and a reconnect without being thought dead"
            )
        return self

    @model_validator(mode="after")
    def _deletion_cost_knows_its_pod(self) -> Self:
        if self.pod_deletion_cost and self.pod_name is None:
            raise ValueError(
                "WORKER_POD_DELETION_COST needs WORKER_POD_NAME, the pod's name (the chart sets "
                "it from metadata.name)"
            )
        if self.pod_deletion_cost and (self.kubernetes_host is None or not self.kubernetes_port):
            raise ValueError(
                "WORKER_POD_DELETION_COST needs KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT, which Kubernetes sets in every container: is this a pod?"
            )
        return self

    @property
    def minimum_grace_seconds(self) -> float:
        return 4 * self.heartbeat_interval_seconds + RECONNECT_ALLOWANCE_SECONDS

    @property
    def heartbeat_max_gap_seconds(self) -> float:
        """Longest time between two heartbeats that still counts as unbroken health."""
        return 2 * self.heartbeat_interval_seconds

    @property
    def heartbeat_timeout_seconds(self) -> float:
        """Bound on everything one heartbeat waits for: shorter than its interval."""
        return 0.8 * self.heartbeat_interval_seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "WorkerSettings":
        """Read the settings, or raise ValueError naming each bad variable (never its value)."""
        present = {k: v for k, v in environ.items() if v != ""}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise ValueError(f"invalid worker configuration: {exc}") from None
