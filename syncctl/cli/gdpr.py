"""GDPR data policies: `policy list|show|create|activate|revise|retire`, `purge` (retention
run, dry run, expiry warnings), `export` (subject access) and `erasure
receive|verify|schedule|cancel|execute|list`, over syncctl.gdpr and syncctl.export. Every
command that acts in time takes `--now` (ISO 8601, default: now), so a run can be replayed or
previewed."""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import psycopg

from syncctl import export, gdpr
from syncctl.cli.edge import HasDsn, actor_option, connection, edge
from syncctl.errors import GdprError


def _parse_now(_: click.Context, __: click.Parameter, value: str | None) -> datetime:
    if value is None:
        return gdpr.utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("give an ISO 8601 time, e.g. 2027-01-31T00:00:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_retention(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """`none` (any case) is no retention period, as leaving the option out is."""
    if value is None or value.strip().casefold() == "none":
        return None
    return value


# the SQLSTATEs of a text that is no interval ('2 yaers'): invalid_datetime_format,
# datetime_field_overflow, interval_field_overflow
_NOT_AN_INTERVAL = frozenset({"22007", "22008", "22015"})


_NOW = click.option(
    "--now",
    callback=_parse_now,
    metavar="TIME",
    help="The moment to act at (ISO 8601); default: now.",
)


# ---------------------------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------------------------
@click.group("policy")
def policy() -> None:
    """Data policies: list, show, create, activate, revise, retire."""


@policy.command("list")
@click.pass_obj
@edge
def policy_list(settings: HasDsn) -> None:
    """List the data policies: code, state, legal basis, retention."""
    with connection(settings) as conn:
        found = gdpr.policies(conn)
    for p in found:
        retention = f"{p.retention} from {p.retention_from}" if p.retention else "no limit"
        click.echo(f"{p.code:<16}{p.state:<9}{p.legal_basis:<22}{retention:<32}{p.name}")


@policy.command("show")
@click.argument("code")
@click.pass_obj
@edge
def policy_show(settings: HasDsn, code: str) -> None:
    """Show one policy with its categories."""
    with connection(settings) as conn:
        p = gdpr.policy(conn, code)
    for label, value in (
        ("code", p.code),
        ("name", p.name),
        ("state", p.state),
        ("legal basis", p.legal_basis),
        ("retention", p.retention or "no limit"),
        ("counted from", p.retention_from),
        ("applies to", p.membership + (f" {p.customer_group}" if p.customer_group else "")),
        ("tritonX field", p.consent_field or "-"),
        ("merge rule", p.merge_rule),
        ("text version", p.text_version),
        ("description", p.description),
        ("categories", ", ".join(p.categories)),
    ):
        click.echo(f"{label + ':':<15}{value}")


@policy.command("create")
@click.argument("code")
@click.option("--name", required=True, help="The policy's name, as shown to customers.")
@click.option("--description", required=True, help="What the data is for (the policy text).")
@click.option(
    "--legal-basis",
    required=True,
    type=click.Choice(
        [
            "consent",
            "contract",
            "legal_obligation",
            "vital_interests",
            "public_task",
            "legitimate_interests",
        ]
    ),
    help="The GDPR article 6 basis for processing.",
)
@click.option(
    "--retention",
    default=None,
    callback=_parse_retention,
    help="A PostgreSQL interval ('2 years'); none: no limit.",
)
@click.option(
    "--retention-from",
    type=click.Choice(["created", "last_activity", "last_order"]),
    default="last_activity",
    show_default=True,
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    required=True,
    help="A registry table or column, schema-qualified (the reference shop's shop.orders,"
    ' shop.customer.loyalty_card); quoted as in SQL (sales."Review") or the catalog\'s names'
    " unquoted (sales.Review); repeatable.",
)
@click.option(
    "--membership",
    type=click.Choice(["all", "consent", "customer_group"]),
    default="all",
    show_default=True,
    help="Who is under the policy: every customer, those with a consent, one group.",
)
@click.option(
    "--customer-group", default=None, help="With --membership customer_group: which group."
)
@click.option(
    "--consent-field",
    type=click.Choice(["newsletter_opt_in"]),
    default=None,
    help="With --membership consent: the boolean tritonX snapshot field that states the"
    " consent; its values are recorded as tritonX's decisions.",
)
@click.option(
    "--merge-rule",
    type=click.Choice(["most_restrictive", "most_permissive", "survivor"]),
    default="most_restrictive",
    show_default=True,
    help="How a merge combines two customers' consents.",
)
@actor_option
@click.pass_obj
@edge
def policy_create(
    settings: HasDsn,
    code: str,
    name: str,
    description: str,
    legal_basis: str,
    retention: str | None,
    retention_from: str,
    categories: tuple[str, ...],
    membership: str,
    customer_group: str | None,
    consent_field: str | None,
    merge_rule: str,
    actor: str,
) -> None:
    """Create a draft policy CODE."""
    with connection(settings) as conn:
        try:
            gdpr.create_policy(
                conn,
                code,
                name=name,
                description=description,
                legal_basis=legal_basis,
                retention=retention,
                retention_from=retention_from,
                categories=list(categories),
                membership=membership,
                customer_group=customer_group,
                consent_field=consent_field,
                merge_rule=merge_rule,
                actor=actor,
            )
        except GdprError as exc:
            if retention is None or exc.sqlstate not in _NOT_AN_INTERVAL:
                raise
            raise click.BadParameter(
                "give a PostgreSQL interval ('2 years', '18 months') or none",
                param_hint="'--retention'",
            ) from exc
    click.echo(f"policy {code}: draft")


@policy.command("activate")
@click.argument("code")
@actor_option
@_NOW
@click.pass_obj
@edge
def policy_activate(settings: HasDsn, code: str, actor: str, now: datetime) -> None:
    """Put a draft policy in force."""
    with connection(settings) as conn:
        result = gdpr.activate_policy(conn, code, actor=actor, now=now)
    taken = {"column": " (the stored column)", "snapshots": " (the latest snapshots)"}
    origin = taken.get(result.consents_from or "", "")
    click.echo(f"policy {code}: active ({result.consents} consent(s) from tritonX{origin})")


@policy.command("revise")
@click.argument("code")
@click.option("--description", required=True, help="The new text of the policy.")
@actor_option
@click.pass_obj
@edge
def policy_revise(settings: HasDsn, code: str, description: str, actor: str) -> None:
    """Give a policy a new text (its text version goes up; consents record the version)."""
    with connection(settings) as conn:
        version = gdpr.revise_policy(conn, code, description=description, actor=actor)
    click.echo(f"policy {code}: text version {version}")


@policy.command("retire")
@click.argument("code")
@actor_option
@_NOW
@click.pass_obj
@edge
def policy_retire(settings: HasDsn, code: str, actor: str, now: datetime) -> None:
    """Take an active policy out of force."""
    with connection(settings) as conn:
        gdpr.retire_policy(conn, code, actor=actor, now=now)
    click.echo(f"policy {code}: retired")


# ---------------------------------------------------------------------------------------------
# purge
# ---------------------------------------------------------------------------------------------
@click.command("purge")
@click.option(
    "--dry-run",
    is_flag=True,
    help="List per policy and table what would go, and why; then per table the rows the run "
    "changes (scrubbed in place, copied, detached, deleted) and the customers.",
)
@click.option(
    "--warn-days",
    type=click.IntRange(min=0),
    default=None,
    help="List the customers whose data a policy stops holding within N days instead.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Customers examined per transaction.",
)
@_NOW
@click.pass_obj
@edge
def purge(
    settings: HasDsn, dry_run: bool, warn_days: int | None, batch_size: int, now: datetime
) -> None:
    """Retention run: anonymise or delete what no data policy holds any more (daily)."""
    with connection(settings) as conn:
        if warn_days is not None:
            warnings = gdpr.expiry_warnings(conn, now=now, within_days=warn_days)
            for w in warnings:
                click.echo(
                    f"{w.customer_key or '-'}\t{w.customer_number or '-'}\t{w.policy}\t"
                    f"{w.expires_at.isoformat()}"
                )
            click.echo(f"{len(warnings)} expiry warning(s) within {warn_days} day(s)")
            return
        if dry_run:
            plan = gdpr.purge_dry_run(conn, now=now)
            for s in plan.steps:
                columns = f" ({', '.join(s.columns)})" if s.columns else ""
                click.echo(
                    f"{s.policy:<13} {s.table + columns:<39} {s.action:<25}{s.rows:>8} row(s)"
                    f"{s.customers:>8} customer(s)  {'; '.join(s.reasons)}"
                )
            if not plan.steps:
                click.echo("dry run: nothing to purge")
                return
            click.echo(f"dry run: would purge {plan.customers} customer(s)")
            for t in plan.tables:
                ways = ", ".join(f"{rows} {way}" for way, rows in t.ways)
                click.echo(f"  {t.table:<40} {t.rows:>8}  {ways}; {t.customers} customer(s)")
            return
        total = gdpr.purge_scope(conn)
        with click.progressbar(length=max(total, 1), label="purging", file=sys.stderr) as bar:
            report = gdpr.purge(conn, now=now, batch_size=batch_size, progress=bar.update)
    click.echo(f"purged {report.customers} customer(s) in {report.batches} batch(es)")
    if report.refused:
        click.echo(
            f"refused by the shop's triggers or constraints: {report.refused} customer(s), left"
            " for the next run (sync.audit: customer.anonymized, outcome failed)"
        )
    for table, rows in sorted(report.counts.items()):
        click.echo(f"  {table:<40} {rows:>8}")


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------
_KEY_OPTION = click.option(
    "--id",
    "customer_key",
    default=None,
    metavar="KEY",
    help="The local customer's key in the mapped customer table (an id, a uuid, ...).",
)


def _subject(
    conn: psycopg.Connection[Any], number: str | None, customer_key: str | None
) -> gdpr.Subject:
    if (number is None) == (customer_key is None):
        raise click.UsageError("give a customer NUMBER or --id, not both")
    return gdpr.find_subject(conn, number=number, key=customer_key)


def _label(subject: gdpr.Subject) -> str:
    """How a message names the customer: its number, an integer key's id, never a text key."""
    if subject.number is not None:
        return f"customer {subject.number}"
    if subject.customer_id is not None:
        return f"customer id {subject.customer_id}"
    return "the customer"


def _write_private(path: Path, content: bytes) -> None:
    """Write `content` to a new file of mode 600 beside `path`, then put it in path's place: the
    person's data never goes into a file that was there before (someone else's, one a reader
    has open, a symbolic link to elsewhere). A pipe or device (`/dev/stdout`) is written to as
    it is: no file is made there, and the link to it stays."""
    if path.exists() and not path.is_file():
        with path.open("wb") as stream:
            stream.write(content)
        return
    temporary: str | None = None
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # named by the path given, not the new file's name
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


@click.command("export")
@click.argument("number", required=False)
@_KEY_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export.FORMATS),
    default="json",
    show_default=True,
    help="json: one document; csv: a zip, one file per table; html: a page for the person.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here (default: standard output; csv needs a file).",
)
@_NOW
@click.pass_obj
@edge
def export_command(
    settings: HasDsn,
    number: str | None,
    customer_key: str | None,
    fmt: str,
    output: Path | None,
    now: datetime,
) -> None:
    """Subject access export: everything held about customer NUMBER (or --id KEY)."""
    if fmt == "csv" and output is None:
        raise click.UsageError("--format csv writes a zip: give --output")
    with connection(settings) as conn:
        subject = _subject(conn, number, customer_key)
        data = gdpr.subject_data(conn, customer_id=subject.key, now=now)
    rendered = export.render(data, fmt)
    if output is None:
        click.echo(rendered.decode("utf-8"), nl=False)
        return
    _write_private(output, rendered)
    rows = sum(len(r) for r in data.tables.values())
    click.echo(
        f"{_label(subject)}: {rows} row(s) from {len(data.tables)} table(s) written to {output}",
        err=True,
    )


# ---------------------------------------------------------------------------------------------
# erasure
# ---------------------------------------------------------------------------------------------
@click.group("erasure")
def erasure() -> None:
    """Erasure requests: receive, verify, schedule, cancel, execute, list."""


@erasure.command("receive")
@click.argument("number", required=False)
@_KEY_OPTION
@actor_option
@_NOW
@click.pass_obj
@edge
def erasure_receive(
    settings: HasDsn, number: str | None, customer_key: str | None, actor: str, now: datetime
) -> None:
    """Record a request to be erased from customer NUMBER (or --id KEY)."""
    with connection(settings) as conn:
        subject = _subject(conn, number, customer_key)
        request_id = gdpr.receive_erasure(conn, subject.key, actor=actor, now=now)
    click.echo(f"erasure request {request_id}: received")


@erasure.command("verify")
@click.argument("request_id", type=int)
@actor_option
@_NOW
@click.pass_obj
@edge
def erasure_verify(settings: HasDsn, request_id: int, actor: str, now: datetime) -> None:
    """The person's identity was checked."""
    with connection(settings) as conn:
        gdpr.verify_erasure(conn, request_id, actor=actor, now=now)
    click.echo(f"erasure request {request_id}: verified")


@erasure.command("schedule")
@click.argument("request_id", type=int)
@click.option(
    "--grace-days",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Days in which the request can still be cancelled.",
)
@actor_option
@_NOW
@click.pass_obj
@edge
def erasure_schedule(
    settings: HasDsn, request_id: int, grace_days: int, actor: str, now: datetime
) -> None:
    """Schedule a verified request (after a grace period in which it can be cancelled)."""
    with connection(settings) as conn:
        due = gdpr.schedule_erasure(conn, request_id, actor=actor, grace_days=grace_days, now=now)
    click.echo(f"erasure request {request_id}: scheduled for {due.isoformat()}")


@erasure.command("cancel")
@click.argument("request_id", type=int)
@actor_option
@_NOW
@click.pass_obj
@edge
def erasure_cancel(settings: HasDsn, request_id: int, actor: str, now: datetime) -> None:
    """Cancel a request that is not done."""
    with connection(settings) as conn:
        gdpr.cancel_erasure(conn, request_id, actor=actor, now=now)
    click.echo(f"erasure request {request_id}: cancelled")


@erasure.command("execute")
@click.argument("request_id", type=int)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print per table the rows the erasure would change, and how; change nothing.",
)
@actor_option
@_NOW
@click.pass_obj
@edge
def erasure_execute(
    settings: HasDsn, request_id: int, dry_run: bool, actor: str, now: datetime
) -> None:
    """Erase now and print the proof of erasure (columns searched, residue hits) and the rows
    changed per table."""
    with connection(settings) as conn:
        if dry_run:
            steps = gdpr.erasure_plan(conn, request_id)
            if not steps:
                click.echo(
                    f"dry run: erasure request {request_id}: its customer is anonymised"
                    " already; the execution searches for residue only"
                )
            else:
                click.echo(f"dry run: erasure request {request_id} would anonymise its customer")
            for step in steps:
                click.echo(f"  {step.table:<40} {step.rows:>8}  {step.action}")
            return
        proof = gdpr.execute_erasure(conn, request_id, actor=actor, now=now)
    if proof.columns_searched is None:
        # it failed before the search: the error follows
        click.echo(f"erasure request {request_id}: {proof.state} before the residue search")
    else:
        click.echo(
            f"erasure request {request_id}: {proof.state}; searched "
            f"{proof.columns_searched} column(s), residue hits {proof.residue_hits}"
        )
    for column, hits in sorted(proof.residue.items()):
        click.echo(f"  {column:<48} {hits:>6}")
    if proof.counts:
        changed = ", ".join(f"{table} {rows}" for table, rows in sorted(proof.counts.items()))
        click.echo(f"rows changed: {changed}")
    if proof.same_email_customers:
        click.echo(
            "other customers with the same e-mail (keys "
            f"{', '.join(map(str, proof.same_email_customers))}): "
            "not erased; if they are this person, erase them too"
        )
    if proof.tables_not_searched:
        click.echo(
            "not searched (this role may not read them, or another owner's row-level security "
            f"guards them): {', '.join(proof.tables_not_searched)}"
        )
    if proof.state != "done":
        raise click.ClickException(proof.error or "erasure failed")


@erasure.command("list")
@click.option(
    "--state",
    type=click.Choice(["received", "verified", "scheduled", "done", "failed", "cancelled"]),
    default=None,
    help="Only requests in this state.",
)
@click.pass_obj
@edge
def erasure_list(settings: HasDsn, state: str | None) -> None:
    """List erasure requests (no personal data)."""
    with connection(settings) as conn:
        requests = gdpr.erasure_requests(conn, state=state)
    for r in requests:
        click.echo(
            f"{r.id}\t{r.customer_key or '-'}\t{r.customer_number or '-'}\t{r.state}\t"
            f"attempts {r.attempts}\tresidue {_dash(r.residue_hits)}\t{r.last_error or ''}"
        )
    if not requests:
        click.echo("no erasure requests")


def _dash(value: Any) -> str:
    return "-" if value is None else str(value)


COMMANDS: tuple[click.Command, ...] = (policy, purge, export_command, erasure)
