"""Benchmark: provision N practice schemas, then time a no-op `migrate_all` over all of them.

    python bench/migrate_practices.py --practices 200 [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Creates and drops a scratch database of its own. Prints the figures; BENCHMARKS.md records them."""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

import psycopg
from sqlalchemy import create_engine

from tenants.migrate import migrate_all
from tenants.registry import create_company, create_practice


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=200)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"medbill_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    engine = create_engine(url, connect_args={"options": "-c search_path=pg_catalog"})
    try:
        migrate_all(engine)
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            create_company(session, "bench", "Bench")
            session.commit()
        times = []
        started = time.perf_counter()
        for i in range(args.practices):
            t = time.perf_counter()
            create_practice(engine, "bench", f"p{i:05d}", f"Practice {i}")
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - started
        print(
            f"provisioned {args.practices} practices in {total:.2f}s; per practice: "
            f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
        )
        runs = []
        for _ in range(3):
            report = migrate_all(engine)
            assert report.already_current == args.practices and not report.upgraded
            runs.append(report.seconds)
        print(
            f"no-op migrate over {args.practices} practices: best {min(runs):.3f}s, runs {[round(r, 3) for r in runs]}"
        )
    finally:
        engine.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
