"""Benchmark: post an 835 of 10,000 claims (30,000 lines) into one practice, and beside it the rate at which the
same PostgreSQL inserts as many ledger rows with one bulk INSERT.

    python bench/posting.py [--claims 10000] [--pg postgresql://postgres@127.0.0.1/postgres]

Creates and drops a scratch database of its own. Prints the figures; BENCHMARKS.md records them."""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims import npi, seed  # noqa: E402  (the claims benchmark's seeding: identity, provider, patients, claims)

from billing.models import Claim, ClaimLine, LedgerEntry, Payer, ServiceLine  # noqa: E402
from billing.posting import post_remittance, record_inbound  # noqa: E402
from integrations.x12.remit835 import parse_835  # noqa: E402
from tenants.db import Database  # noqa: E402
from tenants.migrate import migrate_all  # noqa: E402
from tenants.registry import create_company, create_practice  # noqa: E402


def add_third_line(db: Database, slug: str) -> None:
    """The claims benchmark seeds two lines per claim; the posting benchmark wants three."""
    with db.tenant_session(slug) as s:
        s.execute(text(f'SET LOCAL search_path TO "practice_{slug}"'))
        s.execute(
            text(
                "INSERT INTO service_lines (encounter_id, line_number, procedure_code, modifiers, units, "
                "diagnosis_pointers, charge, date_of_service, place_of_service, rendering_provider_id) "
                "SELECT encounter_id, 3, '81002', '{}', 1, '{1}', 18.00, date_of_service, place_of_service, "
                "rendering_provider_id FROM service_lines WHERE line_number = 1"
            )
        )
        s.execute(
            text(
                "INSERT INTO claim_lines (claim_id, service_line_id, line_number, charge) "
                "SELECT c.id, sl.id, 3, 18.00 FROM claims c JOIN service_lines sl "
                "ON sl.encounter_id = c.encounter_id AND sl.line_number = 3"
            )
        )
        s.execute(text("UPDATE claims SET total_charge = total_charge + 18.00, status = 'accepted'"))
        s.commit()


def remittance_835(db: Database, slug: str, group_npi: str) -> str:
    """An 835 paying every claim of the practice: 60% allowed, 20% coinsurance, the rest CO-45."""
    segments: list[str] = []
    total_paid = Decimal(0)
    claims_out: list[str] = []
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
    for claim_id, lines in by_claim.items():
        charge_total = paid_total = pr_total = Decimal(0)
        body = []
        for line_id, charge, code, dos in lines:
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
    today = date.today()
    segments = [
        "ST*835*0001",
        f"BPR*I*{total_paid}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*{today:%Y%m%d}",
        "TRN*1*BENCH12345*1512345678", f"DTM*405*{today:%Y%m%d}", "N1*PR*BENCH HEALTH", "N3*1 PAYER WAY",
        "N4*COLUMBUS*OH*43215", "REF*2U*BENCH1", "PER*BL*BENCH*TE*6145550100", f"N1*PE*BENCH CLINIC*XX*{group_npi}",
        "REF*TJ*741234567", "LX*1", *claims_out,
    ]  # fmt: skip
    segments.append(f"SE*{len(segments) + 1}*0001")
    isa = (
        f"ISA*00*          *00*          *ZZ*{'BENCHPAYER':<15}*ZZ*{'BENCHCLINIC':<15}*{today:%y%m%d}*1200*^*00501*"
        f"000000001*0*P*:"
    )
    return "~\n".join([isa, f"GS*HP*BENCHPAYER*BENCHCLINIC*{today:%Y%m%d}*1200*1*X*005010X221A1", *segments,
                       "GE*1*1", "IEA*1*000000001"]) + "~\n"  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=10_000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"medbill_bench_{secrets.token_hex(3)}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}")
    try:
        migrate_all(db.engine)
        with db.shared_session() as s:
            create_company(s, "bench", "Bench")
            payer = Payer(payer_id="BENCH1", name="Bench Health", claim_filing_indicator="CI")
            s.add(payer)
            s.commit()
            payer_id = payer.id
        create_practice(db.engine, "bench", "bench00", "Bench 0")
        seed(db, "bench00", payer_id, args.claims, 0)
        add_third_line(db, "bench00")
        text_835 = remittance_835(db, "bench00", npi("100000000"))

        started = time.perf_counter()
        (remittance,) = parse_835(text_835)
        parse_s = time.perf_counter() - started
        lines = sum(len(c.lines) for c in remittance.claims)
        started = time.perf_counter()
        with db.tenant_session("bench00") as s:
            inbound = record_inbound(s, remittance, "bench")
            summary = post_remittance(s, remittance, inbound_id=inbound, deposit_storage_key="bench")
            s.commit()
            entries = s.scalar(select(func.count()).select_from(LedgerEntry))
        post_s = time.perf_counter() - started
        print(f"parsed an 835 of {len(remittance.claims)} claims / {lines} lines in {parse_s:.2f}s")
        print(f"posted it in {post_s:.2f}s: {len(remittance.claims) / post_s:.0f} claims/s, "
              f"{entries} ledger entries ({entries / post_s:.0f} entries/s); posted {summary['claims_posted']}, "
              f"exceptions {len(summary['exceptions'])}")  # fmt: skip

        with db.tenant_session("bench00") as s:
            s.execute(text('SET LOCAL search_path TO "practice_bench00"'))
            s.execute(text("CREATE TEMP TABLE ledger_copy (LIKE ledger_entries INCLUDING DEFAULTS) ON COMMIT DROP"))
            started = time.perf_counter()
            s.execute(
                text(
                    "INSERT INTO ledger_copy (id, service_line_id, claim_line_id, claim_id, patient_id, kind, amount,"
                    " insurance_delta, patient_delta, source_type, posting_key) SELECT g, 1, 1, 1, 1,"
                    " 'insurance_payment', 10, -10, 0, 'bench', 'k' || g FROM generate_series(1, :n) g"
                ),
                {"n": entries},
            )
            bulk_s = time.perf_counter() - started
            s.rollback()
        print(f"one bulk INSERT of {entries} ledger-shaped rows: {bulk_s:.2f}s ({entries / bulk_s:.0f} rows/s)")
    finally:
        db.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
