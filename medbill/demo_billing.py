"""Demo billing data for `medbill up`: payers, each practice's billing identity (pointed at the sandbox
clearinghouse), providers, fee schedule, contracts, coverages, recent visits and their claims, scrubbed and ready
to go out. Deterministic, and idempotent per practice (a practice that has a billing identity is left alone)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from billing import claims as claim_service
from billing import encounters, setup
from billing.codes import npi_check_digit
from billing.models import BillingIdentity, Patient, Payer
from billing.scrubber import scrub_claims
from tenants.authz import system_access
from tenants.db import Database

SANDBOX_ACCOUNT = "demo"
# The company secret (tenants.secrets) holding the sandbox account's password; `medbill up` stores it there.
SANDBOX_SECRET = "sandbox-clearinghouse"
PAYERS = (
    ("SUMMIT01", "Summit Health Plan", "CI", "PO Box 9001", "Columbus", "OH", "43215"),
    ("MCRB01", "Medicare Part B (demo)", "MB", "PO Box 2001", "Columbus", "OH", "43216"),
    ("OHMCD01", "Ohio Medicaid (demo)", "MC", "PO Box 3001", "Columbus", "OH", "43218"),
)
SPECIALTIES = {
    "riverside_family": {
        "taxonomy": "207Q00000X",
        "providers": (("Anita", "Patel", "MD"), ("Marcus", "Hale", "DO")),
        "fees": {"99203": "165.00", "99213": "150.00", "99214": "210.00", "99396": "245.00", "36415": "25.00",
                 "81002": "18.00", "93000": "80.00", "90686": "42.00", "90471": "28.00"},
        "visits": (
            (("99213", ()), ("36415", ())), (("99214", ("25",)), ("93000", ())), (("99396", ()), ("90686", ()),
             ("90471", ())), (("99213", ()), ("81002", ())), (("99203", ()),),
        ),
        "diagnoses": ("E11.9", "I10", "E78.5", "J06.9", "Z00.00", "M54.50", "R51.9", "N39.0", "Z23"),
    },
    "lakeview_peds": {
        "taxonomy": "208000000X",
        "providers": (("David", "Nguyen", "MD"), ("Rosa", "Lindqvist", "MD")),
        "fees": {"99392": "180.00", "99393": "185.00", "99213": "140.00", "99214": "195.00", "87880": "35.00",
                 "90460": "30.00", "90700": "55.00", "92551": "22.00"},
        "visits": (
            (("99213", ()), ("87880", ())), (("99392", ()), ("90460", ()), ("90700", ())), (("99214", ()),),
            (("99393", ()), ("92551", ())),
        ),
        "diagnoses": ("J02.0", "J06.9", "Z00.129", "Z23", "H66.90", "R50.9", "J45.909", "L20.9"),
    },
    "northside_ortho": {
        "taxonomy": "207X00000X",
        "providers": (("Grace", "Okafor", "MD"), ("Tomas", "Reyes", "MD")),
        "fees": {"99203": "190.00", "99213": "160.00", "99214": "225.00", "20610": "210.00", "73030": "95.00",
                 "73562": "110.00", "29125": "150.00", "J1030": "18.00"},
        "visits": (
            (("99214", ("25",)), ("20610", ("RT",)), ("J1030", ())), (("99203", ()), ("73562", ("LT",))),
            (("99213", ()), ("73030", ("RT",))), (("99213", ()), ("29125", ("LT",))),
        ),
        "diagnoses": ("M17.11", "M17.12", "M25.561", "M75.101", "S52.501A", "M54.16", "M19.011", "S83.241A"),
    },
}  # fmt: skip


def _npi(first_nine: str) -> str:
    return first_nine + npi_check_digit(first_nine)


def ensure_payers(db: Database) -> dict[str, int]:
    with db.shared_session() as session:
        ids = {}
        for payer_id, name, indicator, line1, city, state, zip_code in PAYERS:
            # The demo's payers are curated at platform level, as the operator's `medbill payers add` would.
            payer = session.scalar(select(Payer).where(Payer.payer_id == payer_id, Payer.company_id.is_(None)))
            if payer is None:
                payer = setup.create_payer(
                    session,
                    {"payer_id": payer_id, "name": name, "claim_filing_indicator": indicator,
                     "address_line1": line1, "city": city, "state": state, "postal_code": zip_code},
                    company_id=None,
                )  # fmt: skip
            ids[payer_id] = payer.id
        session.commit()
        return ids


def seed_billing(
    db: Database, slug: str, name: str, *, index: int, today: date | None = None, specialty: str | None = None
) -> bool:
    """Returns False when the practice already had its billing set up. `specialty` (default: the slug) picks the
    :data:`SPECIALTIES` entry, so tests can bill a practice of any slug like a demo one."""
    spec = SPECIALTIES[specialty or slug]
    today = today or date.today()
    rng = random.Random(7000 + index)
    payers = ensure_payers(db)
    with db.tenant_session(slug) as session:
        if session.get(BillingIdentity, 1) is not None:
            return False
        access = system_access(session, slug, actor="demo seed")
        setup.set_billing_identity(
            session,
            access,
            {
                "organization_name": name,
                "group_npi": _npi(f"15{index:02d}00000"),
                "tax_id": f"31{index:02d}45678",
                "taxonomy_code": spec["taxonomy"],
                "address_line1": f"{100 + index * 10} Summit Park Dr",
                "city": "Columbus",
                "state": "OH",
                "postal_code": "432151234",
                "contact_name": "Summit Billing Partners",
                "contact_phone": "6145550100",
                "contact_email": "claims@summitbilling.example",
                "clearinghouse_name": "sandbox",
                "submitter_id": f"SUMMIT{index:02d}",
                "receiver_id": "SANDBOXCH",
                "usage_indicator": "T",
            },
        )
        # Written by the seed itself (set_clearinghouse_transport would refuse port 0 and no host key): `medbill up`
        # fills in the sandbox's port and host key each time it starts it, and stores the password as the
        # company's secret; the "sandbox" marker is what it looks for.
        session.get(BillingIdentity, 1).transport = {
            "transport": "sftp",
            "sandbox": True,
            "host": "127.0.0.1",
            "port": 0,
            "username": SANDBOX_ACCOUNT,
            "password_secret": SANDBOX_SECRET,
            "host_key_sha256": "",
        }
        for payer_id in payers.values():
            setup.enroll_payer(session, access, payer_id, {"timely_filing_days": 365, "appeal_window_days": 180})
        providers = [
            setup.create_provider(
                session,
                access,
                {
                    "npi": _npi(f"16{index:02d}0000{n}"),
                    "first_name": first,
                    "last_name": last,
                    "credential": cred,
                    "taxonomy_code": spec["taxonomy"],
                },
            )  # fmt: skip
            for n, (first, last, cred) in enumerate(spec["providers"])
        ]
        for code, charge in spec["fees"].items():
            setup.set_fee(session, access, code, charge)
        effective = date(today.year - 1, 1, 1)
        setup.create_contract(
            session,
            access,
            {"payer_id": payers["SUMMIT01"], "name": "Summit Health Plan commercial", "effective_from": effective,
             "default_percent_of_billed": Decimal("62"),
             "rates": [{"procedure_code": code, "allowed": str((Decimal(fee) * Decimal("0.6")).quantize(Decimal("1")))}
                       for code, fee in list(spec["fees"].items())[:3]]},
        )  # fmt: skip
        setup.create_contract(
            session,
            access,
            {"payer_id": payers["MCRB01"], "name": "Medicare physician fee schedule", "effective_from": effective,
             "default_percent_of_billed": Decimal("48")},
        )  # fmt: skip
        setup.create_contract(
            session,
            access,
            {"payer_id": payers["OHMCD01"], "name": "Ohio Medicaid", "effective_from": effective,
             "default_percent_of_billed": Decimal("40")},
        )  # fmt: skip

        patients = list(session.scalars(select(Patient).order_by(Patient.account_number)))
        for n, patient in enumerate(patients):
            age = (today - patient.date_of_birth).days // 365
            payer = "MCRB01" if age >= 65 else ("OHMCD01" if age < 18 and n % 2 == 0 else "SUMMIT01")
            # Two accounts carry member ids the payer does not know: the sandbox rejects them (277CA A7).
            member = f"UNK{n:06d}" if n in (5, 17) else f"{payer[:2]}{index}{patient.id:07d}"
            setup.add_coverage(
                session,
                access,
                patient.id,
                {"payer_id": payers[payer], "priority": 1, "member_id": member,
                 "group_number": "SHP100" if payer == "SUMMIT01" else None, "relationship_code": "18",
                 "effective_date": date(today.year - 2, 1, 1)},
            )  # fmt: skip
        made = []
        for patient in patients[:24]:
            for _ in range(rng.choice((1, 1, 2))):
                visit = rng.choice(spec["visits"])
                diagnoses = rng.sample(spec["diagnoses"], k=rng.choice((1, 2, 3)))
                encounter = encounters.create_encounter(
                    session,
                    access,
                    {
                        "patient_id": patient.id,
                        "date_of_service": (today - timedelta(days=rng.randint(1, 40))).isoformat(),
                        "place_of_service": "11",
                        "rendering_provider_id": rng.choice(providers).id,
                        "diagnoses": diagnoses,
                        "lines": [
                            {
                                "procedure_code": code,
                                "modifiers": list(mods),
                                "units": 1,
                                "diagnosis_pointers": list(range(1, len(diagnoses) + 1))[:4],
                            }
                            for code, mods in visit
                        ],  # fmt: skip
                    },
                )
                made.extend(claim_service.create_claims(session, access, encounter.id))
        scrub_claims(session, made, user_id=None, today=today)
        session.commit()
    return True
