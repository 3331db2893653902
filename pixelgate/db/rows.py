"""Records as plain rows, for the statements on every request's path.

The ORM's unit of work (objects added, flushed, refreshed) costs far more per row than the
statement it sends; the hot path of a job (accept, claim, end) writes its rows with Core
statements on the same tables and builds records, with their constructors, from the rows it
reads back. The records it returns are ordinary, transient `tables` objects.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Row, Table, inspect
from sqlalchemy.dialects import postgresql, sqlite

from pixelgate.db.tables import Base

R = TypeVar("R", bound=Base)

_COLUMNS: dict[type[Base], list[tuple[str, str]]] = {}


def _columns(kind: type[Base]) -> list[tuple[str, str]]:
    """(attribute, column key) of every column of a record class."""
    known = _COLUMNS.get(kind)
    if known is None:
        known = [(prop.key, prop.columns[0].key) for prop in inspect(kind).column_attrs]
        _COLUMNS[kind] = known
    return known


def table(kind: type[Base]) -> Table:
    result = kind.__table__
    assert isinstance(result, Table)
    return result


def column_key(kind: type[Base], attribute: str) -> str:
    """The column key behind an attribute (`metadata_` → `metadata`)."""
    for name, key in _columns(kind):
        if name == attribute:
            return key
    raise KeyError(attribute)


def values_of(record: Base) -> dict[str, Any]:
    """The record's set attributes, by column key, for an INSERT: an unset one is left to the
    column's default."""
    state = inspect(record).dict
    return {key: state[name] for name, key in _columns(type(record)) if name in state}


def from_row(kind: type[R], row: Row[Any]) -> R:
    """A record from a row of all its table's columns."""
    mapping = row._mapping
    return kind(**{name: mapping[key] for name, key in _columns(kind)})


def conflict_insert(target: Table, dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `target` that can say what a conflict does (`ON CONFLICT`), in the
    dialect of the database: PostgreSQL's or SQLite's, the two pixelgate runs on."""
    return postgresql.insert(target) if dialect == "postgresql" else sqlite.insert(target)
