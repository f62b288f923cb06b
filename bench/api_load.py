"""Benchmark: the API under load on loopback. N practices with data (50 insured patients and 50 claims each by
default), `medbill web --processes 2` as a subprocess, and wrk (Debian package `wrk`) in a second process spreading
requests over every practice with a biller's bearer token: p50/p95/p99 latency and requests/s for the claim list and
the patient detail endpoints. Any non-2xx answer or socket error fails the run.

    python bench/api_load.py [--practices 200] [--claims-per-practice 50] [--duration 30] [--connections 16]

Creates and drops a scratch database of its own; the web processes use Redis DB 12 (`--redis`) and local storage in
a temporary directory."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PASSWORD = "bench-password-1"
BILLER = "biller@bench.example"

# wrk script: requests go round-robin over the paths file (one practice's URL after another); `done` prints one JSON
# line with the latency percentiles (microseconds) and the error counts.
LUA = r"""
local paths = {}
local token = os.getenv("BENCH_TOKEN")
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = id * 7919
end

request = function()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token, ["Accept"] = "application/json"})
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50": %d, "p95": %d, "p99": %d, "max": %d, "connect": %d, "read": %d,' ..
    ' "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{url} answered {exc.code}: {exc.read()[:500]!r}") from exc
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()[-3000:]}")


def post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--claims-per-practice", type=int, default=50)
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per endpoint")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--timeout", default="10s", help="wrk's per-request timeout (a request slower than this counts as an error)"
    )
    parser.add_argument("--processes", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")

    import psycopg
    from claims import seed  # the claims benchmark's seeding: identity, provider, insured patients, ready claims
    from sqlalchemy import select

    from billing.models import Patient, Payer
    from tenants.db import Database
    from tenants.migrate import migrate_all
    from tenants.models import BillingCompany
    from tenants.registry import create_company, create_practice, create_user, grant

    name = f"medbill_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    db = Database(url)
    work = Path(tempfile.mkdtemp(prefix="medbill_bench_api_"))
    web = None
    try:
        migrate_all(db.engine)
        with db.shared_session() as s:
            company = create_company(s, "bench", "Bench")
            user = create_user(s, BILLER, "Bench Biller", PASSWORD)
            grant(s, user, "biller", company=s.get(BillingCompany, company.id))
            payer = Payer(payer_id="BENCH1", name="Bench Health", claim_filing_indicator="CI")
            s.add(payer)
            s.commit()
            payer_id = payer.id
        started = time.perf_counter()
        slugs = [f"p{i:04d}" for i in range(args.practices)]
        patient_ids: dict[str, list[int]] = {}
        for i, slug in enumerate(slugs):
            create_practice(db.engine, "bench", slug, f"Practice {i}")
            seed(db, slug, payer_id, args.claims_per_practice, i)
            with db.tenant_session(slug) as s:
                patient_ids[slug] = list(s.scalars(select(Patient.id).order_by(Patient.id)))
        print(
            f"seeded {args.practices} practices x {args.claims_per_practice} patients/claims "
            f"in {time.perf_counter() - started:.0f}s"
        )
        db.dispose()

        (work / "data" / "storage").mkdir(parents=True)
        port = free_port()
        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            REDIS_URL=args.redis,
            MEDBILL_DATA_DIR=str(work / "data"),
            MEDBILL_SECRET_KEY="bench-" + secrets.token_hex(8),
            MEDBILL_SECURE_COOKIES="false",
            PYTHONPATH=str(ROOT),
        )
        for key in ("S3_BUCKET", "S3_ENDPOINT_URL"):
            env.pop(key, None)
        log = (work / "web.log").open("w")
        web = subprocess.Popen(
            [sys.executable, "-m", "medbill.cli", "web", "--port", str(port), "--processes", str(args.processes)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health", work / "web.log")
        token = post_json(f"{base}/api/v1/auth/token", {"email": BILLER, "password": PASSWORD})["access_token"]

        lua = work / "spread.lua"
        lua.write_text(LUA)
        endpoints = {
            "claim list (25 per page)": [f"/api/v1/practices/{s}/claims?per_page=25" for s in slugs],
            # Every practice's patients in turn: practice after practice, patient after patient.
            "patient detail": [
                f"/api/v1/practices/{s}/patients/{ids[k % len(ids)]}"
                for k in range(args.claims_per_practice)
                for s, ids in patient_ids.items()
            ],
        }
        for label, paths in endpoints.items():
            paths_file = work / "paths.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            wenv = dict(os.environ, BENCH_TOKEN=token, BENCH_PATHS=str(paths_file))
            # A short warm-up (connection pools, first compiles) that is not counted.
            subprocess.run(
                ["wrk", "-t1", "-c4", "-d3s", "-s", str(lua), base], env=wenv, capture_output=True, check=True
            )
            load_before = os.getloadavg()[0]
            out = subprocess.run(
                [
                    "wrk",
                    f"-t{args.threads}",
                    f"-c{args.connections}",
                    f"-d{args.duration}s",
                    f"--timeout={args.timeout}",
                    "-s",
                    str(lua),
                    base,
                ],  # fmt: skip
                env=wenv,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            print(
                f"{label}: {r['requests'] / r['seconds']:.0f} req/s over {r['seconds']:.0f}s ({r['requests']} requests,"
                f" {len(paths)} distinct URLs over {args.practices} practices, {args.connections} connections);"
                f" latency p50 {r['p50'] / 1000:.1f} ms, p95 {r['p95'] / 1000:.1f} ms, p99 {r['p99'] / 1000:.1f} ms,"
                f" max {r['max'] / 1000:.0f} ms; errors {errors} (non-2xx {r['status']}, timeouts over {args.timeout}"
                f" {r['timeout']});"
                f" load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
            )
            if errors:
                log.flush()
                bad = [line for line in (work / "web.log").read_text().splitlines() if '" 2' not in line]
                raise SystemExit(f"{label}: {errors} errors; web log lines other than 2xx:\n" + "\n".join(bad[-40:]))
    finally:
        if web is not None:
            web.terminate()
            try:
                web.wait(timeout=20)
            except subprocess.TimeoutExpired:
                web.kill()
        db.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
