"""The listing's plan on PostgreSQL: the page is chosen first, its inputs and events joined after.

A fresh deployment hit by a burst has tables without statistics: with the joins planned over
every row, the first page read the whole history (sequential scans, a join of every row to its
inputs, then a sort) and degraded to 503 under load. The plan must not depend on statistics.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from services.api.listing import (
    PLANNED_WITHOUT_SORTS,
    SORT_FREE_STATUSES,
    PageFilter,
    PageKey,
    page_query,
    plan_pages_without_sorting,
)
from services.contract.dbos_tables import with_schemas
from tests.conftest import NewDatabase
from tests.support.history import insert_workflows

TABLES = ("workflow_status", "workflow_input", "workflow_events")
JOINS = ("Nested Loop", "Hash Join", "Merge Join")


@pytest.fixture(scope="module")
def history(new_migrated_database: NewDatabase) -> Iterator[sa.Engine]:
    """20,000 finished and 20,000 queued workflows, never analyzed (autovacuum off on them)."""
    url = new_migrated_database("postgres")
    engine = with_schemas(sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg")))
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(f"ALTER TABLE dbos.{table} SET (autovacuum_enabled = off)"))
    insert_workflows(url, finished=20_000, enqueued=20_000, analyze=False)
    yield engine
    engine.dispose()


def _never_analyzed(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        analyzed: int = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'dbos' "
                "AND relname = ANY(:tables) "
                "AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)"
            ),
            {"tables": list(TABLES)},
        ).scalar_one()
    return analyzed == 0


def _plan(engine: sa.Engine, status: str | None, query: sa.Select[Any]) -> dict[str, Any]:
    translate = engine.get_execution_options()["schema_translate_map"]
    sql = query.compile(
        dialect=engine.dialect,
        schema_translate_map=translate,
        render_schema_translate=True,
        compile_kwargs={"literal_binds": True},
    ).string
    with engine.connect() as conn:
        if status in PLANNED_WITHOUT_SORTS:  # as Store.list_page plans it
            plan_pages_without_sorting(conn)
        document = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    explained = document if isinstance(document, list) else json.loads(document)
    plan: dict[str, Any] = explained[0]["Plan"]
    return plan


def _paths(
    node: dict[str, Any], above: tuple[dict[str, Any], ...] = ()
) -> Iterator[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]:
    """Every node with the nodes above it, root first."""
    yield node, above
    for child in node.get("Plans", []):
        yield from _paths(child, (*above, node))


def _assert_limit_first(plan: dict[str, Any], sort_free: bool = True) -> None:
    text = json.dumps(plan, indent=1)
    scans: dict[str, list[tuple[dict[str, Any], tuple[dict[str, Any], ...]]]] = {
        name: [] for name in TABLES
    }
    for node, above in _paths(plan):
        if node.get("Relation Name") in scans:
            scans[node["Relation Name"]].append((node, above))
    assert len(scans["workflow_status"]) == 1, text
    _, above = scans["workflow_status"][0]
    joins = [i for i, node in enumerate(above) if node["Node Type"] in JOINS]
    limits = [i for i, node in enumerate(above) if node["Node Type"] == "Limit"]
    assert limits and (not joins or max(limits) > max(joins)), (
        "the page's rows are not limited before the joins:\n" + text
    )
    if not sort_free:
        return
    # Read in order from an index: no sort of everything that matches (an incremental sort
    # of rows already in created_at order only orders equal timestamps).
    status_scan, _ = scans["workflow_status"][0]
    assert status_scan["Node Type"] in ("Index Scan", "Index Only Scan"), (
        f"workflow_status is read with a {status_scan['Node Type']}:\n{text}"
    )
    assert not [n for n in above[max(limits) :] if n["Node Type"] == "Sort"], (
        "the page's rows are sorted after being read:\n" + text
    )
    for name in ("workflow_input", "workflow_events"):
        for node, _ in scans[name]:
            assert node["Node Type"] in ("Index Scan", "Index Only Scan"), (
                f"{name} is read with a {node['Node Type']}, not by the page's keys:\n{text}"
            )


CASES = {
    "first page": (None, None),
    "queued": (None, "ENQUEUED"),
    "finished": (None, "SUCCESS"),
    "next page": (PageKey(created_at_ms=2**62, workflow_id="z"), None),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_page_is_limited_before_its_inputs_and_events_are_joined(
    history: sa.Engine, case: str
) -> None:
    assert _never_analyzed(history), "the tables were analyzed: the premise of the test is gone"
    after, status = CASES[case]
    plan = _plan(history, status, page_query(50, after, PageFilter(status)))
    _assert_limit_first(plan, sort_free=status in SORT_FREE_STATUSES)


def test_the_plan_holds_once_analyzed(history: sa.Engine) -> None:
    with history.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in TABLES:
            conn.execute(sa.text(f"ANALYZE dbos.{table}"))
    for after, status in CASES.values():
        plan = _plan(history, status, page_query(50, after, PageFilter(status)))
        _assert_limit_first(plan, sort_free=status in SORT_FREE_STATUSES)
