"""Settings come from the environment; bad values are named, secrets never echoed."""

import pytest

from services import contract
from services.api.settings import ApiSettings
from services.worker.settings import WorkerSettings

SECRET_URL = "postgresql://app:s3cret-pw@db:5432/dbos"


def test_worker_defaults() -> None:
    settings = WorkerSettings.from_env({})
    assert settings.database_url == contract.DEFAULT_DATABASE_URL
    assert settings.application_version == contract.APP_VERSION
    assert settings.executor_id not in ("", "local")
    # Unset, each queue takes its concurrency and polling interval from the registry.
    assert settings.worker_concurrency is None
    assert settings.polling_interval_seconds is None
    assert settings.queues is None


def test_worker_reads_dbos_variables() -> None:
    settings = WorkerSettings.from_env(
        {"DBOS_SYSTEM_DATABASE_URL": SECRET_URL, "DBOS__VMID": "pod-7", "DBOS__APPVERSION": "2"}
    )
    assert (settings.database_url, settings.executor_id, settings.application_version) == (
        SECRET_URL,
        "pod-7",
        "2",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "many"),
        ("WORKER_POLLING_INTERVAL_SECONDS", "0"),
        ("WORKER_DRAIN_TIMEOUT_SECONDS", "-1"),
        ("LOG_LEVEL", "LOUD"),
    ],
)
def test_worker_rejects_bad_values_by_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        WorkerSettings.from_env({"DBOS_SYSTEM_DATABASE_URL": SECRET_URL, variable: value})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(("variable", "value"), [("API_PORT", "70000"), ("API_DB_POOL_SIZE", "0")])
def test_api_rejects_bad_values_by_name(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable) as caught:
        ApiSettings.from_env({"DBOS_SYSTEM_DATABASE_URL": SECRET_URL, variable: value})
    assert "s3cret" not in str(caught.value)


def test_api_and_worker_pin_the_same_version_by_default() -> None:
    assert (
        ApiSettings.from_env({}).application_version
        == WorkerSettings.from_env({}).application_version
    )


def test_workers_on_one_host_get_distinct_executor_ids() -> None:
    first, second = WorkerSettings.from_env({}), WorkerSettings.from_env({})
    assert first.executor_id != second.executor_id


def test_grace_period_must_outlast_four_heartbeats() -> None:
    with pytest.raises(ValueError, match="EXECUTOR_GRACE_SECONDS"):
        WorkerSettings.from_env({"HEARTBEAT_INTERVAL_SECONDS": "5", "EXECUTOR_GRACE_SECONDS": "21"})
    settings = WorkerSettings.from_env(
        {"HEARTBEAT_INTERVAL_SECONDS": "5", "EXECUTOR_GRACE_SECONDS": "22"}
    )
    assert settings.executor_grace_seconds == 22
    # A heartbeat waits for nothing longer than its interval; two intervals without one break
    # the run of healthy heartbeats the reaper needs.
    assert settings.heartbeat_timeout_seconds < settings.heartbeat_interval_seconds
    assert settings.heartbeat_max_gap_seconds == 10


@pytest.mark.parametrize("variable", ["DBOS_SYSTEM_DATABASE_URL"])
@pytest.mark.parametrize("settings_class", [WorkerSettings, ApiSettings])
def test_postgres_urls_are_accepted_and_other_schemes_named(
    settings_class: type[WorkerSettings] | type[ApiSettings], variable: str
) -> None:
    settings = settings_class.from_env({variable: "postgres://app:secret-pw@db:5432/dbos"})
    assert settings.database_url == "postgresql://app:secret-pw@db:5432/dbos"
    for bad in ("mysql://app:secret-pw@db/dbos", "app:secret-pw@db/dbos"):
        with pytest.raises(ValueError, match=variable) as raised:
            settings_class.from_env({variable: bad})
        assert "secret-pw" not in str(raised.value)
