"""Benchmark: job throughput with 1, 2 and 4 RQ workers (`medbill worker --burst` subprocesses) on the posting and
statements queues: claims posted/s and statements rendered/s, and a count of the results proving that no job was
lost or run twice.

    python bench/jobs_throughput.py [--practices 4] [--claims 200] [--claims-per-set 25] [--workers 1,2,4]

For each worker count a fresh group of practices (2-line claims, accepted by the payer) is seeded; every practice
gets its claims paid by 835 sets of `--claims-per-set` claims, stored and queued as posting jobs (the job the upload
endpoint queues). All jobs are queued before the workers start; the rate is measured from the first job started to
the last job ended (RQ's own timestamps). The payments leave a coinsurance on every claim, so every patient is then
due a statement: one statement-run job per practice on the statements queue renders, stores and records them.

Creates and drops a scratch database of its own; uses Redis DB 12 (`--redis`, flushed before each round) and local
storage in a temporary directory. Nothing else may use that Redis database meanwhile: the test fixtures flush theirs
when a run starts (a pytest run with MEDBILL_TEST_REDIS_DB=12 alongside emptied the queue under the workers once)."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def remittance_sets(db, slug: str, group_npi: str, per_set: int, tag: str) -> list[tuple[str, int]]:
    """835 files paying the practice's claims, `per_set` claims each: 60% allowed, 20% coinsurance, the rest CO-45.
    Returns (file text, claims in it)."""
    from sqlalchemy import select

    from billing.models import Claim, ClaimLine, ServiceLine

    with db.tenant_session(slug) as s:
        rows = s.execute(
            select(Claim.id, ClaimLine.id, ClaimLine.charge, ServiceLine.procedure_code, ServiceLine.date_of_service)
            .join(ClaimLine, ClaimLine.claim_id == Claim.id)
            .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
            .order_by(Claim.id, ClaimLine.line_number)
        ).all()
    by_claim: dict[int, list] = {}
    for claim_id, line_id, charge, code, dos in rows:
        by_claim.setdefault(claim_id, []).append((line_id, charge, code, dos))
    ids = list(by_claim)
    today = date.today()
    files = []
    for n, start in enumerate(range(0, len(ids), per_set)):
        total_paid = Decimal(0)
        claims_out: list[str] = []
        for claim_id in ids[start : start + per_set]:
            charge_total = paid_total = pr_total = Decimal(0)
            body = []
            for line_id, charge, code, dos in by_claim[claim_id]:
                allowed = (charge * Decimal("0.60")).quantize(Decimal("0.01"))
                coins = (allowed * Decimal("0.20")).quantize(Decimal("0.01"))
                paid = allowed - coins
                body += [
                    f"SVC*HC:{code}*{charge}*{paid}**1", f"DTM*472*{dos:%Y%m%d}",
                    f"CAS*CO*45*{charge - allowed}", f"CAS*PR*2*{coins}", f"REF*6R*{line_id}", f"AMT*B6*{allowed}",
                ]  # fmt: skip
                charge_total += charge
                paid_total += paid
                pr_total += coins
            claims_out += [f"CLP*{claim_id}*1*{charge_total}*{paid_total}*{pr_total}*12*PAYER{claim_id}*11",
                           f"NM1*QC*1*BENCH*PAT****MI*M{claim_id}", *body]  # fmt: skip
            total_paid += paid_total
        segments = [
            "ST*835*0001",
            f"BPR*I*{total_paid}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*{today:%Y%m%d}",
            f"TRN*1*{tag}{slug}{n:04d}*1512345678", f"DTM*405*{today:%Y%m%d}", "N1*PR*BENCH HEALTH",
            "N3*1 PAYER WAY", "N4*COLUMBUS*OH*43215", "REF*2U*BENCH1", "PER*BL*BENCH*TE*6145550100",
            f"N1*PE*BENCH CLINIC*XX*{group_npi}", "REF*TJ*741234567", "LX*1", *claims_out,
        ]  # fmt: skip
        segments.append(f"SE*{len(segments) + 1}*0001")
        isa = (
            f"ISA*00*          *00*          *ZZ*{'BENCHPAYER':<15}*ZZ*{'BENCHCLINIC':<15}*{today:%y%m%d}*1200*^*"
            f"00501*{n + 1:09d}*0*P*:"
        )
        text_835 = "~\n".join([isa, f"GS*HP*BENCHPAYER*BENCHCLINIC*{today:%Y%m%d}*1200*{n + 1}*X*005010X221A1",
                               *segments, f"GE*1*{n + 1}", f"IEA*1*{n + 1:09d}"]) + "~\n"  # fmt: skip
        files.append((text_835, len(ids[start : start + per_set])))
    return files


def run_workers(n: int, queue: str, env: dict) -> float:
    """Start n burst workers on the queue and wait for all of them; the wall time, worker start-up included."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "medbill.cli", "worker", "--queue", queue, "--burst"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    for p in procs:
        if p.wait(timeout=3600) != 0:
            raise RuntimeError(f"a worker exited with {p.returncode}")
    return time.perf_counter() - started


def job_span(jobs, wall: float) -> float:
    """First job started to last job ended, from RQ's records (the wall time if a job's record is gone)."""
    if not jobs or any(j is None or not j.started_at or not j.ended_at for j in jobs):
        return wall
    started = min(j.started_at for j in jobs)
    ended = max(j.ended_at for j in jobs)
    return (ended - started).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=4, help="practices per round")
    parser.add_argument("--claims", type=int, default=200, help="claims per practice")
    parser.add_argument("--claims-per-set", type=int, default=25)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()

    import psycopg
    from claims import npi, seed  # the claims benchmark's seeding: identity, provider, insured patients, claims
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from sqlalchemy import func, select, text

    from billing import statements
    from billing.edi_intake import queue_posting
    from billing.models import InboundFile, Payer, Statement, StatementRun
    from integrations.storage import practice_key
    from integrations.x12.remit835 import parse_835
    from jobs.queues import Dispatcher
    from jobs.statements import run_statements
    from medbill.config import Settings
    from medbill.services import make_storage
    from tenants.db import Database, set_local_search_path
    from tenants.migrate import migrate_all
    from tenants.registry import create_company, create_practice

    name = f"medbill_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    db = Database(url)
    work = Path(tempfile.mkdtemp(prefix="medbill_bench_jobs_"))
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        REDIS_URL=args.redis,
        MEDBILL_DATA_DIR=str(work),
        MEDBILL_SECRET_KEY="bench-" + secrets.token_hex(8),
        PYTHONPATH=str(ROOT),
        MEDBILL_LOG_LEVEL="WARNING",
    )
    for key in ("S3_BUCKET", "S3_ENDPOINT_URL"):
        env.pop(key, None)
    settings = Settings.from_env(env)
    storage = make_storage(settings)
    redis = Redis.from_url(args.redis)
    dispatcher = Dispatcher(redis)
    try:
        migrate_all(db.engine)
        with db.shared_session() as s:
            create_company(s, "bench", "Bench")
            payer = Payer(payer_id="BENCH1", name="Bench Health", claim_filing_indicator="CI")
            s.add(payer)
            s.commit()
            payer_id = payer.id
        index = 0
        for workers in [int(w) for w in args.workers.split(",")]:
            redis.flushdb()
            slugs = []
            for _ in range(args.practices):
                slug = f"w{workers}p{index:03d}"
                create_practice(db.engine, "bench", slug, slug)
                seed(db, slug, payer_id, args.claims, index)
                with db.tenant_session(slug) as s:
                    set_local_search_path(s, slug)
                    s.execute(text("UPDATE claims SET status = 'accepted'"))
                    s.commit()
                slugs.append((slug, index))
                index += 1
            # Queue every set as the upload endpoint does: file in storage, one posting job per set.
            posting_jobs, claims_total = [], 0
            for slug, i in slugs:
                for n, (text_835, count) in enumerate(
                    remittance_sets(db, slug, npi(f"1{i:08d}"), args.claims_per_set, f"W{workers}")
                ):
                    key = practice_key(slug, "bench", f"set{n:04d}.835")
                    storage.put(key, text_835.encode())
                    (remittance,) = parse_835(text_835)
                    job_id, added = queue_posting(dispatcher, slug, key, remittance.content_key)
                    assert added
                    posting_jobs.append(job_id)
                    claims_total += count
            load = os.getloadavg()[0]
            wall = run_workers(workers, "posting", env)
            jobs = Job.fetch_many(posting_jobs, connection=redis)
            statuses = [j.get_status() if j else "missing" for j in jobs]
            results = [j.return_value() if j else None for j in jobs]
            posted = sum(1 for r in results if r and r.get("status") == "posted")
            duplicates = sum(1 for r in results if r and r.get("status") == "duplicate")
            inbound = 0
            for slug, _ in slugs:
                with db.tenant_session(slug) as s:
                    inbound += s.scalar(select(func.count()).select_from(InboundFile))
            span = job_span(jobs, wall)
            left = (
                len(Queue("posting", connection=redis)) + Queue("posting", connection=redis).failed_job_registry.count
            )
            print(
                f"{workers} worker(s), posting: {len(jobs)} jobs, {claims_total} claims in {span:.2f}s: "
                f"{claims_total / span:.0f} claims/s; finished {statuses.count('finished')}, posted {posted}, "
                f"duplicates {duplicates}, sets recorded {inbound}, left queued/failed {left}; {wall:.1f}s wall with"
                f" worker start-up; load average {load:.1f}"
            )
            assert inbound == len(jobs) and not duplicates and not left, "a posting job was lost or rerun"
            assert posted == len(jobs), f"job records missing from Redis: {statuses}"

            run_jobs = []
            for slug, _ in slugs:
                with db.tenant_session(slug) as s:
                    run, created = statements.start_run(s, None, trigger="user")
                    s.commit()
                    run_jobs.append(dispatcher.enqueue_now("statements", run_statements, slug, run.id, timeout=3600).id)
            load = os.getloadavg()[0]
            wall = run_workers(workers, "statements", env)
            jobs = Job.fetch_many(run_jobs, connection=redis)
            rendered = distinct = selected = 0
            for slug, _ in slugs:
                with db.tenant_session(slug) as s:
                    rendered += s.scalar(select(func.count()).select_from(Statement))
                    distinct += s.scalar(select(func.count(func.distinct(Statement.patient_id))))
                    selected += s.scalar(select(func.sum(StatementRun.patients_selected)))
            span = job_span(jobs, wall)
            left = Queue("statements", connection=redis).failed_job_registry.count
            print(
                f"{workers} worker(s), statements: {len(jobs)} runs, {rendered} statements in {span:.2f}s: "
                f"{rendered / span:.1f} statements/s; patients selected {selected}, statements {rendered} for "
                f"{distinct} distinct patients, failed {left}; {wall:.1f}s wall with worker start-up; load average"
                f" {load:.1f}"
            )
            assert rendered == distinct == selected and not left, "a statement was lost or made twice"
    finally:
        db.dispose()
        redis.flushdb()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
