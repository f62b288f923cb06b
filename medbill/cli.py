"""The `medbill` command: run the whole service embedded (`up`), run one process (`web`, `worker`, `scheduler`),
migrate, and administer companies, practices and users."""

from __future__ import annotations

import getpass
import logging
import os
import signal
import sys
import threading

import click
from sqlalchemy import select

from medbill.config import Settings


def _settings() -> Settings:
    return Settings.from_env()


def _db(settings: Settings):
    from medbill.services import make_database

    if not settings.database_url:
        raise click.ClickException("DATABASE_URL is not set (or run `medbill up` for the embedded default)")
    return make_database(settings)


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

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set")
    run_worker(settings.redis_url, list(queues) or None, burst=burst)


@main.command()
def scheduler() -> None:
    """Enqueue periodic jobs (each run once, however many schedulers run)."""
    from jobs.queues import Dispatcher
    from jobs.schedule import run_scheduler
    from medbill.services import make_redis

    settings = _settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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


def _run(fn):
    from medbill.errors import DomainError

    try:
        return fn()
    except DomainError as exc:
        detail = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in exc.errors.items())
        raise click.ClickException(exc.message + (f" ({detail})" if detail else "")) from exc


if __name__ == "__main__":
    main()
