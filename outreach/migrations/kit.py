"""Shared pieces of the migrations: a table's columns as one spec string, and SQLite's table copy.

A spec lists `name:type` pairs separated by spaces; a trailing `?` makes the column nullable.
Types: `s<N>` (VARCHAR(N)), `text`, `int`, `bigint`, `float`, `bool`, `date`, `ts` (timestamp with
time zone). tests/test_db.py checks that the migrated schema equals outreach.models, on SQLite and
PostgreSQL, so a spec that drifts from the models fails there.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

_TYPES = {
    "text": sa.Text, "int": sa.Integer, "bigint": sa.BigInteger, "float": sa.Float,
    "bool": sa.Boolean, "date": sa.Date,
}


def column_type(token: str) -> sa.types.TypeEngine:
    """The SQLAlchemy type a spec token names."""
    if token == "ts":
        return sa.DateTime(timezone=True)
    if token.startswith("s") and token[1:].isdigit():
        return sa.String(length=int(token[1:]))
    return _TYPES[token]()


def columns(spec: str) -> list[sa.Column]:
    """`"id:s64 note:text?"` → the columns, in order."""
    out = []
    for item in spec.split():
        name, token = item.split(":")
        nullable = token.endswith("?")
        out.append(sa.Column(name, column_type(token.rstrip("?")), nullable=nullable))
    return out


def create_table(name: str, spec: str, *constraints: sa.schema.SchemaItem, pk: Sequence[str] = ("id",)) -> None:
    """Create a table from its spec, with a primary key named by the naming convention."""
    op.create_table(name, *columns(spec), *constraints, sa.PrimaryKeyConstraint(*pk, name=op.f(f"pk_{name}")))


def check_in(column: str, values: Sequence[str]) -> str:
    """The SQL of a CHECK that `column` holds one of `values`."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


@contextmanager
def broadcast_copy(tag: str) -> Iterator[None]:
    """Around a batch change of `broadcast`, keep broadcast_script's rows on SQLite.

    SQLite alters a table by copying it; with foreign keys on (they cannot be switched off inside the
    migration's transaction) dropping the old copy cascades into broadcast_script, so its rows are
    kept aside and put back.
    """
    sqlite = op.get_bind().dialect.name == "sqlite"
    keep = f"keep_broadcast_script_{tag}"
    if sqlite:
        op.execute(f"CREATE TEMP TABLE {keep} AS SELECT * FROM broadcast_script")
    yield
    if sqlite:
        op.execute(f"INSERT OR IGNORE INTO broadcast_script SELECT * FROM {keep}")
        op.execute(f"DROP TABLE {keep}")
