"""Demo data for `medbill up`: a billing company, its client practices, users of every role, a collection agency
and enough patients to look real. Plain service code (no Flask); `medbill up` calls :func:`seed_demo` once.

What the seed creates (all fixed, so the README can list it):

* billing company ``demo`` "Summit Billing Partners", with a company admin and two billers;
* three practices of that company: ``riverside_family`` (Riverside Family Medicine), ``lakeview_peds`` (Lakeview
  Pediatrics) and ``northside_ortho`` (Northside Orthopedics), each with one doctor user;
* collection agency ``keystone_recovery`` (Keystone Recovery Services), linked to all three practices, with one
  agency user, and three Riverside Family Medicine patients placed with it;
* 40 patients per practice, generated deterministically (same names, dates and addresses on every machine).

Every demo user has the password :data:`DEMO_PASSWORD`. The data is for local evaluation only: anyone who reads
the README can log in, so never seed it on a server other people can reach.

Billing data (payers, identities pointed at the sandbox clearinghouse, providers, fees, contracts, coverages,
recent visits and their claims) comes from :mod:`medbill.demo_billing`; a year of activity before that (claims
sent and paid month by month, patient payments, denials, statements, one more account placed with the agency and
its export file) from :mod:`medbill.demo_history`, when the seed is given a storage.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select, text

from billing.claim_outcomes import ClaimOutcomes, claim_outcomes
from billing.models import AgencyPlacement, Patient
from billing.patients import normalise
from integrations.storage import Storage
from medbill.demo_billing import SPECIALTIES, seed_billing
from medbill.demo_history import generate_history
from tenants.db import Database
from tenants.models import BillingCompany, CollectionAgency, Practice, User
from tenants.registry import create_agency, create_company, create_practice, create_user, grant, link_agency

__all__ = [
    "DEMO_COMPANY",
    "DEMO_PASSWORD",
    "DemoLogin",
    "DemoLogins",
    "demo_claim_summary",
    "demo_logins",
    "demo_present",
    "seed_demo",
]

DEMO_COMPANY = "demo"
DEMO_COMPANY_NAME = "Summit Billing Partners"
DEMO_PASSWORD = "demo-password-1"
PATIENTS_PER_PRACTICE = 40
PLACED_PATIENTS = 3
# Ages are counted from a fixed day, not from today, so the generated data is the same whenever it is seeded.
REFERENCE_DATE = date(2025, 1, 1)
# Serialises two first starts on the same database (two `medbill up` at once).
_SEED_LOCK_KEY = 0x6D6564_64656D6F  # "meddemo"


@dataclass(frozen=True)
class _PracticeSpec:
    slug: str
    name: str
    account_prefix: str
    min_age: int
    max_age: int
    doctor_email: str
    doctor_name: str


PRACTICES = (
    _PracticeSpec(
        "riverside_family", "Riverside Family Medicine", "RF", 0, 92, "dr.patel@riversidefamily.example", "Anita Patel"
    ),
    _PracticeSpec(
        "lakeview_peds", "Lakeview Pediatrics", "LP", 0, 17, "dr.nguyen@lakeviewpeds.example", "David Nguyen"
    ),
    _PracticeSpec(
        "northside_ortho", "Northside Orthopedics", "NO", 18, 88, "dr.okafor@northsideortho.example", "Grace Okafor"
    ),
)
AGENCY_SLUG = "keystone_recovery"
AGENCY_NAME = "Keystone Recovery Services"
PLACEMENT_PRACTICE = "riverside_family"
# Each practice's generated history: (months, visits a month, months with a statement run). The doctor's practice of
# the README gets a full year and the statements its collection candidates need (three); the first start's seeding
# time grows with these, mostly with the months (each is a clearinghouse round trip and its postings).
HISTORY = {"riverside_family": (12, 8, 4), "lakeview_peds": (6, 4, 1), "northside_ortho": (6, 4, 1)}


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str
    full_name: str
    scope: str  # what the role covers: the company, a practice or the agency (display name)
    practice: str | None = None  # practice slug, for doctors


@dataclass(frozen=True)
class DemoLogins:
    """The demo users and whether this call created the demo data (False: it was already there)."""

    logins: tuple[DemoLogin, ...]
    created: bool


def demo_logins() -> tuple[DemoLogin, ...]:
    company = [
        DemoLogin("company_admin", "admin@summitbilling.example", DEMO_PASSWORD, "Rachel Morgan", DEMO_COMPANY_NAME),
        DemoLogin("biller", "maria.lopez@summitbilling.example", DEMO_PASSWORD, "Maria Lopez", DEMO_COMPANY_NAME),
        DemoLogin("biller", "james.chen@summitbilling.example", DEMO_PASSWORD, "James Chen", DEMO_COMPANY_NAME),
    ]
    doctors = [DemoLogin("doctor", p.doctor_email, DEMO_PASSWORD, p.doctor_name, p.name, p.slug) for p in PRACTICES]
    agency = [DemoLogin("agency", "collector@keystonerecovery.example", DEMO_PASSWORD, "Tom Becker", AGENCY_NAME)]
    return tuple(company + doctors + agency)


def demo_present(db: Database) -> bool:
    """True once a complete demo seed is in the database.

    Users are created last, all in one transaction, so any demo user next to the demo company means every
    earlier step committed too. A company without users is a seed that was interrupted; seeding resumes it.
    """
    emails = [login.email for login in demo_logins()]
    with db.shared_session() as session:
        if session.scalar(select(BillingCompany.id).where(BillingCompany.slug == DEMO_COMPANY)) is None:
            return False
        return session.scalar(select(User.id).where(User.email.in_(emails)).limit(1)) is not None


def demo_claim_summary(db: Database) -> str:
    """One line of how the demo practices' claims came out, e.g. "demo: 412 claims — 300 paid, 40 denied, 12 rejected,
    60 pending" (from billing.claim_outcomes); "not sent yet" and "closed" are shown only when some claim is."""
    outcomes = ClaimOutcomes()
    for spec in PRACTICES:
        with db.tenant_session(spec.slug) as session:
            outcomes += claim_outcomes(session)
    parts = [f"{outcomes.paid} paid", f"{outcomes.denied} denied", f"{outcomes.rejected} rejected"]
    parts.append(f"{outcomes.pending} pending")
    if outcomes.unsent:
        parts.append(f"{outcomes.unsent} not sent yet")
    if outcomes.closed:
        parts.append(f"{outcomes.closed} closed")
    return f"demo: {outcomes.total} claims — {', '.join(parts)}"


def seed_demo(
    db: Database, storage: Storage | None = None, *, progress: Callable[[str], None] | None = None
) -> DemoLogins:
    """Create the demo data unless it is already there; return the demo logins either way.

    Each step creates only what is missing, so a seed interrupted halfway (Ctrl-C on the first start) is completed
    by the next start instead of being left half-done forever. With `storage`, each practice also gets its year of
    history (files it stores: 837s, 835s, statements, appeal letters, the agency export), once.
    """
    logins = demo_logins()
    with db.engine.connect() as lock_conn:
        lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SEED_LOCK_KEY})
        lock_conn.commit()
        try:
            created = not demo_present(db)
            if created:
                _seed(db, logins)
            # Billing data joined the demo later: a demo seeded before it gets it now, once.
            for index, spec in enumerate(PRACTICES):
                seed_billing(db, spec.slug, spec.name, index=index)
            if storage is not None:
                _seed_history(db, storage, progress or (lambda _message: None))
            return DemoLogins(logins, created=created)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SEED_LOCK_KEY})
            lock_conn.commit()


# ------------------------------------------------------------------------------------------------- steps


def _seed(db: Database, logins: tuple[DemoLogin, ...]) -> None:
    with db.shared_session() as session:
        if session.scalar(select(BillingCompany.id).where(BillingCompany.slug == DEMO_COMPANY)) is None:
            create_company(session, DEMO_COMPANY, DEMO_COMPANY_NAME)
            session.commit()
        existing = set(session.scalars(select(Practice.slug).where(Practice.slug.in_([p.slug for p in PRACTICES]))))
    for spec in PRACTICES:
        if spec.slug not in existing:
            create_practice(db.engine, DEMO_COMPANY, spec.slug, spec.name)

    with db.shared_session() as session:
        agency = session.scalar(select(CollectionAgency).where(CollectionAgency.slug == AGENCY_SLUG))
        if agency is None:
            agency = create_agency(session, AGENCY_SLUG, AGENCY_NAME)
        for spec in PRACTICES:
            link_agency(session, agency, _practice(session, spec.slug))
        session.commit()
        agency_id = agency.id

    for index, spec in enumerate(PRACTICES):
        _seed_patients(db, spec, seed=1000 + index, agency_id=agency_id if spec.slug == PLACEMENT_PRACTICE else None)

    # Last, in one transaction: their presence is what marks the seed as complete (see demo_present).
    with db.shared_session() as session:
        company = session.scalar(select(BillingCompany).where(BillingCompany.slug == DEMO_COMPANY))
        agency = session.get(CollectionAgency, agency_id)
        for login in logins:
            if session.scalar(select(User.id).where(User.email == login.email)) is not None:
                continue
            user = create_user(session, login.email, login.full_name, login.password)
            if login.role in ("company_admin", "biller"):
                grant(session, user, login.role, company=company)
            elif login.role == "doctor":
                grant(session, user, login.role, practice=_practice(session, login.practice))
            else:
                grant(session, user, login.role, agency=agency)
        session.commit()


def _seed_history(db: Database, storage: Storage, progress: Callable[[str], None]) -> None:
    """The practices' histories side by side (threads: most of the time is spent waiting on PostgreSQL)."""
    with db.shared_session() as session:
        agency_id = session.scalar(select(CollectionAgency.id).where(CollectionAgency.slug == AGENCY_SLUG))

    def one(index: int, spec: _PracticeSpec) -> None:
        months, visits, statement_months = HISTORY[spec.slug]
        report = generate_history(
            db, storage, spec.slug, specialty=SPECIALTIES[spec.slug], seed=index, months=months,
            visits_per_month=visits, statement_months=statement_months,
            agency_id=agency_id if spec.slug == PLACEMENT_PRACTICE else None,
        )  # fmt: skip
        if report is not None:
            progress(
                f"{spec.name}: {report.months} months of history ({report.encounters} visits, {report.submissions} "
                f"claim files, {report.files} clearinghouse files) in {report.seconds:.0f} s."
            )

    with ThreadPoolExecutor(max_workers=len(PRACTICES), thread_name_prefix="demo-history") as pool:
        for future in [pool.submit(one, index, spec) for index, spec in enumerate(PRACTICES)]:
            future.result()


def _practice(session, slug: str) -> Practice:
    return session.scalar(select(Practice).where(Practice.slug == slug))


def _seed_patients(db: Database, spec: _PracticeSpec, *, seed: int, agency_id: int | None) -> None:
    """All of a practice's demo patients (and placements) in one transaction, only into an empty practice."""
    with db.tenant_session(spec.slug) as session:
        if session.scalar(select(func.count()).select_from(Patient)):
            return
        patients = [Patient(**values) for values in generate_patients(spec, seed=seed)]
        session.add_all(patients)
        session.flush()
        if agency_id is not None:
            # The practice's first accounts (lowest account numbers) are the ones with the agency.
            for patient in patients[:PLACED_PATIENTS]:
                session.add(AgencyPlacement(patient_id=patient.id, agency_id=agency_id))
        session.commit()


# ------------------------------------------------------------------------------------------ patient data

_FEMALE = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Sandra Margaret Ashley "
    "Kimberly Emily Donna Michelle Carol Amanda Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia Amy Angela "
    "Emma Olivia Ava Sophia Isabella Mia Charlotte Harper Evelyn Abigail Chloe Grace Lily Zoe Natalie"
).split()
_MALE = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel Matthew Anthony Mark "
    "Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Jason Edward Jeffrey Ryan Jacob "
    "Liam Noah Oliver Elijah Lucas Mason Logan Ethan Aiden Caleb Owen Henry Wyatt Jack Luke"
).split()
_LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson "
    "Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
    "Mitchell Carter Roberts Phillips Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan "
    "Peterson Cooper Reed Bailey Bell Gomez Kelly Howard Ward Cox Diaz Richardson Wood Watson Brooks Bennett Gray "
    "Hughes Price Sanders Patel Myers Long Ross Foster Kim Schmidt Kowalski Novak Okafor"
).split()
_STREETS = (
    "Main Oak Maple Cedar Elm Pine Washington Lake Hill Walnut Park Sunset Highland Church Spring Chestnut Ridge "
    "Meadow Willow River Broad High Franklin Jefferson Lincoln Madison Summit Cherry Forest Mill"
).split()
_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Ct", "Blvd", "Way", "Pl")
# Central Ohio around Columbus: real city names with one of their real ZIP codes.
_CITIES = (
    ("Columbus", "43215"),
    ("Columbus", "43201"),
    ("Columbus", "43214"),
    ("Columbus", "43229"),
    ("Dublin", "43017"),
    ("Westerville", "43081"),
    ("Worthington", "43085"),
    ("Hilliard", "43026"),
    ("Grove City", "43123"),
    ("Gahanna", "43230"),
    ("Upper Arlington", "43221"),
    ("Reynoldsburg", "43068"),
    ("Delaware", "43015"),
    ("Powell", "43065"),
    ("Pickerington", "43147"),
)


def generate_patients(spec: _PracticeSpec, *, seed: int, count: int = PATIENTS_PER_PRACTICE) -> list[dict]:
    """Deterministic, realistic patient records for one practice, each passing the patient domain checks."""
    rng = random.Random(seed)
    patients = []
    for number in range(count):
        sex = rng.choice("FM")
        first = rng.choice(_FEMALE if sex == "F" else _MALE)
        last = rng.choice(_LAST)
        age_days = rng.randint(spec.min_age * 365 + 30, spec.max_age * 365 + 300)
        city, zip_code = rng.choice(_CITIES)
        line2 = f"Apt {rng.randint(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.15 else ""
        middle = rng.choice(_FEMALE if sex == "F" else _MALE) if rng.random() < 0.4 else ""
        values = {
            "account_number": f"{spec.account_prefix}-{10001 + number}",
            "first_name": first,
            "last_name": last,
            "middle_name": middle,
            "date_of_birth": REFERENCE_DATE - timedelta(days=age_days),
            "sex": sex,
            "address_line1": f"{rng.randint(100, 9899)} {rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}",
            "address_line2": line2,
            "city": city,
            "state": "OH",
            "postal_code": zip_code,
            # 555-01xx numbers are reserved for fiction; example.com never delivers mail.
            "phone": f"614-555-01{rng.randint(0, 99):02d}" if rng.random() < 0.85 else None,
            "email": f"{first}.{last}{rng.randint(1, 99)}@example.com".lower() if rng.random() < 0.6 else None,
        }
        patients.append(normalise(values, today=REFERENCE_DATE))
    return patients
