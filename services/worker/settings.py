"""The worker's settings, read once from the environment."""

import os
import socket
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services import contract


class WorkerSettings(BaseModel):
    """Typed worker configuration; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    database_url: str = Field(
        contract.DEFAULT_DATABASE_URL, alias=contract.ENV_DATABASE_URL, min_length=1
    )
    # The pod name in Kubernetes. Never DBOS's shared default "local": a new process with the
    # same id would "recover" (re-run) the in-flight work of a live one.
    executor_id: str = Field(default_factory=socket.gethostname, alias="DBOS__VMID", min_length=1)
    application_version: str = Field(
        contract.APP_VERSION, alias=contract.ENV_APP_VERSION, min_length=1
    )
    worker_concurrency: int = Field(10, alias="WORKER_CONCURRENCY", ge=1, le=1000)
    polling_interval_seconds: float = Field(
        1.0, alias="WORKER_POLLING_INTERVAL_SECONDS", ge=0.01, le=60
    )
    drain_timeout_seconds: int = Field(20, alias="WORKER_DRAIN_TIMEOUT_SECONDS", ge=0, le=3600)
    db_pool_size: int = Field(10, alias="WORKER_DB_POOL_SIZE", ge=1, le=200)
    log_level: str = Field("INFO", alias="LOG_LEVEL", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "WorkerSettings":
        """Read the settings, or raise ValueError naming each bad variable (never its value)."""
        present = {k: v for k, v in environ.items() if v != ""}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise ValueError(f"invalid worker configuration: {exc}") from None
