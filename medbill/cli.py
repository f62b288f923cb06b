"""The `medbill` command: run the whole service embedded (`up`), run one process (`web`, `worker`, `scheduler`),
migrate, and administer companies, practices and users."""

from __future__ import annotations

import getpass
import os
import signal
import sys
import threading

import click
from sqlalchemy import select

from medbill.config import Settings, SettingsError
from medbill.logging_config import configure_logging


def _settings() -> Settings:
    # A bad value is one line naming the variable and its bounds, not a traceback.
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _servers(settings: Settings, *, database: bool = True, redis: bool = True) -> Settings:
    """Without DATABASE_URL / REDIS_URL, the embedded servers `medbill up` runs on the data directory (MEDBILL_DATA_DIR,
    default ./var): one service, one CLI. Not running is a one-line error, never a start (see config)."""
    from medbill.config import with_embedded_servers
    from medbill.embedded import EmbeddedError

    try:
        return with_embedded_servers(settings, database=database, redis=redis)
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from exc


def _db(settings: Settings):
    from medbill.services import make_database

    return make_database(_servers(settings, redis=False))


@click.group()
def main() -> None:
    """medbill: medical billing for billing companies and their client practices."""


@main.command()
@click.option("--port", default=8000, show_default=True, help="web port on 127.0.0.1")
@click.option("--workers", default=2, show_default=True, help="RQ worker processes")
@click.option("--no-demo", is_flag=True, help="do not seed demo data on first start")
def up(port: int, workers: int, no_demo: bool) -> None:
    """Start everything: database, Redis, storage, web, workers, scheduler (embedded unless configured)."""
    from medbill.up import run_up

    sys.exit(run_up(_settings(), port=port, workers=workers, demo=not no_demo))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--processes", default=2, show_default=True, help="gunicorn worker processes")
def web(host: str, port: int, processes: int) -> None:
    """Serve the API and portal with gunicorn (configuration in infra/gunicorn.conf.py)."""
    from medbill.wsgi_server import serve

    serve(host=host, port=port, processes=processes)


@main.command()
@click.option("--queue", "queues", multiple=True, help="queue(s) to serve; default all")
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run one RQ worker."""
    from jobs.worker import run_worker

    settings = _servers(_settings(), database=False)
    configure_logging(settings.log_level)
    run_worker(settings.redis_url, list(queues) or None, burst=burst)


@main.command()
def scheduler() -> None:
    """Enqueue periodic jobs (each run once, however many schedulers run)."""
    from jobs.queues import Dispatcher
    from jobs.schedule import run_scheduler
    from medbill.services import make_redis

    settings = _servers(_settings(), database=False)
    configure_logging(settings.log_level)
    dispatcher = Dispatcher(make_redis(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_scheduler(dispatcher, stop)


@main.command()
def migrate() -> None:
    """Upgrade the shared schema, then every practice schema."""
    from tenants.migrate import migrate_all

    db = _db(_settings())
    report = migrate_all(db.engine, progress=click.echo)
    click.echo(
        f"shared: {report.shared_from or 'empty'} -> {report.shared_to}; practices upgraded: {len(report.upgraded)},"
        f" already current: {report.already_current}; {report.seconds:.2f}s"
    )


@main.group()
def companies() -> None:
    """Billing companies."""


@companies.command("create")
@click.argument("slug")
@click.option("--name", required=True)
def companies_create(slug: str, name: str) -> None:
    from tenants.registry import create_company

    with _db(_settings()).shared_session() as session:
        _run(lambda: create_company(session, slug, name))
        session.commit()
    click.echo(f"created billing company {slug}")


@main.group()
def practices() -> None:
    """Client practices (one schema each)."""


@practices.command("create")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--company", required=True, help="billing company slug")
def practices_create(slug: str, name: str, company: str) -> None:
    """Create a practice and its schema at the current migration head, in one step."""
    from tenants.registry import create_practice

    db = _db(_settings())
    practice = _run(lambda: create_practice(db.engine, company, slug, name))
    click.echo(f"created practice {practice.slug} (schema {practice.schema_name})")


@practices.command("list")
def practices_list() -> None:
    """Practices with their company and migration revision."""
    from tenants.migrate import tenant_head, tenant_revisions
    from tenants.models import BillingCompany, Practice

    db = _db(_settings())
    head = tenant_head()
    with db.shared_session() as session:
        rows = session.execute(
            select(Practice.slug, Practice.name, Practice.schema_name, Practice.status, BillingCompany.slug)
            .join(BillingCompany, BillingCompany.id == Practice.company_id)
            .order_by(Practice.slug)
        ).all()
        revisions = tenant_revisions(session.connection(), [r[2] for r in rows])
    click.echo(f"{'slug':<24} {'company':<16} {'status':<10} {'revision':<12} name")
    for slug, name, schema, status, company in rows:
        rev = revisions.get(schema) or "-"
        flag = "" if rev == head else " (behind head " + head + ")"
        click.echo(f"{slug:<24} {company:<16} {status:<10} {rev:<12} {name}{flag}")


@main.group()
def payers() -> None:
    """The payer list curated at platform level (entries every company sees)."""


@payers.command("add")
@click.argument("payer_id")
@click.option("--name", required=True)
@click.option("--filing", "claim_filing_indicator", required=True, help="SBR09 claim filing indicator: CI, MB, MC...")
@click.option("--address", "address_line1", default="")
@click.option("--city", default="")
@click.option("--state", default="")
@click.option("--zip", "postal_code", default="")
def payers_add(payer_id: str, **values: str) -> None:
    """Add a platform payer: every company's practices see it and may bill it (companies add their own through the
    API, seen only by them)."""
    from billing import setup
    from tenants import audit

    values["state"] = values["state"].upper()
    values["postal_code"] = values["postal_code"].replace("-", "")
    with _db(_settings()).shared_session() as session:
        payer = _run(lambda: setup.create_payer(session, {"payer_id": payer_id, **values}, company_id=None))
        audit.record(session, user_id=None, practice_id=None, object_type="payer", object_id=payer.id, action="create",
                     detail={"payer_id": payer.payer_id, "company_id": None, "by": "operator"})  # fmt: skip
        session.commit()
        click.echo(f"added platform payer {payer.payer_id} ({payer.name}), id {payer.id}")


@payers.command("list")
def payers_list() -> None:
    """Every payer, platform entries first, with the company of each company's own entry."""
    from billing.models import Payer
    from tenants.models import BillingCompany

    with _db(_settings()).shared_session() as session:
        rows = session.execute(
            select(Payer.id, Payer.payer_id, Payer.name, BillingCompany.slug)
            .outerjoin(BillingCompany, BillingCompany.id == Payer.company_id)
            .order_by(Payer.company_id.is_not(None), BillingCompany.slug, Payer.name, Payer.id)
        ).all()
    click.echo(f"{'id':<8} {'payer id':<20} {'company':<16} name")
    for pid, payer_id, name, company in rows:
        click.echo(f"{pid:<8} {payer_id:<20} {company or '(platform)':<16} {name}")


@main.group()
def users() -> None:
    """Users and their roles."""


@users.command("create")
@click.argument("email")
@click.option("--name", "full_name", required=True)
@click.option("--role", type=click.Choice(["company_admin", "biller", "doctor", "agency"]), required=True)
@click.option("--company", help="billing company slug (company_admin, biller)")
@click.option("--practice", help="practice slug (doctor)")
@click.option("--agency", help="agency slug (agency)")
def users_create(email: str, full_name: str, role: str, company: str | None, practice: str | None, agency: str | None):
    """Create a user with one role. The password is read from MEDBILL_PASSWORD or asked for."""
    from tenants.models import CollectionAgency
    from tenants.registry import create_user, get_company, get_practice, grant

    password = os.environ.get("MEDBILL_PASSWORD") or getpass.getpass("password: ")
    with _db(_settings()).shared_session() as session:

        def do():
            user = create_user(session, email, full_name, password)
            grant(
                session,
                user,
                role,
                company=get_company(session, company) if company else None,
                practice=get_practice(session, practice) if practice else None,
                agency=session.scalar(select(CollectionAgency).where(CollectionAgency.slug == agency))
                if agency
                else None,
            )

        _run(do)
        session.commit()
    click.echo(f"created {role} {email}")


def _set_active(email: str, active: bool) -> None:
    from tenants import accounts

    with _db(_settings()).shared_session() as session:
        user = _run(lambda: accounts.user_by_email(session, email))
        if active:
            _run(lambda: accounts.reactivate(session, user, actor_id=None, via="cli"))
        else:
            revoked = _run(lambda: accounts.deactivate(session, user, actor_id=None, via="cli"))
        session.commit()
    click.echo(
        f"reactivated {user.email}" if active else f"deactivated {user.email}; {revoked} session(s)/token(s) ended"
    )


@users.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate a user: no more sign-ins, and every portal session and API token of theirs ends at once."""
    _set_active(email, False)


@users.command("reactivate")
@click.argument("email")
def users_reactivate(email: str) -> None:
    """Let a deactivated user sign in again (what deactivation ended stays ended)."""
    _set_active(email, True)


@main.group()
def edi() -> None:
    """X12 files in and out."""


@edi.command("import")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--company", help="billing company slug: route the file to its practices")
@click.option("--practice", help="practice slug: apply the whole file to this practice")
def edi_import(path: str, company: str | None, practice: str | None) -> None:
    """Apply a 999, 277CA or 835 file (an 835 posts to the ledger), as if the clearinghouse had returned it."""
    import hashlib
    import json
    from pathlib import Path

    from billing.edi_intake import intake, practice_slugs_for
    from integrations.storage import company_key, practice_key
    from medbill.services import make_storage
    from tenants.registry import get_company, get_practice

    if bool(company) == bool(practice):
        raise click.ClickException("give exactly one of --company or --practice")
    settings = _settings().ensure_secret_key()
    db = _db(settings)
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    company_id: int | None = None
    with db.shared_session() as s:
        if company:
            company_id = _run(lambda: get_company(s, company)).id
            key = company_key(company_id, "edi", "inbound", f"{digest}.x12")
        else:
            _run(lambda: get_practice(s, practice))
            key = practice_key(practice, "edi", "inbound", f"{digest}.x12")
    storage = make_storage(settings)
    storage.put(key, data, content_type="application/edi-x12")
    slugs = practice_slugs_for(db, company_id=company_id, practice_slug=practice)
    # The company it came to decides where what names none of its practices goes (its unmatched queue) and what is
    # not its own (quarantined for the operator), as for a fetched or uploaded file.
    report = _run(
        lambda: intake(
            db, data, storage_key=key, slugs=slugs, company_id=company_id, source="import",
            file_name=Path(path).name, storage=storage,
        )
    )
    click.echo(json.dumps(report.as_dict(), indent=2, default=str))


@edi.group("quarantine")
def edi_quarantine() -> None:
    """EDI sets that reached a company whose practices they do not name: held for the operator."""


@edi_quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="released and dropped ones too")
def edi_quarantine_list(show_all: bool) -> None:
    """Quarantined sets (id, receiving company, source, kind, why), oldest first."""
    from billing.edi_intake import list_quarantine

    settings = _settings().ensure_secret_key()
    for row in list_quarantine(_db(settings), status=None if show_all else "held"):
        click.echo(
            f"{row['id']}\t{row['status']}\t{row['company']}\t{row['source']}\t{row['kind']}\t"
            f"{row['received_at']:%Y-%m-%d %H:%M}\t{row['file_name']}\t{row['reason']}"
        )


@edi_quarantine.command("release")
@click.argument("quarantine_id", type=int)
@click.option("--to-company", "company", required=True, help="slug of the billing company the set belongs to")
def edi_quarantine_release(quarantine_id: int, company: str) -> None:
    """Route a quarantined set among that company's practices (an 835 posts now), or into its unmatched queue."""
    import json

    from billing.edi_intake import release_quarantined
    from medbill.services import make_storage

    settings = _settings().ensure_secret_key()
    result = _run(lambda: release_quarantined(_db(settings), make_storage(settings), quarantine_id, company))
    click.echo(json.dumps(result, indent=2, default=str))


@edi_quarantine.command("drop")
@click.argument("quarantine_id", type=int)
def edi_quarantine_drop(quarantine_id: int) -> None:
    """Keep a quarantined set as a record only, never applied."""
    from billing.edi_intake import drop_quarantined

    settings = _settings().ensure_secret_key()
    click.echo(_run(lambda: drop_quarantined(_db(settings), quarantine_id))["status"])


@main.group()
def claims() -> None:
    """Claims."""


@claims.command("export")
@click.option("--practice", required=True, help="practice slug")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder to write the 837 in")
def claims_export(practice: str, out_dir: str) -> None:
    """Write the practice's ready claims as an 837P file into a folder (for a manual upload) and mark them
    submitted; the file is kept in storage like any submission."""
    from pathlib import Path

    from billing import submissions
    from integrations.clearinghouse import DirectoryTransport
    from integrations.storage import practice_key
    from medbill.services import make_storage

    settings = _settings().ensure_secret_key()
    db = _db(settings)
    storage = make_storage(settings)
    with db.tenant_session(practice) as session:
        prepared = _run(lambda: submissions.prepare_submission(session, practice_slug=practice, user_id=None))
        if prepared is None:
            session.commit()
            click.echo("no ready claims")
            return
        data = prepared.text.encode("ascii")
        key = practice_key(practice, "submissions", prepared.submission.filename)
        storage.put(key, data, content_type="application/edi-x12")
        prepared.submission.storage_key = key
        session.commit()
        out = Path(out_dir)
        DirectoryTransport(out, inbox=".", outbox=".").send(prepared.submission.filename, data)
        submissions.mark_transmitted(session, prepared.submission, user_id=None)
        session.commit()
    click.echo(f"wrote {out / prepared.submission.filename} ({prepared.submission.claim_count} claims)")
    for claim_id, why in prepared.skipped.items():
        click.echo(f"claim {claim_id} not ready: {why}")


@main.group("secrets")
def secrets_group() -> None:
    """A billing company's stored credentials (encrypted; transports name them in password_secret)."""


@secrets_group.command("set")
@click.option("--company", required=True, help="billing company slug")
@click.argument("name")
def secrets_set(company: str, name: str) -> None:
    """Set or replace a secret. The value is read from standard input (piped) or asked for, never from argv."""
    from tenants import secrets
    from tenants.registry import get_company

    if sys.stdin.isatty():
        value = getpass.getpass(f"value of {name}: ")
    else:
        # One secret per run: the whole of stdin, without the newline `echo` or a heredoc adds.
        value = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    settings = _settings()
    with _db(settings).shared_session() as session:

        def do():
            box = secrets.SecretBox.from_settings(settings)
            return secrets.put_secret(session, box, get_company(session, company).id, name, value, user_id=None)

        _row, created = _run(do)
        session.commit()
    click.echo(f"{'created' if created else 'replaced'} secret {name} of {company}")


@secrets_group.command("list")
@click.option("--company", required=True, help="billing company slug")
def secrets_list(company: str) -> None:
    """The company's secret names with their dates (never the values)."""
    from tenants import secrets
    from tenants.registry import get_company

    with _db(_settings()).shared_session() as session:
        rows = _run(lambda: secrets.list_secrets(session, get_company(session, company).id))
        for row in rows:
            click.echo(f"{row.name}\tcreated {row.created_at:%Y-%m-%d %H:%M}\tupdated {row.updated_at:%Y-%m-%d %H:%M}")


@secrets_group.command("delete")
@click.option("--company", required=True, help="billing company slug")
@click.argument("name")
def secrets_delete(company: str, name: str) -> None:
    """Delete a secret; a transport that still names it is refused when it next connects."""
    from tenants import secrets
    from tenants.registry import get_company

    with _db(_settings()).shared_session() as session:
        _run(lambda: secrets.delete_secret(session, get_company(session, company).id, name, user_id=None))
        session.commit()
    click.echo(f"deleted secret {name} of {company}")


def _run(fn):
    from medbill.errors import DomainError

    try:
        return fn()
    except DomainError as exc:
        # Field errors often repeat the message word for word (an X12 refusal names the segment in both): print each
        # thing once, keeping only the details that add something.
        extra = {k: [str(e) for e in v if str(e) not in exc.message] for k, v in exc.errors.items()}
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in extra.items() if v)
        raise click.ClickException(exc.message + (f" ({detail})" if detail else "")) from exc


def _register_sandbox() -> None:
    from integrations.sandbox.cli import sandbox_clearinghouse

    main.add_command(sandbox_clearinghouse, "sandbox-clearinghouse")


_register_sandbox()

if __name__ == "__main__":
    main()
