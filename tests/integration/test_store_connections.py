"""The API's reads hand their pooled connections back as they found them."""

import pytest

from services.api import database
from services.api.settings import ApiSettings
from services.api.store import Store
from tests.conftest import BACKENDS, NewDatabase


@pytest.mark.parametrize("backend", BACKENDS)
def test_reads_leave_the_pooled_connection_as_writers_need_it(
    backend: str, new_migrated_database: NewDatabase
) -> None:
    settings = ApiSettings.model_validate(
        {"DBOS_SYSTEM_DATABASE_URL": new_migrated_database(backend), "API_DB_POOL_SIZE": "1"}
    )
    engine = database.create_engine(settings)
    try:
        store = Store(engine)
        assert store.list_page(50, None) == []
        assert store.get("missing") is None
        raw = engine.raw_connection()  # the pool's only connection
        try:
            driver = raw.driver_connection
            if backend == "sqlite":
                # DBOS's rule for SQLite writers: BEGIN IMMEDIATE, never a deferred BEGIN.
                assert driver.isolation_level == "IMMEDIATE"  # type: ignore[union-attr]
            else:
                assert driver.autocommit is False  # type: ignore[union-attr]
        finally:
            raw.close()
    finally:
        engine.dispose()
