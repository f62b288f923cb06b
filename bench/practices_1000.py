"""Benchmark: 1,000 practice schemas in one database.

    python bench/practices_1000.py [--practices 1000] [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Measures: the time to provision each practice (mean/p95/total); a no-op `medbill migrate` over all of them (in
process, and the CLI as a subprocess); a one-column migration over all of them (a throwaway Alembic revision on top of
head, in a temporary copy of migrations/, applied through tenants/migrate.py — nothing is added to migrations/); the
memory of a web process (create_app + requests touching every practice) and of a worker process (the daily
patient-billing round over every practice), each in a subprocess of its own, with what their connection pools,
SQLAlchemy caches and the PostgreSQL backends' catalog caches hold afterwards.

Creates and drops a scratch database of its own. The worker's round starts a statement run per practice (practices
run statements on schedule by default) and enqueues it on Redis (`--redis`, DB 12 by default): the benchmark flushes
that Redis database afterwards, so nothing is left for a later worker to pick up."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-password-1"
ADMIN = "admin@bench.example"

THROWAWAY_REVISION = '''"""Throwaway benchmark revision: one nullable column on patients.

Revision ID: bench_one_column
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "bench_one_column"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("patients", sa.Column("bench_note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("patients", "bench_note")
'''


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def backend_cache_kib(conn) -> int:
    """The PostgreSQL backend's catalog/relation cache (CacheMemoryContext and its children) for this connection."""
    from sqlalchemy import text

    return int(
        conn.execute(
            text(
                "SELECT coalesce(sum(total_bytes), 0) / 1024 FROM pg_backend_memory_contexts "
                "WHERE name = 'CacheMemoryContext' OR parent = 'CacheMemoryContext'"
            )
        ).scalar_one()
    )


def cache_report(db) -> dict:
    engine = db.engine
    with engine.connect() as conn:
        backend = backend_cache_kib(conn)
        schemas = len(conn.connection.info.get("medbill_schemas", ()))
    info = db.tenant_engine.cache_info()
    return {
        "pool": engine.pool.status(),
        "compiled_cache_entries": len(engine._compiled_cache),
        "compiled_cache_max": engine._compiled_cache.capacity,
        "tenant_engines": info.currsize,
        "tenant_engines_max": info.maxsize,
        "backend_catalog_cache_kib": backend,
        "schemas_on_this_connection": schemas,
    }


def child_web(slugs: list[str], passes: int) -> dict:
    from medbill.app import create_app
    from medbill.config import Settings

    app = create_app(Settings.from_env().ensure_secret_key())
    services = app.extensions["medbill"]
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"email": ADMIN, "password": PASSWORD}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    out = {"rss_after_create_app_kib": rss_kib(), "passes": []}
    for n in range(passes):
        started = time.perf_counter()
        for slug in slugs:
            for path in ("patients?per_page=5", "claims?per_page=5"):
                r = client.get(f"/api/v1/practices/{slug}/{path}", headers=headers)
                assert r.status_code == 200, (slug, path, r.status_code, r.get_data(as_text=True)[:300])
        out["passes"].append(
            {"pass": n + 1, "seconds": round(time.perf_counter() - started, 2), "rss_kib": rss_kib()}
            | cache_report(services.db)
        )
    return out


def child_worker(slugs: list[str], passes: int) -> dict:
    from jobs import statements
    from jobs.runtime import runtime

    rt = runtime()
    out = {"rss_after_runtime_kib": rss_kib(), "passes": []}
    for n in range(passes):
        started = time.perf_counter()
        report = statements.daily(slugs=slugs)
        assert len(report) == len(slugs) and not any(v.get("error") for v in report.values()), report
        out["passes"].append(
            {"pass": n + 1, "seconds": round(time.perf_counter() - started, 2), "rss_kib": rss_kib()}
            | cache_report(rt.db)
        )
    return out


def run_child(kind: str, env: dict, slugs_file: Path, passes: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--slugs-file", str(slugs_file), "--passes", str(passes)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def throwaway_migrations(head: str) -> Path:
    """A copy of migrations/ with one more tenant revision on top of head."""
    tmp = Path(tempfile.mkdtemp(prefix="medbill_bench_migrations_"))
    shutil.copytree(ROOT / "migrations", tmp / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / "migrations" / "tenant" / "versions" / "bench_one_column.py").write_text(
        THROWAWAY_REVISION.format(head=head)
    )
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--passes", type=int, default=2, help="passes of the web/worker children over all practices")
    parser.add_argument("--child", choices=["web", "worker"])
    parser.add_argument("--slugs-file")
    args = parser.parse_args()
    if args.child:
        slugs = json.loads(Path(args.slugs_file).read_text())
        result = (child_web if args.child == "web" else child_worker)(slugs, args.passes)
        print(json.dumps(result))
        return

    import psycopg
    from sqlalchemy.orm import Session

    import tenants.migrate as tm
    from tenants.db import Database
    from tenants.migrate import migrate_all, tenant_revisions
    from tenants.models import BillingCompany
    from tenants.registry import create_company, create_practice, create_user, grant

    name = f"medbill_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    db = Database(url)
    engine = db.engine
    data_dir = Path(tempfile.mkdtemp(prefix="medbill_bench_data_"))
    tmp_migrations = None
    try:
        migrate_all(engine)
        with Session(engine) as session:
            company = create_company(session, "bench", "Bench")
            user = create_user(session, ADMIN, "Bench Admin", PASSWORD)
            grant(session, user, "company_admin", company=session.get(BillingCompany, company.id))
            session.commit()

        times = []
        slugs = [f"p{i:05d}" for i in range(args.practices)]
        started = time.perf_counter()
        for i, slug in enumerate(slugs):
            t = time.perf_counter()
            create_practice(engine, "bench", slug, f"Practice {i}")
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - started
        times_ms = sorted(t * 1000 for t in times)
        p95 = times_ms[int(0.95 * (len(times_ms) - 1))]
        first, last = (statistics.mean(t * 1000 for t in part) for part in (times[:100], times[-100:]))
        print(
            f"provisioned {args.practices} practices in {total:.1f}s; per practice: "
            f"mean {statistics.mean(times_ms):.1f}"
            f" ms, p95 {p95:.1f} ms, max {times_ms[-1]:.1f} ms (mean of the first 100 {first:.1f} ms, of the last 100"
            f" {last:.1f} ms)"
        )

        runs = []
        for _ in range(3):
            report = migrate_all(engine)
            assert report.already_current == args.practices and not report.upgraded
            runs.append(report.seconds)
        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            REDIS_URL=args.redis,
            MEDBILL_DATA_DIR=str(data_dir),
            MEDBILL_SECRET_KEY="bench-" + secrets.token_hex(8),
            MEDBILL_SECURE_COOKIES="false",
            PYTHONPATH=str(ROOT),
        )
        for key in ("S3_BUCKET", "S3_ENDPOINT_URL"):
            env.pop(key, None)
        t = time.perf_counter()
        cli = subprocess.run(
            [sys.executable, "-m", "medbill.cli", "migrate"], env=env, capture_output=True, text=True, cwd=ROOT
        )
        cli_s = time.perf_counter() - t
        assert cli.returncode == 0, cli.stderr
        print(
            f"no-op migrate over {args.practices} practices: in process best {min(runs):.3f}s "
            f"(runs {[round(r, 3) for r in runs]}); `medbill migrate` subprocess {cli_s:.2f}s wall "
            f"({cli.stdout.strip().splitlines()[-1]})"
        )

        slugs_file = data_dir / "slugs.json"
        slugs_file.write_text(json.dumps(slugs))
        for kind, cap in (("web", "0"), ("web", "100"), ("worker", "0"), ("worker", "100")):
            # cap: MEDBILL_DB_SCHEMAS_PER_CONNECTION (0 = a pooled connection serves any number of schemas).
            result = run_child(kind, env | {"MEDBILL_DB_SCHEMAS_PER_CONNECTION": cap}, slugs_file, args.passes)
            base = result.get("rss_after_create_app_kib") or result.get("rss_after_runtime_kib")
            print(f"{kind} process, schemas per connection {cap or 'unlimited'}: RSS after start {base / 1024:.0f} MiB")
            for p in result["passes"]:
                print(
                    f"  pass {p['pass']} over {args.practices} practices ({p['seconds']}s): "
                    f"RSS {p['rss_kib'] / 1024:.0f}"
                    f" MiB; pool {p['pool']}; compiled cache {p['compiled_cache_entries']}/{p['compiled_cache_max']};"
                    f" tenant engines {p['tenant_engines']}/{p['tenant_engines_max']}; a pooled backend's catalog"
                    f" cache {p['backend_catalog_cache_kib'] / 1024:.1f} MiB after"
                    f" {p['schemas_on_this_connection'] or 'n/a'} schemas on that connection"
                )

        # One-column migration through the project's machinery, from a throwaway copy of the scripts.
        head = tm.tenant_head()
        tmp_migrations = throwaway_migrations(head)
        original = tm.MIGRATIONS_DIR
        tm.MIGRATIONS_DIR = tmp_migrations / "migrations"
        try:
            assert tm.tenant_head() == "bench_one_column"
            report = migrate_all(engine)
        finally:
            tm.MIGRATIONS_DIR = original
        assert len(report.upgraded) == args.practices, report
        with engine.connect() as conn:
            revisions = set(tenant_revisions(conn).values())
        assert revisions == {"bench_one_column"}, revisions
        print(
            f"one-column migration (ADD COLUMN on patients) over {args.practices} practices: {report.seconds:.2f}s "
            f"({report.seconds / args.practices * 1000:.1f} ms per practice, one transaction each)"
        )
    finally:
        from redis import Redis

        Redis.from_url(args.redis).flushdb()  # the worker round's statement-run jobs, for a database dropped here
        db.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)
        if tmp_migrations:
            shutil.rmtree(tmp_migrations, ignore_errors=True)
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
