"""Statements for hot paths: single-row INSERTs without the unit of work, and statements compiled once per
dialect and run through the driver.

`insert_row(session, obj)` writes a new ORM object (every column: the values set on it, else the column's
default, else NULL) with one `INSERT ... RETURNING id` compiled once per table, then hands it to the session
as the persistent row it now is, with every attribute loaded, so nothing reads it back. It saves the ORM
flush's bookkeeping (about a fifth of a millisecond per row), which matters where one request writes a
few rows and is measured (intake). The object must be new (never added to a session), have an integer
`id` primary key and attributes named like its columns; relationships are not written (set foreign key
columns instead). Everything else should simply `session.add()` and flush. `build_row(Model, values)` makes
such an object without the mapped constructor's per-attribute bookkeeping.

`Prepared(statement)` is a Core statement whose SQL text, parameter order and bind processors are worked
out once per dialect; `execute(session, params)` sends it with the connection's `exec_driver_sql`, in the
session's transaction. The engine's statement hooks still fire (logging, statement counts in tests) but
SQLAlchemy's per-call work — compiled-cache look-up, parameter construction, result metadata — is skipped:
about 15 µs a statement, for the handful every intake runs. Parameters are given by name; values compiled
into the statement keep theirs. Rows come back as the driver returns them: convert columns whose Python
type differs from the driver's (datetimes on SQLite) with `result_processor`. Statements whose SQL depends
on the parameters (expanding IN lists) are refused.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Table, insert
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.orm import Session, class_mapper, make_transient_to_detached
from sqlalchemy.sql.schema import CallableColumnDefault
from sqlalchemy.types import TypeEngine

T = TypeVar("T")

_LOCK = threading.Lock()


class _Plan(NamedTuple):
    sql: str
    positional: bool
    # (name in the SQL, the caller's key, the value compiled in, bind processor) in the SQL's order
    binds: list[tuple[str, str, Any, Any]]
    required: frozenset[str]  # the keys a caller must give


class Prepared:
    """A statement compiled once per dialect and run through the driver (see the module docstring)."""

    def __init__(self, statement: Any, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.keys = list(keys) if keys is not None else None  # the columns an INSERT/UPDATE sets
        self._plans: dict[tuple[str, str], _Plan] = {}

    def _plan(self, dialect: Dialect) -> _Plan:
        compiled = self.statement.compile(dialect=dialect, column_keys=self.keys)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a prepared statement cannot have expanding or literal-execute parameters")
        positional = bool(compiled.positional)
        rendered = compiled.positiontup if positional else dict.fromkeys(compiled.bind_names.values())
        names = list(rendered or ())
        binds = []
        required = set()
        for name in names:
            bind = compiled.binds[name]
            if bind.callable is not None:
                raise ValueError(f"a prepared statement cannot have a callable parameter ({name})")
            if bind.required:
                required.add(bind.key)
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((compiled.escaped_bind_names.get(name, name), bind.key, bind.value, processor))
        return _Plan(compiled.string, positional, binds, frozenset(required))

    def execute(self, session: Session, params: Mapping[str, Any]) -> CursorResult[Any]:
        """Run the statement in the session's transaction with `params` (by name); return its result."""
        connection = session.connection()
        dialect = connection.dialect
        slot = (dialect.name, dialect.driver)
        plan = self._plans.get(slot)
        if plan is None:
            plan = self._plans[slot] = self._plan(dialect)
        if not plan.required <= params.keys():
            missing = ", ".join(sorted(plan.required - params.keys()))
            raise KeyError(f"parameters missing for a prepared statement: {missing}")
        get = params.get
        if plan.positional:
            values: Any = tuple(
                [proc(get(key, static)) if proc else get(key, static) for _n, key, static, proc in plan.binds]
            )
        else:
            values = {
                name: proc(get(key, static)) if proc else get(key, static)
                for name, key, static, proc in plan.binds
            }
        return connection.exec_driver_sql(plan.sql, values)


def result_processor(session: Session, type_: TypeEngine[Any]) -> Any:
    """Return the function turning a driver value of `type_` into its Python value (None: as is)."""
    dialect = session.get_bind().dialect
    return type_.dialect_impl(dialect).result_processor(dialect, None)


_PLANS: dict[Table, tuple[Prepared, list[tuple[str, Any]]]] = {}


def _plan(table: Table) -> tuple[Prepared, list[tuple[str, Any]]]:
    """The table's INSERT and its columns with their defaults (a scalar, a callable, or none)."""
    plan = _PLANS.get(table)
    if plan is None:
        columns = []
        for column in table.columns:
            if column.primary_key:
                continue
            default = column.default
            if default is None:
                columns.append((column.key, None))
            elif default.is_scalar:
                columns.append((column.key, default.arg))  # type: ignore[attr-defined]
            else:
                columns.append((column.key, default))
        statement = Prepared(insert(table).returning(table.c.id), [key for key, _default in columns])
        plan = (statement, columns)
        with _LOCK:
            _PLANS[table] = plan
    return plan


def build_row(cls: type[T], values: Mapping[str, Any]) -> T:
    """Return an instance of the mapped class holding `values` as if loaded (no constructor, no change
    events): for an object `insert_row` writes next, where the constructor's per-attribute events are
    the slowest part of making it."""
    obj = class_mapper(cls).class_manager.new_instance()
    obj.__dict__.update(values)
    return obj  # type: ignore[no-any-return]


def insert_row(session: Session, obj: T) -> T:
    """Insert the new object `obj` with one statement and attach it to the session; return it."""
    statement, columns = _plan(obj.__table__)  # type: ignore[attr-defined]
    # Unset columns take their defaults straight into the instance dict: the object is about to be
    # handed over as loaded, so there is no change history to keep.
    state = obj.__dict__
    values: dict[str, Any] = {}
    for key, default in columns:
        if key in state:
            values[key] = state[key]
        else:
            value = default.arg(None) if isinstance(default, CallableColumnDefault) else default
            state[key] = values[key] = value
    state["id"] = statement.execute(session, values).scalar_one()
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
