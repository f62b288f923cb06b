"""Benchmark: build and write 837P for 10,000 ready claims across 10 practices (database → 837 text, the work of a
submission run), then time pyx12 validating the same files.

    python bench/claims.py [--practices 10] [--claims-per-practice 1000] [--pg postgresql://postgres@127.0.0.1/postgres]

Creates and drops a scratch database of its own. Prints the figures; BENCHMARKS.md records them."""

from __future__ import annotations

import argparse
import io
import secrets
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pyx12.params
import pyx12.x12n_document
from sqlalchemy import insert

from billing.codes import npi_check_digit
from billing.models import (
    BillingIdentity,
    Claim,
    ClaimLine,
    Coverage,
    Encounter,
    Patient,
    Payer,
    PracticePayer,
    Provider,
    ServiceLine,
)
from billing.submissions import prepare_submission
from tenants.db import Database
from tenants.migrate import migrate_all
from tenants.registry import create_company, create_practice


def npi(first_nine: str) -> str:
    return first_nine + npi_check_digit(first_nine)


def seed(db: Database, slug: str, payer_id: int, n_claims: int, index: int) -> None:
    today = date.today()
    with db.tenant_session(slug) as s:
        s.add(
            BillingIdentity(
                id=1, organization_name=f"Bench Clinic {index}", group_npi=npi(f"1{index:08d}"), tax_id="741234567",
                address_line1="1 Main St", city="Austin", state="TX", postal_code="787011234",
                contact_name="Billing", contact_phone="5125550100", clearinghouse_name="bench",
                submitter_id=f"SUB{index:03d}", receiver_id="BENCHCH",
            )
        )  # fmt: skip
        s.add(PracticePayer(payer_id=payer_id))
        provider = Provider(npi=npi(f"2{index:08d}"), first_name="Ana", last_name="Reyes", taxonomy_code="207Q00000X")
        s.add(provider)
        s.flush()
        patients = (
            s.execute(
                insert(Patient).returning(Patient.id),
                [
                    {
                        "account_number": f"B{i}",
                        "first_name": "Pat",
                        "last_name": f"Bench{i}",
                        "date_of_birth": date(1970, 1, 1) + timedelta(days=i),
                        "sex": "F",
                        "address_line1": "2 Elm St",
                        "city": "Austin",
                        "state": "TX",
                        "postal_code": "78701",
                    }
                    for i in range(n_claims)
                ],  # fmt: skip
            )
            .scalars()
            .all()
        )
        coverages = (
            s.execute(
                insert(Coverage).returning(Coverage.id),
                [
                    {
                        "patient_id": p,
                        "payer_id": payer_id,
                        "priority": 1,
                        "member_id": f"M{p:08d}",
                        "effective_date": date(2020, 1, 1),
                    }
                    for p in patients
                ],  # fmt: skip
            )
            .scalars()
            .all()
        )
        encounters = (
            s.execute(
                insert(Encounter).returning(Encounter.id),
                [
                    {
                        "patient_id": p,
                        "date_of_service": today - timedelta(days=3),
                        "place_of_service": "11",
                        "rendering_provider_id": provider.id,
                        "diagnoses": ["E11.9", "I10"],
                    }
                    for p in patients
                ],  # fmt: skip
            )
            .scalars()
            .all()
        )
        lines = (
            s.execute(
                insert(ServiceLine).returning(ServiceLine.id),
                [
                    {
                        "encounter_id": e,
                        "line_number": n,
                        "procedure_code": code,
                        "modifiers": mods,
                        "units": Decimal(1),
                        "diagnosis_pointers": [1, 2],
                        "charge": Decimal(charge),
                        "date_of_service": today - timedelta(days=3),
                        "place_of_service": "11",
                        "rendering_provider_id": provider.id,
                    }
                    for e in encounters
                    for n, code, mods, charge in ((1, "99213", ["25"], "150.00"), (2, "36415", [], "25.00"))
                ],  # fmt: skip
            )
            .scalars()
            .all()
        )
        claims = (
            s.execute(
                insert(Claim).returning(Claim.id),
                [
                    {
                        "encounter_id": e,
                        "patient_id": p,
                        "coverage_id": c,
                        "payer_id": payer_id,
                        "rendering_provider_id": provider.id,
                        "status": "ready",
                        "total_charge": Decimal("175.00"),
                    }
                    for e, p, c in zip(encounters, patients, coverages, strict=True)
                ],  # fmt: skip
            )
            .scalars()
            .all()
        )
        s.execute(
            insert(ClaimLine),
            [
                {
                    "claim_id": claim,
                    "service_line_id": lines[2 * i + k],
                    "line_number": k + 1,
                    "charge": Decimal("150.00") if k == 0 else Decimal("25.00"),
                }
                for i, claim in enumerate(claims)
                for k in (0, 1)
            ],  # fmt: skip
        )
        s.commit()


def pyx12_ok(path: Path) -> bool:
    return pyx12.x12n_document.x12n_document(
        param=pyx12.params.params(), src_file=str(path), fd_997=io.StringIO(), fd_html=None
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=10)
    parser.add_argument("--claims-per-practice", type=int, default=1000)
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
        slugs = []
        started = time.perf_counter()
        for i in range(args.practices):
            slug = f"bench{i:02d}"
            create_practice(db.engine, "bench", slug, f"Bench {i}")
            seed(db, slug, payer_id, args.claims_per_practice, i)
            slugs.append(slug)
        print(f"seeded {args.practices} practices x {args.claims_per_practice} claims in "
              f"{time.perf_counter() - started:.1f}s")  # fmt: skip
        out = Path(tempfile.mkdtemp(prefix="medbill-bench-"))
        total_claims, files = 0, []
        started = time.perf_counter()
        for slug in slugs:
            with db.tenant_session(slug) as s:
                prepared = prepare_submission(s, practice_slug=slug, user_id=None)
                s.commit()
            total_claims += prepared.submission.claim_count
            path = out / prepared.submission.filename
            path.write_text(prepared.text)
            files.append(path)
        build = time.perf_counter() - started
        size = sum(p.stat().st_size for p in files)
        print(f"built and wrote 837P for {total_claims} claims in {build:.2f}s: {total_claims / build:.0f} claims/s "
              f"(scrub + 837 build + write, {size / 1e6:.1f} MB in {len(files)} files)")  # fmt: skip
        started = time.perf_counter()
        valid = [pyx12_ok(p) for p in files]
        parse = time.perf_counter() - started
        print(f"pyx12 validated the same {len(files)} files in {parse:.2f}s: {total_claims / parse:.0f} claims/s; "
              f"all valid: {all(valid)}")  # fmt: skip
    finally:
        db.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
