"""Trigger capture (pure SQL generation): row changes in a monolith table become outbox rows
in the same transaction, with no change to the monolith's code.

``strangler outbox install-triggers`` runs :func:`install_sql` on the monolith's
PostgreSQL database (the outbox table must live there too, which is what makes
it the same transaction); ``uninstall-triggers`` runs :func:`uninstall_sql`.  A
rolled-back transaction leaves no row; a committed one leaves one per row change.

A transaction that sets ``strangler.origin`` (:mod:`strangler_events.origin`: the
reverse sync's writes, applying a new service's events) leaves no row: capturing it
would echo the service's own change back to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strangler_events.origin import ORIGIN_SETTING

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TriggerError(ValueError):
    pass


def _quote(name: str, what: str) -> str:
    if not _IDENT.fullmatch(name):
        raise TriggerError(f"invalid {what} {name!r}: expected letters, digits and '_'")
    return f'"{name}"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class TriggerSpec:
    table: str  # table or schema.table
    aggregate: str
    id_column: str
    created: str
    updated: str
    deleted: str

    @classmethod
    def build(cls, table: str, aggregate: str, id_column: str, events: str | None) -> TriggerSpec:
        base = "".join(part.capitalize() for part in re.split(r"[_\-.]", aggregate))
        names = [base + "Created", base + "Updated", base + "Deleted"]
        if events:
            given = [e.strip() for e in events.split(",")]
            if len(given) != 3 or not all(given):
                raise TriggerError("--events takes three names: CREATED,UPDATED,DELETED")
            names = given
        return cls(table, aggregate, id_column, *names)

    @property
    def qualified(self) -> str:
        parts = self.table.split(".")
        if len(parts) > 2:
            raise TriggerError(f"invalid table {self.table!r}: expected table or schema.table")
        return ".".join(_quote(p, "table name") for p in parts)

    @property
    def function(self) -> str:
        return _quote("strangler_capture_" + self.table.replace(".", "_"), "table name")


def install_sql(spec: TriggerSpec) -> str:
    _quote(spec.id_column, "id column")
    return f"""
CREATE OR REPLACE FUNCTION {spec.function}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    after_row  jsonb;
    before_row jsonb;
    kind       text;
BEGIN
    IF coalesce(current_setting({_literal(ORIGIN_SETTING)}, true), '') <> '' THEN
        RETURN NULL;  -- a reverse-sync write: not captured (no echo)
    END IF;
    IF TG_OP = 'INSERT' THEN
        after_row := to_jsonb(NEW); kind := {_literal(spec.created)};
    ELSIF TG_OP = 'UPDATE' THEN
        after_row := to_jsonb(NEW); before_row := to_jsonb(OLD); kind := {_literal(spec.updated)};
    ELSE
        before_row := to_jsonb(OLD); kind := {_literal(spec.deleted)};
    END IF;
    INSERT INTO strangler_outbox (id, aggregatetype, aggregateid, type, payload, headers)
    VALUES (
        gen_random_uuid(),
        {_literal(spec.aggregate)},
        coalesce(after_row, before_row) ->> {_literal(spec.id_column)},
        kind,
        jsonb_build_object('row', after_row, 'before', before_row),
        jsonb_build_object('source', 'trigger', 'schema_version', 1,
                           'table', TG_TABLE_NAME, 'txid', txid_current())
    );
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS strangler_capture ON {spec.qualified};
CREATE TRIGGER strangler_capture AFTER INSERT OR UPDATE OR DELETE ON {spec.qualified}
    FOR EACH ROW EXECUTE FUNCTION {spec.function}();
"""


def uninstall_sql(table: str) -> str:
    spec = TriggerSpec(table, "x", "id", "a", "b", "c")
    return (
        f"DROP TRIGGER IF EXISTS strangler_capture ON {spec.qualified};\n"
        f"DROP FUNCTION IF EXISTS {spec.function}();\n"
    )
