"""Alembic environment for outreach: runs on the connection that `outreach.db.upgrade` passes in."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from outreach.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL for `alembic upgrade --sql` (needs sqlalchemy.url or DATABASE_URL)."""
    url = config.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"]
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate on the caller's connection, or on a fresh engine when run from the alembic CLI."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from outreach.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
