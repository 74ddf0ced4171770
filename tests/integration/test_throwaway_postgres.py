"""The tests' own PostgreSQL server: frozen, it hangs what is sent to it; thawed, it answers."""

import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.databases import STOPPED_OR_DEAD, ThrowawayPostgres

pytestmark = pytest.mark.postgres


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


def test_a_frozen_server_hangs_a_query_until_it_is_thawed(
    throwaway_postgres: ThrowawayPostgres,
) -> None:
    server = throwaway_postgres
    assert server.port != 55432  # picked free, not fixed
    conn = psycopg.connect(server.url, autocommit=True, connect_timeout=10)
    try:
        _freeze_and_thaw(server, conn)
    finally:
        conn.close()
    with psycopg.connect(server.url, connect_timeout=10) as fresh:
        assert fresh.execute("SELECT 1").fetchone() == (1,)


def _freeze_and_thaw(server: ThrowawayPostgres, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    backend = int(row[0])
    pids = server.pids()
    assert backend in pids[1:], (backend, pids)  # the postmaster first, then its processes

    answered = threading.Event()
    answers: list[int] = []

    def query() -> None:
        row = conn.execute("SELECT 42").fetchone()
        assert row is not None
        answers.append(int(row[0]))
        answered.set()

    server.freeze()
    try:
        assert all(_state(pid) in STOPPED_OR_DEAD for pid in pids), {p: _state(p) for p in pids}
        thread = threading.Thread(target=query, daemon=True)
        thread.start()
        assert not answered.wait(1.0), "the query was answered by a frozen server"
    finally:
        server.thaw()
    assert answered.wait(10), "the query was not answered after the server was thawed"
    thread.join(timeout=10)
    assert answers == [42]
    assert all(_state(pid) != "T" for pid in server.pids())
