"""`python -m services.worker versions`: each application version, the work it still has and
the workers running it, and whether its workers can be removed.

A version's workers can go once no work of it is queued, running or delayed (DBOS runs a
workflow only on workers of its own version: work left behind would be stranded), and it is
not DBOS's latest version (work enqueued without a version goes to the latest).
"""

import json
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from dbos import DBOSClient

from services.contract import APP_NAME
from services.contract import fleet as rules
from services.contract.dbos_tables import QUEUED_STATUSES, now_ms, with_schemas, workflow_status
from services.worker import database
from services.worker.settings import WorkerSettings

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class VersionReport:
    version: str
    latest: bool
    enqueued: int
    pending: int
    delayed: int
    live_workers: int

    @property
    def removable(self) -> bool:
        return not self.latest and self.enqueued + self.pending + self.delayed == 0

    def reason(self) -> str:
        if self.latest:
            return "no: the latest version (work enqueued without a version goes to it)"
        left = self.enqueued + self.pending + self.delayed
        return f"no: {left} workflows still to run" if left else "yes"


def report(settings: WorkerSettings) -> list[VersionReport]:
    """Every version DBOS knows or the database holds work or live workers of, newest first."""
    client = DBOSClient(system_database_url=settings.database_url, application_name=APP_NAME)
    try:
        known = [v["version_name"] for v in client.list_application_versions()]
        latest_version = client.get_latest_application_version()
        latest = latest_version["version_name"] if latest_version else None
    finally:
        client.destroy()
    engine = with_schemas(
        database.create_engine(settings.database_url, pool_size=1, timeout_seconds=TIMEOUT_SECONDS)
    )
    ws, hb = workflow_status, rules.heartbeats
    grace_ms = int(settings.executor_grace_seconds * 1000)
    try:
        with engine.connect() as conn:
            work = conn.execute(
                sa.select(ws.c.application_version, ws.c.status, sa.func.count())
                .where(ws.c.status.in_(QUEUED_STATUSES))
                .group_by(ws.c.application_version, ws.c.status)
            ).all()
            now = sa.literal(int(conn.execute(sa.select(now_ms(engine))).scalar_one()))
            live: dict[str, int] = dict(
                conn.execute(
                    sa.select(hb.c.application_version, sa.func.count())
                    .where(rules.is_alive(now, grace_ms))
                    .group_by(hb.c.application_version)
                ).all()
            )
    finally:
        engine.dispose()
    counts: dict[tuple[str, str], int] = {(str(v), s): int(n) for v, s, n in work if v}
    versions = list(dict.fromkeys([*known, *(v for v, _ in counts), *live]))
    return [
        VersionReport(
            version=version,
            latest=version == latest,
            enqueued=counts.get((version, "ENQUEUED"), 0),
            pending=counts.get((version, "PENDING"), 0),
            delayed=counts.get((version, "DELAYED"), 0),
            live_workers=int(live.get(version, 0)),
        )
        for version in versions
    ]


def render(reports: list[VersionReport], as_json: bool) -> str:
    if as_json:
        return json.dumps([{**asdict(r), "removable": r.removable} for r in reports], indent=1)
    header = ("version", "latest", "queued", "running", "delayed", "live workers", "removable")
    rows = [
        (
            r.version,
            "yes" if r.latest else "",
            str(r.enqueued),
            str(r.pending),
            str(r.delayed),
            str(r.live_workers),
            r.reason(),
        )
        for r in reports
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )
