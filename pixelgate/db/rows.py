"""Records as plain rows, for the statements on every request's path.

The ORM's unit of work (objects added, flushed, refreshed) costs far more per row than the
statement it sends; the hot path of a job (accept, claim, end) writes its rows with Core
statements on the same tables and builds records from the rows it reads back. The records
it returns are ordinary, detached `tables` objects.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Row, Table, inspect

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
    """The record's set attributes, by column key, for an INSERT."""
    state = record.__dict__
    return {key: state[name] for name, key in _columns(type(record)) if name in state}


def new_record(kind: type[R], **values: Any) -> R:
    """A record holding `values` (by attribute), as `kind(**values)` makes it: transient,
    unset attributes read as None, its INSERT takes `values_of` it. Made without the ORM's
    attribute event per value, which costs ten times more than the rest."""
    record: R = _manager(kind).new_instance()
    record.__dict__.update(values)
    return record


def from_row(kind: type[R], row: Row[Any]) -> R:
    """A detached record from a row of all its table's columns."""
    mapping = row._mapping
    return new_record(kind, **{name: mapping[key] for name, key in _columns(kind)})


def _manager(kind: type[Base]) -> Any:
    return inspect(kind).class_manager
