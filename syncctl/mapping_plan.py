"""A mapping in words, for `syncctl mapping plan` and `show`: the customer table, its key and how
a new one is made, where the tritonX number and the version guard live, the columns tritonX owns
and their sources, the create-only columns, the related tables and their rule, the declared
references, the fields not stored and the grants still needed. Literals are the mapping's own
(configuration, never data)."""

from __future__ import annotations

import json
import re

from syncctl.mapping import Mapping, Scalar, Source, Table

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")

_KEY_MADE = {
    "identity": "its identity column",
    "default": "its column default",
    "uuid": "pg_catalog.gen_random_uuid()",
}


def identifier(name: str) -> str:
    """A name as PostgreSQL prints it: quoted unless lower-case plain."""
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{identifier(schema)}.{identifier(table)}"


def literal(value: Scalar | None) -> str:
    """A literal as TOML writes it (None: NULL)."""
    return "NULL" if value is None else json.dumps(value)


def source_text(source: Source) -> str:
    """A source expression in words."""
    fields = list(source.fields)
    if source.form == "join":
        text = f"{' + '.join(fields)} joined by {literal(source.separator)}"
    elif source.form == "first_of":
        text = f"the first of {', '.join(fields)} that is not NULL"
    elif source.form == "codes":
        codes = ", ".join(f"{literal(k)} -> {literal(v)}" for k, v in (source.codes or {}).items())
        text = f"{fields[0]} coded ({codes}; any other -> {literal(source.other)})"
    elif source.form == "boolean":
        text = f"{fields[0]} as {literal(source.true)} / {literal(source.false)}"
    elif source.form == "format":
        text = f"{fields[0]} formatted {literal(source.format)}"
    else:
        text = fields[0]
    if source.null_as is not None:
        text += f", NULL as {literal(source.null_as)}"
    return text


def _key(table: Table) -> str:
    made = _KEY_MADE.get(table.key_generate, f"nextval of {table.key_sequence}")
    return f"key {identifier(table.key)}, a new one from {made}"


def _columns(table: Table, indent: str) -> list[str]:
    lines = []
    width = max((len(identifier(c)) for c in table.columns), default=0)
    for column, source in table.columns.items():
        lines.append(f"{indent}{identifier(column):<{width}}  <- {source_text(source)}")
    if table.create:
        created = ", ".join(f"{identifier(c)} = {literal(v)}" for c, v in table.create.items())
        lines.append(f"{indent}written only when tritonX creates the row: {created}")
    return lines


def _retention_facts(mapping: Mapping) -> str:
    """The [gdpr] declarations in words: what retention policies count from."""
    facts = mapping.gdpr
    named = [
        f"{label} {identifier(column)}"
        for label, column in (
            ("created", facts.created_column),
            ("last activity", facts.last_activity_column),
            ("group", facts.group_column),
        )
        if column
    ]
    order = facts.last_order
    if order is not None:
        named.append(
            f"last order {qualified(order.schema, order.table)}.{identifier(order.column)}"
        )
    return ", ".join(named) or "nothing declared (policies needing a fact are refused)"


def summary(mapping: Mapping, grants: list[str] | None = None) -> list[str]:
    """The plan's lines; `grants` are the GRANT statements the check found missing (None: not
    checked, no line about grants)."""
    customer = mapping.customer
    lines = [
        f"customer table: {qualified(customer.schema, customer.table)}, {_key(customer)}",
        "tritonX number: "
        + (
            f"column {identifier(mapping.number_column)}"
            if mapping.number_column
            else "sync.customer_link (no column of the shop's)"
        ),
        "version guard:  "
        + (
            f"column {identifier(mapping.version_column)}"
            if mapping.version_column
            else "sync.customer_link (no column of the shop's)"
        ),
        "columns tritonX owns (every applied snapshot overwrites them):",
        *_columns(customer, "  "),
        "every other column of the customer table is the shop's: never written",
    ]
    for related in mapping.related:
        via = related.via
        if via is not None and via.customer_column:
            how = f"the customer's {identifier(via.customer_column)} points to it"
        elif via is not None and via.column:
            how = f"its {identifier(via.column)} points to the customer"
            if via.kind is not None:
                how += f", one row per customer with {identifier(via.kind.column)} = "
                how += literal(via.kind.value)
        else:
            how = "?"
        lines += [
            f"related {related.name}: {qualified(related.schema, related.table)}, "
            f"{_key(related)}; {how}",
            "  on anonymise: scrubbed when only this customer uses it, detached otherwise",
            *_columns(related, "  "),
        ]
    for reference in mapping.references:
        lines.append(
            f"declared reference (no foreign key): "
            f"{qualified(reference.schema, reference.table)}.{identifier(reference.column)}"
        )
    lines.append(f"not stored: {', '.join(mapping.not_stored) or 'none'}")
    lines.append("retention counts from ([gdpr]): " + _retention_facts(mapping))
    if grants:
        lines += ["grants needed (run as the tables' owner):", *(f"  {g}" for g in grants)]
    elif grants is not None:
        lines.append("grants needed: none")
    return lines
