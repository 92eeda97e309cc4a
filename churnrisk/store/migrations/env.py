"""Alembic environment of the score store.

Run through :meth:`churnrisk.store.ScoreStore.upgrade`, which builds the Alembic
``Config`` in code and passes an open connection in ``config.attributes["connection"]``;
there is no ``alembic.ini``. The version table is ``churnrisk_store_version``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from churnrisk.errors import ConfigError
from churnrisk.store.schema import VERSION_TABLE, metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades (several workers starting at once).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7261504938)")
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise ConfigError(
        "the score store's migrations run through `churnrisk store upgrade` "
        "(ScoreStore.upgrade), not the alembic command line"
    )
_run(connection)
