"""The mapping file (format 1, docs/mapping.md): one TOML file that binds the engine to a shop's
customer table. `load` reads it with tomllib, checks its SHAPE (keys, value types, transforms,
labels) and returns a typed `Mapping` that also keeps the plain dict: that dict, as JSON, is the
document the database checks (sync.mapping_defects), compiles and stores. Whether the mapping
fits the live catalog is the database's to say (syncctl.mapping_catalog).

Every problem reads `FILE:LINE: path: problem`: tomllib keeps no line numbers, so `Locator`
scans the text for table headers and `key =` lines and maps a key path such as
`related[0].via.customer_column` to the line that defines it (or its nearest parent)."""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Iterator
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from syncctl.errors import MappingInvalid

Scalar = str | int | float | bool
KeyPath = tuple[str | int, ...]

REFERENCE = Path(__file__).resolve().parent / "mappings" / "reference.toml"

KEY_GENERATE = ("identity", "default", "uuid", "sequence")
ON_ANONYMISE = ("scrub_or_detach",)
LABEL = re.compile(r"[a-z_][a-z0-9_]{0,31}")
# "schema.sequence", each part exactly as in the catalog (no quoting, no further dot)
SEQUENCE = re.compile(r"[^.]+\.[^.]+")
IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1

_TOP = ("format", "customer", "related", "reference", "not_stored", "gdpr")
_CUSTOMER = (
    "schema",
    "table",
    "key",
    "key_generate",
    "key_sequence",
    "number",
    "version",
    "columns",
    "create",
)
_RELATED = (
    "name",
    "schema",
    "table",
    "key",
    "key_generate",
    "key_sequence",
    "via",
    "on_anonymise",
    "columns",
    "create",
)
_REFERENCE = ("schema", "table", "column")
_GDPR = ("created_column", "last_activity_column", "group_column", "last_order")
_LAST_ORDER = ("schema", "table", "column", "customer_column")
# the forms of a source expression: one of these keys makes it, the others modify a `field`
_FORMS = ("field", "join", "first_of")
_MODIFIERS = ("separator", "codes", "other", "true", "false", "format", "null_as")


# ---------------------------------------------------------------------------------------------
# The typed mapping
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A source expression: `form` is field, join, first_of, codes, boolean or format."""

    form: str
    fields: tuple[str, ...]
    separator: str = " "
    codes: MappingType[str, Scalar] | None = None
    other: Scalar | None = None
    true: Scalar | None = None
    false: Scalar | None = None
    format: str | None = None
    null_as: Scalar | None = None


@dataclass(frozen=True)
class Kind:
    column: str
    value: Scalar


@dataclass(frozen=True)
class Via:
    """How a related table joins the customer: the customer row points to it
    (`customer_column`) or it points to the customer (`column`, optionally per `kind`)."""

    customer_column: str | None = None
    column: str | None = None
    kind: Kind | None = None


@dataclass(frozen=True)
class Table:
    """The customer table or a related table (`name`, `via` and `on_anonymise` set)."""

    schema: str
    table: str
    key: str
    key_generate: str
    key_sequence: str | None
    columns: MappingType[str, Source]
    create: MappingType[str, Scalar]
    name: str | None = None
    via: Via | None = None
    on_anonymise: str | None = None


@dataclass(frozen=True)
class Reference:
    """A customer reference without a foreign key."""

    schema: str
    table: str
    column: str


@dataclass(frozen=True)
class LastOrder:
    """The table and date column of a customer's orders; `customer_column` names its customer
    column when it refers to the customer by more than one."""

    schema: str
    table: str
    column: str
    customer_column: str | None = None


@dataclass(frozen=True)
class Gdpr:
    """The facts retention policies count from ([gdpr], optional): columns of the customer
    table and the last order. None: not declared."""

    created_column: str | None = None
    last_activity_column: str | None = None
    group_column: str | None = None
    last_order: LastOrder | None = None


@dataclass(frozen=True)
class Mapping:
    """A loaded mapping: typed, plus the plain `document` the database receives as jsonb.
    `number_column` / `version_column` are None for "link" (sync.customer_link)."""

    file: str
    text: str
    document: dict[str, Any]
    customer: Table
    number_column: str | None
    version_column: str | None
    related: tuple[Table, ...]
    references: tuple[Reference, ...]
    not_stored: tuple[str, ...]
    gdpr: Gdpr = Gdpr()

    def json(self) -> str:
        return json.dumps(self.document)

    @cached_property
    def locator(self) -> Locator:
        return Locator(self.text)

    def line(self, path: str) -> int:
        """The line of the file that defines a key path (or its nearest parent)."""
        return self.locator.line(path)

    def where(self, path: str) -> str:
        """`FILE:LINE: path` for a key path of this mapping."""
        return f"{self.file}:{self.line(path)}: {path}"


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def load(path: Path, name: str | None = None) -> Mapping:
    """Read and check the mapping file at `path`; problems are `name` (default: the path as
    given) with the line. Raises MappingInvalid listing every problem found."""
    return parse(path.read_text(encoding="utf-8"), name or str(path))


def parse(text: str, file: str) -> Mapping:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingInvalid([_syntax_problem(file, text, exc)]) from exc
    return from_document(document, file, text)


def from_document(document: dict[str, Any], file: str, text: str = "") -> Mapping:
    """The typed mapping of a loaded (or stored) document; `text` is the TOML it was read from
    (for the lines of its problems; without it every problem is on line 1)."""
    shape = _Shape()
    mapping = shape.mapping(document, file, text)
    if shape.problems or mapping is None:
        locator = Locator(text)
        raise MappingInvalid(
            [f"{file}:{locator.line(p)}: {p}: {problem}" for p, problem in shape.problems]
        )
    return mapping


def _syntax_problem(file: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    # tomllib ends its message with "(at line N, column M)" or "(at end of document)"
    message = str(exc)
    found = re.search(r"\(at line (\d+), column \d+\)$", message)
    line = found.group(1) if found else str(max(1, len(text.splitlines())))
    reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)$", "", message)
    return f"{file}:{line}: toml: {reason}"


def path_text(path: KeyPath) -> str:
    """A key path as the database writes it: `related[0].via.customer_column`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Shape:
    """Collects (path, problem) pairs while building the typed mapping."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def fail(self, path: KeyPath, problem: str) -> None:
        self.problems.append((path_text(path), problem))

    def no_nul(self, value: Any, path: KeyPath) -> None:
        """PostgreSQL's text (and jsonb) cannot hold a NUL character: refuse one anywhere."""
        if isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    self.fail(path, "a key holds a NUL character")
                self.no_nul(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.no_nul(item, (*path, index))
        elif isinstance(value, str) and "\x00" in value:
            self.fail(path, "holds a NUL character")

    def table(self, value: Any, path: KeyPath, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.fail(path, "must be a table")
            return None
        for key in value:
            if key not in allowed:
                self.fail((*path, key), f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def string(self, table: dict[str, Any], key: str, path: KeyPath, required: bool = True) -> str:
        value = table.get(key)
        if value is None:
            if required:
                self.fail((*path, key), "is missing")
            return ""
        if not isinstance(value, str) or not value:
            self.fail((*path, key), "must be a non-empty string")
            return ""
        return value

    def identifier(self, table: dict[str, Any], key: str, path: KeyPath) -> str:
        value = self.string(table, key, path)
        self.name(value, (*path, key))
        return value

    def name(self, value: str, path: KeyPath) -> None:
        if len(value.encode()) > IDENTIFIER_BYTES:
            self.fail(path, f"is not a PostgreSQL identifier (at most {IDENTIFIER_BYTES} bytes)")

    def choice(
        self, table: dict[str, Any], key: str, path: KeyPath, choices: tuple[str, ...]
    ) -> str:
        value = self.string(table, key, path)
        if value and value not in choices:
            self.fail((*path, key), f"must be one of {', '.join(choices)}")
        return value

    def literal(self, value: Any, path: KeyPath) -> Scalar:
        if isinstance(value, bool | int | str):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        self.fail(path, "must be a literal: a string, integer, finite float or boolean")
        return ""

    def field_list(self, value: Any, path: KeyPath) -> tuple[str, ...]:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(f, str) and f for f in value)
        ):
            self.fail(path, "must be a non-empty array of field names")
            return ()
        return tuple(value)

    # -- the document ---------------------------------------------------------------------
    def mapping(self, document: dict[str, Any], file: str, text: str) -> Mapping | None:
        self.no_nul(document, ())
        self.table(document, (), _TOP)
        format_ = document.get("format")
        if format_ is None:
            self.fail(("format",), "is missing (format = 1)")
        elif type(format_) is not int or format_ != 1:
            self.fail(("format",), "must be 1 (the only format there is)")
        customer_spec = document.get("customer")
        if customer_spec is None:
            self.fail(("customer",), "is missing: the [customer] table")
            return None
        customer = self.shop_table(customer_spec, ("customer",), _CUSTOMER)
        spec = customer_spec if isinstance(customer_spec, dict) else {}
        number = self.placement(spec, "number", ("customer",))
        version = self.placement(spec, "version", ("customer",))
        related = self.related(document.get("related", []))
        references = self.references(document.get("reference", []))
        not_stored = self.not_stored(document.get("not_stored"))
        gdpr = self.gdpr(document.get("gdpr"))
        if customer is None:
            return None
        return Mapping(
            file, text, document, customer, number, version, related, references, not_stored, gdpr
        )

    def shop_table(self, value: Any, path: KeyPath, allowed: tuple[str, ...]) -> Table | None:
        spec = self.table(value, path, allowed)
        if spec is None:
            return None
        generate = self.choice(spec, "key_generate", path, KEY_GENERATE)
        sequence = self.string(spec, "key_sequence", path, required=generate == "sequence")
        if generate != "sequence" and "key_sequence" in spec:
            self.fail((*path, "key_sequence"), 'only with key_generate = "sequence"')
        elif sequence and not SEQUENCE.fullmatch(sequence):
            self.fail((*path, "key_sequence"), 'must be "schema.sequence"')
        return Table(
            schema=self.identifier(spec, "schema", path),
            table=self.identifier(spec, "table", path),
            key=self.identifier(spec, "key", path),
            key_generate=generate,
            key_sequence=sequence or None,
            columns=self.columns(spec.get("columns", {}), (*path, "columns")),
            create=self.create(spec.get("create", {}), (*path, "create")),
        )

    def placement(self, spec: dict[str, Any], key: str, path: KeyPath) -> str | None:
        """`"link"` (None) or `{ column = C }` (C)."""
        value = spec.get(key)
        where = (*path, key)
        if value == "link":
            return None
        if isinstance(value, dict) and set(value) == {"column"}:
            column = value["column"]
            if isinstance(column, str) and column:
                self.name(column, (*where, "column"))
                return column
        if value is None:
            self.fail(where, 'is missing: "link" or { column = "..." }')
        else:
            self.fail(where, 'must be "link" or { column = "..." }')
        return None

    def columns(self, value: Any, path: KeyPath) -> dict[str, Source]:
        spec = self.table(value, path, tuple(value) if isinstance(value, dict) else ())
        if spec is None:
            return {}
        found = {}
        for column, source in spec.items():
            self.name(column, (*path, column))
            made = self.source(source, (*path, column))
            if made is not None:
                found[column] = made
        return found

    def create(self, value: Any, path: KeyPath) -> dict[str, Scalar]:
        spec = self.table(value, path, tuple(value) if isinstance(value, dict) else ())
        if spec is None:
            return {}
        for column in spec:
            self.name(column, (*path, column))
        return {column: self.literal(v, (*path, column)) for column, v in spec.items()}

    def source(self, value: Any, path: KeyPath) -> Source | None:
        if isinstance(value, str):
            if not value:
                self.fail(path, "must name a field")
                return None
            return Source("field", (value,))
        spec = self.table(value, path, _FORMS + _MODIFIERS)
        if spec is None:
            return None
        forms = [f for f in _FORMS if f in spec]
        if len(forms) != 1:
            self.fail(path, "needs exactly one of field, join, first_of")
            return None
        null_as = self.literal(spec["null_as"], (*path, "null_as")) if "null_as" in spec else None
        form = forms[0]
        given = set(spec) - {form, "null_as"}
        if form != "field":
            allowed = {"separator"} if form == "join" else set()
            for key in sorted(given - allowed):
                self.fail((*path, key), f"is not allowed with {form}")
            fields = self.field_list(spec[form], (*path, form))
            separator = spec.get("separator", " ")
            if not isinstance(separator, str):
                self.fail((*path, "separator"), "must be a string")
                separator = " "
            return Source(form, fields, separator=separator, null_as=null_as)
        name = spec["field"]
        if not isinstance(name, str) or not name:
            self.fail((*path, "field"), "must name a field")
            return None
        groups = [g for g in (("codes", "other"), ("true", "false"), ("format",)) if given & set(g)]
        if len(groups) > 1:
            self.fail(path, "codes, true/false and format exclude each other")
            return None
        if not groups:
            return Source("field", (name,), null_as=null_as)
        group = groups[0]
        if group == ("codes", "other"):
            codes = spec.get("codes")
            if not isinstance(codes, dict) or not codes:
                self.fail((*path, "codes"), 'must be a table of "in" = out values')
                return None
            outs = {k: self.literal(v, (*path, "codes", k)) for k, v in codes.items()}
            other = self.literal(spec["other"], (*path, "other")) if "other" in spec else None
            return Source("codes", (name,), codes=outs, other=other, null_as=null_as)
        if group == ("true", "false"):
            if not {"true", "false"} <= given:
                self.fail(path, "needs both true and false")
                return None
            true = self.literal(spec["true"], (*path, "true"))
            false = self.literal(spec["false"], (*path, "false"))
            return Source("boolean", (name,), true=true, false=false, null_as=null_as)
        pattern = spec["format"]
        if not isinstance(pattern, str) or not pattern:
            self.fail((*path, "format"), 'must be a to_char pattern such as "YYYYMMDD"')
            return None
        return Source("format", (name,), format=pattern, null_as=null_as)

    def related(self, value: Any) -> tuple[Table, ...]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(("related",), "must be an array of tables ([[related]])")
            return ()
        found: list[Table] = []
        labels: set[str] = set()
        for index, spec in enumerate(value):
            path: KeyPath = ("related", index)
            table = self.shop_table(spec, path, _RELATED)
            label = self.string(spec, "name", path)
            if label and not LABEL.fullmatch(label):
                self.fail((*path, "name"), "must match [a-z_][a-z0-9_]* (at most 32 characters)")
            elif label in labels:
                self.fail((*path, "name"), "is used by another [[related]] table")
            labels.add(label)
            rule = self.choice(spec, "on_anonymise", path, ON_ANONYMISE)
            via = self.via(spec.get("via"), (*path, "via"))
            if table is not None:
                found.append(replace(table, name=label, via=via, on_anonymise=rule))
        return tuple(found)

    def via(self, value: Any, path: KeyPath) -> Via | None:
        if value is None:
            self.fail(path, 'is missing: { customer_column = "..." } or { column = "..." }')
            return None
        spec = self.table(value, path, ("customer_column", "column", "kind"))
        if spec is None:
            return None
        if ("customer_column" in spec) == ("column" in spec):
            self.fail(path, "needs exactly one of customer_column, column")
            return None
        if "customer_column" in spec:
            if "kind" in spec:
                self.fail((*path, "kind"), "is allowed with column only")
            return Via(customer_column=self.identifier(spec, "customer_column", path))
        column = self.identifier(spec, "column", path)
        kind = None
        if "kind" in spec:
            kind_spec = self.table(spec["kind"], (*path, "kind"), ("column", "value"))
            if kind_spec is not None:
                kind_column = self.identifier(kind_spec, "column", (*path, "kind"))
                if "value" not in kind_spec:
                    self.fail((*path, "kind", "value"), "is missing")
                kind_value = self.literal(kind_spec.get("value", ""), (*path, "kind", "value"))
                kind = Kind(kind_column, kind_value)
        return Via(column=column, kind=kind)

    def references(self, value: Any) -> tuple[Reference, ...]:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(("reference",), "must be an array of tables ([[reference]])")
            return ()
        found = []
        for index, spec in enumerate(value):
            path: KeyPath = ("reference", index)
            self.table(spec, path, _REFERENCE)
            found.append(
                Reference(
                    self.identifier(spec, "schema", path),
                    self.identifier(spec, "table", path),
                    self.identifier(spec, "column", path),
                )
            )
        return tuple(found)

    def gdpr(self, value: Any) -> Gdpr:
        if value is None:
            return Gdpr()
        spec = self.table(value, ("gdpr",), _GDPR)
        if spec is None:
            return Gdpr()
        columns = {
            key: self.identifier(spec, key, ("gdpr",)) or None
            for key in ("created_column", "last_activity_column", "group_column")
            if key in spec
        }
        last_order = None
        if "last_order" in spec:
            path: KeyPath = ("gdpr", "last_order")
            order = self.table(spec["last_order"], path, _LAST_ORDER)
            if order is not None:
                customer_column = None
                if "customer_column" in order:
                    customer_column = self.identifier(order, "customer_column", path)
                last_order = LastOrder(
                    self.identifier(order, "schema", path),
                    self.identifier(order, "table", path),
                    self.identifier(order, "column", path),
                    customer_column or None,
                )
        return Gdpr(last_order=last_order, **columns)

    def not_stored(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        spec = self.table(value, ("not_stored",), ("fields",))
        if spec is None or "fields" not in spec:
            if spec is not None:
                self.fail(("not_stored", "fields"), "is missing")
            return ()
        fields = spec["fields"]
        if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
            self.fail(("not_stored", "fields"), "must be an array of field names")
            return ()
        return tuple(fields)


# ---------------------------------------------------------------------------------------------
# Lines
# ---------------------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_PARENT = re.compile(r"^(.*)(\.[^.\[]*|\[\d+\])$")


@dataclass
class Locator:
    """The 1-based line that defines each key path of a TOML text: `[a.b]` and `[[a]]`
    headers (each `[[a]]` the next index of `a`), `key = ...` lines (dotted keys included;
    an inline table or a multi-line array maps to the line its key is on). A path nothing
    defines maps to its nearest defined parent, the whole document to line 1. The text must
    be valid TOML (tomllib read it first)."""

    text: str
    lines: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line, key in self._definitions():
            self.lines.setdefault(key, line)

    def line(self, path: str) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            parent = _PARENT.match(path)
            path = parent.group(1) if parent else ""
        return 1

    def _definitions(self) -> Iterator[tuple[int, str]]:
        text = self.text
        arrays: dict[str, int] = {}  # array-of-tables path -> its current index
        header: list[str] = []  # the resolved parts of the current table header
        i, line = 0, 1
        while i < len(text):
            char = text[i]
            if char == "\n":
                line += 1
                i += 1
            elif char in " \t\r":
                i += 1
            elif char == "#":
                i = _line_end(text, i)
            elif char == "[":
                array = text.startswith("[[", i)
                parts, i = _key(text, i + (2 if array else 1))
                if array:
                    header = _resolved(parts[:-1], arrays)
                    name = ".".join([*header, parts[-1]])
                    arrays[name] = arrays.get(name, -1) + 1
                    header.append(f"{parts[-1]}[{arrays[name]}]")
                else:
                    header = _resolved(parts, arrays)
                yield line, ".".join(header)
                i = _line_end(text, i)
            else:
                parts, i = _key(text, i)
                yield line, ".".join([*header, *parts])
                i, line = _value_end(text, i, line)


def _resolved(parts: list[str], arrays: dict[str, int]) -> list[str]:
    """Header parts with the current index after each array of tables among their prefixes
    (`arrays` is keyed by the resolved path: `related`, `related[0].x`)."""
    resolved: list[str] = []
    for part in parts:
        name = ".".join([*resolved, part])
        resolved.append(f"{part}[{arrays[name]}]" if name in arrays else part)
    return resolved


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end


def _key(text: str, i: int) -> tuple[list[str], int]:
    """A dotted key starting at `i`: its parts and the position after it (and after `=` or
    the closing brackets of a header)."""
    parts: list[str] = []
    while True:
        while text[i] in " \t":
            i += 1
        if text[i] in "\"'":
            quote = text[i]
            j = i + 1
            while text[j] != quote:
                j += 2 if quote == '"' and text[j] == "\\" else 1
            raw = text[i + 1 : j]
            parts.append(_unescaped(raw) if quote == '"' else raw)
            i = j + 1
        else:
            bare = _BARE.match(text, i)
            if bare is None:
                return parts, i
            parts.append(bare.group())
            i = bare.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        while i < len(text) and text[i] in "=]":
            i += 1
        return parts, i


def _unescaped(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _value_end(text: str, i: int, line: int) -> tuple[int, int]:
    """Skip a value (strings, nested arrays and inline tables, comments); return the position
    of the newline that ends it and the line number there."""
    depth = 0
    while i < len(text):
        char = text[i]
        if char == "\n":
            if depth == 0:
                return i, line
            line += 1
            i += 1
        elif char == "#":
            i = _line_end(text, i)
        elif text.startswith('"""', i) or text.startswith("'''", i):
            quote = text[i : i + 3]
            j = i + 3
            while not text.startswith(quote, j):
                j += 2 if quote == '"""' and text[j] == "\\" else 1
            # up to two more quotes may belong to the string's content
            j += 3
            while j < len(text) and text[j] == quote[0]:
                j += 1
            line += text.count("\n", i, j)
            i = j
        elif char in "\"'":
            j = i + 1
            while text[j] != char:
                j += 2 if char == '"' and text[j] == "\\" else 1
            i = j + 1
        else:
            depth += (char in "[{") - (char in "]}")
            i += 1
    return i, line
