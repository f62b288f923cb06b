"""Billing test data: a practice ready to bill (identity, provider, payer, fee schedule, contract) and patients
with coverage and visits, built through the services."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from billing import encounters, setup
from billing.codes import npi_check_digit
from billing.models import Payer
from tenants.authz import load_principal, resolve_practice
from tenants.models import User
from tests.conftest import unique


def npi(prefix9: str | None = None) -> str:
    """A valid NPI (random unless the first nine digits are given)."""
    body = prefix9 or ("1" + "".join(secrets.choice("0123456789") for _ in range(8)))
    return body + npi_check_digit(body)


def bad_npi() -> str:
    good = npi()
    return good[:9] + str((int(good[9]) + 1) % 10)


def access_for(services, slug: str, email: str, permission: str = "patients:write"):
    with services.db.shared_session() as s:
        user = s.scalar(select(User).where(User.email == email))
        principal = load_principal(user)
        return resolve_practice(s, principal, slug, permission)


def shared_payer(services, **overrides) -> Payer:
    with services.db.shared_session() as s:
        payer = setup.create_payer(
            s,
            {
                "payer_id": unique("PAY").upper()[:20],
                "name": "Acme Health Plan",
                "claim_filing_indicator": "CI",
                "address_line1": "PO Box 100",
                "city": "Dallas",
                "state": "TX",
                "postal_code": "75201",
            }
            | overrides,
            company_id=None,  # curated at platform level: every company's practices may bill it
        )
        s.commit()
        return payer


@dataclass
class BillingPractice:
    slug: str
    company_slug: str
    biller_email: str
    payer_id: int
    provider_id: int
    provider_npi: str
    access: object


def billing_practice(services, factory, *, timely_filing_days: int = 365, company=None) -> BillingPractice:
    company = company or factory.company()
    practice = factory.practice(company.slug)
    email = factory.user("biller", company=company)
    access = access_for(services, practice.slug, email)
    payer = shared_payer(services)
    with services.db.tenant_session(practice.slug) as s:
        setup.set_billing_identity(
            s,
            access,
            {
                "organization_name": "Sunrise Family Practice",
                "group_npi": npi(),
                "tax_id": "741234567",
                "taxonomy_code": "207Q00000X",
                "address_line1": "100 Main St",
                "city": "Austin",
                "state": "TX",
                "postal_code": "787011234",
                "contact_name": "Billing Office",
                "contact_phone": "5125550100",
                "clearinghouse_name": "sandbox",
                "submitter_id": "SUBMIT01",
                "receiver_id": "SANDBOXCH",
            },
        )
        setup.enroll_payer(s, access, payer.id, {"timely_filing_days": timely_filing_days})
        provider_npi = npi()
        provider = setup.create_provider(
            s,
            access,
            {"npi": provider_npi, "first_name": "Ana", "last_name": "Reyes", "credential": "MD",
             "taxonomy_code": "207Q00000X"},
        )  # fmt: skip
        setup.set_fee(s, access, "99213", "150.00")
        setup.set_fee(s, access, "99214", "210.00")
        setup.set_fee(s, access, "36415", "25.00")
        setup.set_fee(s, access, "93000", "80.00")
        setup.create_contract(
            s,
            access,
            {
                "payer_id": payer.id,
                "name": "Acme 2026",
                "effective_from": date(2020, 1, 1),
                "default_percent_of_billed": Decimal("60"),
                "rates": [{"procedure_code": "99213", "allowed": "95.00"}],
            },
        )
        s.commit()
        provider_id = provider.id
    return BillingPractice(practice.slug, company.slug, email, payer.id, provider_id, provider_npi, access)


def insured_patient(services, bp: BillingPractice, factory, *, relationship_code: str = "18", **coverage) -> int:
    patient = factory.patient(bp.slug)
    data = {
        "payer_id": bp.payer_id,
        "priority": 1,
        "member_id": unique("M").upper()[:15].replace("_", ""),
        "group_number": "GRP100",
        "relationship_code": relationship_code,
        "effective_date": date(2020, 1, 1),
    }
    if relationship_code != "18":
        data |= {
            "subscriber_first_name": "Paul",
            "subscriber_last_name": "Lee",
            "subscriber_date_of_birth": date(1975, 3, 4),
            "subscriber_sex": "M",
            "subscriber_address_line1": "1 Main St",
            "subscriber_city": "Austin",
            "subscriber_state": "TX",
            "subscriber_postal_code": "78701",
        }
    with services.db.tenant_session(bp.slug) as s:
        setup.add_coverage(s, bp.access, patient["id"], data | coverage)
        s.commit()
    return patient["id"]


def visit(services, bp: BillingPractice, patient_id: int, *, days_ago: int = 5, lines=None, diagnoses=None, **extra):
    """An encounter through the charge-entry service; returns its id."""
    data = {
        "patient_id": patient_id,
        "date_of_service": (date.today() - timedelta(days=days_ago)).isoformat(),
        "place_of_service": "11",
        "rendering_provider_id": bp.provider_id,
        "diagnoses": diagnoses or ["E11.9", "I10"],
        "lines": lines
        or [
            {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1, 2]},
            {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
        ],
    } | extra
    with services.db.tenant_session(bp.slug) as s:
        encounter = encounters.create_encounter(s, bp.access, data)
        s.commit()
        return encounter.id


def added_coverage(services, bp: BillingPractice, patient_id: int, *, payer_name: str, member_id: str,
                   priority: int = 2) -> Payer:  # fmt: skip
    """A further coverage of the patient (secondary by default) with a payer of its own, enrolled in the practice."""
    payer = shared_payer(services, name=payer_name)
    with services.db.tenant_session(bp.slug) as s:
        setup.enroll_payer(s, bp.access, payer.id, {})
        setup.add_coverage(
            s, bp.access, patient_id,
            {"payer_id": payer.id, "priority": priority, "member_id": member_id, "relationship_code": "18",
             "effective_date": date(2020, 1, 1)},
        )  # fmt: skip
        s.commit()
    return payer
