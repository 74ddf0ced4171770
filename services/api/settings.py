"""The API's settings, read once from the environment."""

import os
from collections.abc import Mapping
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services import contract
from services.contract import logs
from services.contract.logs import LogFormat


class ApiSettings(BaseModel):
    """Typed API configuration; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    database_url: str = Field(
        contract.DEFAULT_DATABASE_URL, alias=contract.ENV_DATABASE_URL, min_length=1
    )
    # Enqueued work is pinned to this version: only workers running it will take it.
    application_version: str = Field(
        contract.APP_VERSION, alias=contract.ENV_APP_VERSION, min_length=1
    )
    host: str = Field("127.0.0.1", alias="API_HOST", min_length=1)
    port: int = Field(8000, alias="API_PORT", ge=1, le=65535)
    # /metrics on a port of its own (services.api.metrics_server); unset, on API_PORT.
    metrics_port: int | None = Field(None, alias="API_METRICS_PORT", ge=1, le=65535)
    db_pool_size: int = Field(5, alias="API_DB_POOL_SIZE", ge=1, le=100)
    # How long a request waits for a pooled connection, for a new connection, and for a
    # statement, before it answers 503 instead of hanging.
    db_pool_timeout_seconds: float = Field(5.0, alias="API_DB_POOL_TIMEOUT_SECONDS", gt=0, le=60)
    db_connect_timeout_seconds: int = Field(2, alias="API_DB_CONNECT_TIMEOUT_SECONDS", ge=1, le=60)
    db_statement_timeout_seconds: float = Field(
        10.0, alias="API_DB_STATEMENT_TIMEOUT_SECONDS", gt=0, le=600
    )
    # A worker silent for longer than this counts as dead (same variable the workers read).
    executor_grace_seconds: float = Field(
        contract.DEFAULT_EXECUTOR_GRACE_SECONDS,
        alias=contract.ENV_EXECUTOR_GRACE_SECONDS,
        ge=1,
        le=3600,
    )
    # Scrapes within this long of each other share one database read.
    metrics_cache_seconds: float = Field(2.0, alias="API_METRICS_CACHE_SECONDS", ge=0, le=60)
    # uvicorn processes; above 1, HTTP metrics are shared through PROMETHEUS_MULTIPROC_DIR.
    workers: int = Field(1, alias="API_WORKERS", ge=1, le=64)
    # Upper bound on a request's database work, whatever it waits for.
    request_timeout_seconds: float = Field(20.0, alias="API_REQUEST_TIMEOUT_SECONDS", gt=0, le=300)
    readiness_timeout_seconds: float = Field(1.0, alias="API_READINESS_TIMEOUT_SECONDS", gt=0)
    log_level: str = Field("INFO", alias="LOG_LEVEL", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    # One line per record: "text" to read in a terminal, "json" for a log pipeline (the chart).
    log_format: LogFormat = Field("text", alias="LOG_FORMAT")
    # Who may call it: "none" (anyone who reaches it: `make run`), or "tokens": bearer tokens
    # with roles from a file of digests (services.api.auth), which the chart mounts.
    # "jwt": JWTs of an identity provider (services.api.jwt_auth), and the tokens of
    # API_AUTH_TOKENS_FILE too when it is set (machines without the provider).
    auth: Literal["none", "tokens", "jwt"] = Field("none", alias="API_AUTH")
    auth_tokens_file: str | None = Field(None, alias="API_AUTH_TOKENS_FILE", min_length=1)
    jwt_issuer: str | None = Field(None, alias="API_AUTH_JWT_ISSUER", min_length=1)
    jwt_audience: str | None = Field(None, alias="API_AUTH_JWT_AUDIENCE", min_length=1)
    jwks_file: str | None = Field(None, alias="API_AUTH_JWKS_FILE", min_length=1)
    # https, but for a provider on the loopback (a local test).
    jwks_url: str | None = Field(
        None,
        alias="API_AUTH_JWKS_URL",
        pattern=r"^(https://|http://(127\.0\.0\.1|localhost|\[::1\])[:/])",
    )
    # How long the provider's keys are used before they are fetched again.
    jwks_cache_seconds: float = Field(300.0, alias="API_AUTH_JWKS_CACHE_SECONDS", ge=1, le=86400)
    jwt_name_claim: str = Field("sub", alias="API_AUTH_JWT_NAME_CLAIM", min_length=1)
    jwt_role_claim: str = Field("roles", alias="API_AUTH_JWT_ROLE_CLAIM", min_length=1)
    # Comma-separated values of the role claim that give each role.
    jwt_read_values: str = Field("read", alias="API_AUTH_JWT_READ_VALUES")
    jwt_operate_values: str = Field("operate", alias="API_AUTH_JWT_OPERATE_VALUES")

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        return contract.normalize_database_url(url)

    @model_validator(mode="after")
    def _metrics_port_is_its_own(self) -> Self:
        if self.metrics_port == self.port:
            raise ValueError("API_METRICS_PORT must differ from API_PORT (or be left unset)")
        return self

    @model_validator(mode="after")
    def _jwt_needs_its_provider(self) -> Self:
        if self.auth != "jwt":
            return self
        missing = [
            name
            for name, value in (
                ("API_AUTH_JWT_ISSUER", self.jwt_issuer),
                ("API_AUTH_JWT_AUDIENCE", self.jwt_audience),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"API_AUTH=jwt needs {' and '.join(missing)}")
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError(
                "API_AUTH=jwt needs exactly one of API_AUTH_JWKS_FILE and API_AUTH_JWKS_URL: "
                "where the provider's signing keys are"
            )
        return self

    @model_validator(mode="after")
    def _tokens_need_their_file(self) -> Self:
        if self.auth == "tokens" and self.auth_tokens_file is None:
            raise ValueError(
                "API_AUTH=tokens needs API_AUTH_TOKENS_FILE, the file of token digests "
                "(python -m services.api new-token makes a token and its line)"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ApiSettings":
        """Read the settings, or raise ValueError naming each bad variable (never its value)."""
        present = {k: v for k, v in environ.items() if v != ""}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            raise ValueError(f"invalid API configuration: {exc}") from None


def configure_logs(settings: ApiSettings) -> None:
    """The process's one log stream (services.contract.logs), its lines naming the API."""
    logs.configure(
        settings.log_level,
        settings.log_format,
        service="api",
        application_version=settings.application_version,
    )
