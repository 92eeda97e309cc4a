"""The alert delivery log: one row per webhook POST or e-mail, with what became of it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from churnrisk.store.database import Database
from churnrisk.store.errors import InvalidQueryError
from churnrisk.store.schema import alert_deliveries


@dataclass(frozen=True)
class LoggedDelivery:
    """A delivery as the log holds it."""

    delivery_id: int
    run_id: str | None
    channel: str
    target: str
    status: str
    attempts: int
    detail: str
    alerts: int
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the delivery as JSON values."""
        return self.__dict__ | {"at": self.at.isoformat()}


class DeliveryLog:
    """Alert deliveries in a score store's database (schema at head)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, run_id: str | None, deliveries: Iterable[Mapping[str, Any]]) -> int:
        """Append deliveries of one run's alerts; return how many were logged.

        Each delivery has ``channel``, ``target``, ``status``, ``attempts``, ``detail``
        (kept to its first 500 characters), ``alerts`` and ``at``, as
        :class:`churnrisk.alerts.Delivery` holds them.
        """
        rows = [
            {
                "run_id": run_id,
                **{k: d[k] for k in ("channel", "target", "status", "attempts", "alerts", "at")},
                "detail": str(d["detail"])[:500],
            }
            for d in deliveries
        ]
        if rows:
            with self._database.errors("log alert deliveries"), self._database.writer.begin() as c:
                c.execute(alert_deliveries.insert(), rows)
        return len(rows)

    def recent(self, limit: int = 50) -> list[LoggedDelivery]:
        """Return the latest deliveries, newest first."""
        if limit < 1:
            raise InvalidQueryError(f"limit must be >= 1, got {limit}")
        stmt = (
            sa.select(alert_deliveries)
            .order_by(alert_deliveries.c.at.desc(), alert_deliveries.c.delivery_id.desc())
            .limit(limit)
        )
        with self._database.errors("read alert deliveries"), self._database.engine.connect() as c:
            return [LoggedDelivery(**r._mapping) for r in c.execute(stmt)]
