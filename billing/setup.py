"""Practice setup a biller does before billing: payers (shared master list and the practice's enrolments),
providers, the billing identity, patients' guarantors and coverages, the fee schedule and payer contracts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing import codes, connections
from billing.models import (
    BillingIdentity,
    ContractRate,
    Coverage,
    FeeScheduleItem,
    Guarantor,
    Payer,
    PayerContract,
    PracticePayer,
    Provider,
)
from billing.money import money
from billing.patients import US_STATES, get_patient
from billing.scrubber import RULES
from billing.text import clean_fields
from medbill.errors import Conflict, Forbidden, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess, Principal, visible_practices
from tenants.models import BillingCompany


def _audit(session: Session, access: PracticeAccess, object_type: str, object_id, action: str, detail=None) -> None:
    audit.record_access(session, access, object_type, object_id, action, detail)


def _check_address(errors: dict, prefix: str, line1, city, state, postal_code, *, zip9: bool = False) -> None:
    if not line1:
        errors.setdefault(f"{prefix}address_line1", []).append("required")
    if not city:
        errors.setdefault(f"{prefix}city", []).append("required")
    if (state or "").upper() not in US_STATES:
        errors.setdefault(f"{prefix}state", []).append(f"not a US state code: {state!r}")
    digits = (postal_code or "").replace("-", "")
    if not digits.isdigit() or len(digits) not in ((9,) if zip9 else (5, 9)):
        errors.setdefault(f"{prefix}postal_code", []).append("ZIP+4, 9 digits" if zip9 else "5 or 9 digits")


# --- payers ---------------------------------------------------------------------------------------------------------


def visible_to(company_ids: Iterable[int]):
    """The payers a caller of these companies sees: the platform's entries and the companies' own."""
    ids = sorted(set(company_ids))
    return or_(Payer.company_id.is_(None), Payer.company_id.in_(ids)) if ids else Payer.company_id.is_(None)


def create_payer(session: Session, data: dict, *, company_id: int | None) -> Payer:
    """Add a payer: a company's own entry (`company_id`, seen and used by that company only) or, with None, a
    platform entry every company sees (the operator's `medbill payers add`). Its payer id must not be one the
    company (or the platform) already has."""
    errors: dict[str, list[str]] = {}
    if data.get("claim_filing_indicator") not in codes.CLAIM_FILING_INDICATORS:
        errors["claim_filing_indicator"] = [f"one of {', '.join(sorted(codes.CLAIM_FILING_INDICATORS))}"]
    if not str(data.get("payer_id", "")).strip():
        errors["payer_id"] = ["required"]
    if errors:
        raise Invalid("payer is not valid", errors=errors)
    # Another company's entry with the same id is not this company's business (and must not be revealed).
    taken = select(Payer.id).where(Payer.payer_id == data["payer_id"], visible_to([company_id] if company_id else []))
    if session.scalar(taken) is not None:
        raise Conflict(f"payer id {data['payer_id']!r} already exists", errors={"payer_id": ["already exists"]})
    values = {k: v for k, v in data.items() if k in Payer.__table__.columns.keys() and k not in ("id", "company_id")}
    payer = Payer(**values, company_id=company_id)
    session.add(payer)
    session.flush()
    return payer


def get_payer(session: Session, payer_id: int, *, company_id: int) -> Payer:
    """A payer the company may use: a platform entry or its own. Another company's entry is not found, like one
    that does not exist, so a practice can neither reference nor discover it."""
    payer = session.get(Payer, payer_id)
    if payer is None or payer.company_id not in (None, company_id):
        raise NotFound(f"payer {payer_id} not found")
    return payer


def payer_companies(session: Session, principal: Principal) -> set[int]:
    """The companies whose own payers a caller sees: those it works for and those of the practices it sees."""
    return set(principal.company_roles) | {p.company_id for p in visible_practices(session, principal)}


def add_company_payer(session: Session, principal: Principal, data: dict, company_slug: str | None = None) -> Payer:
    """A company administrator adds a payer for their company only (`company_slug` picks one when they administer
    several); platform entries are the operator's (create_payer with no company). Audited."""
    admin_of = principal.admin_company_ids
    if not admin_of:
        raise Forbidden("only a company administrator adds payers")
    if company_slug:
        company_id = session.scalar(
            select(BillingCompany.id).where(BillingCompany.slug == company_slug, BillingCompany.id.in_(admin_of))
        )
        if company_id is None:
            raise Invalid("unknown company", errors={"company": [f"not a company you administer: {company_slug!r}"]})
    elif len(admin_of) == 1:
        company_id = admin_of[0]
    else:
        raise Invalid("which company's payer?", errors={"company": ["required: you administer more than one company"]})
    payer = create_payer(session, data, company_id=company_id)
    audit.record(session, user_id=principal.user_id, practice_id=None, object_type="payer", object_id=payer.id,
                 action="create", detail={"payer_id": payer.payer_id, "company_id": company_id})  # fmt: skip
    return payer


def list_payers(
    session: Session, company_ids: Iterable[int], *, q: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[Payer], int]:
    """One page of the payers callers of `company_ids` see (platform entries and their companies' own), by name;
    `q` searches name and payer id. Returns (payers, total)."""
    stmt = select(Payer).where(visible_to(company_ids))
    if q and q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(or_(Payer.name.ilike(like), Payer.payer_id.ilike(like)))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(session.scalars(stmt.order_by(Payer.name, Payer.id).limit(per_page).offset((page - 1) * per_page)))
    return rows, total


def enroll_payer(session: Session, access: PracticeAccess, payer_id: int, data: dict) -> PracticePayer:
    """Add (or update) a payer the practice bills, with its filing windows and scrubber overrides."""
    get_payer(session, payer_id, company_id=access.company_id)
    overrides = data.get("scrub_overrides") or {}
    bad = {k: v for k, v in overrides.items() if k not in RULES or v not in ("off", "warning", "error")}
    if bad:
        raise Invalid(
            "unknown scrubber rule or setting",
            errors={
                f"scrub_overrides.{k}": [f"rule one of {', '.join(RULES)}; setting off|warning|error"] for k in bad
            },
        )
    overrides = {k: v for k, v in overrides.items() if v != "error"}
    values = {
        "payer_id": payer_id,
        "timely_filing_days": int(data.get("timely_filing_days", 365)),
        "appeal_window_days": int(data.get("appeal_window_days", 180)),
        "scrub_overrides": overrides,
        "active": bool(data.get("active", True)),
    }
    session.execute(
        insert(PracticePayer)
        .values(**values)
        .on_conflict_do_update(index_elements=["payer_id"], set_={k: v for k, v in values.items() if k != "payer_id"})
    )
    enrolment = session.scalar(select(PracticePayer).where(PracticePayer.payer_id == payer_id))
    session.refresh(enrolment)
    _audit(session, access, "practice_payer", payer_id, "update", values)
    return enrolment


# --- providers and the billing identity -----------------------------------------------------------------------------


def create_provider(session: Session, access: PracticeAccess, data: dict) -> Provider:
    errors: dict[str, list[str]] = {}
    data = dict(data)
    clean_fields(data, ("first_name", "last_name", "credential"), errors)
    if not codes.npi_is_valid(str(data.get("npi", ""))):
        errors["npi"] = ["not a valid NPI (10 digits with a correct check digit)"]
    if not codes.taxonomy_is_valid(data.get("taxonomy_code")):
        errors["taxonomy_code"] = ["not a provider taxonomy code (10 characters ending in X, e.g. 207Q00000X)"]
    for key in ("first_name", "last_name"):
        if not str(data.get(key, "")).strip():
            errors[key] = ["required"]
    if errors:
        raise Invalid("provider is not valid", errors=errors)
    if session.scalar(select(Provider.id).where(Provider.npi == data["npi"])) is not None:
        raise Conflict(f"NPI {data['npi']} is already a provider of this practice", errors={"npi": ["already exists"]})
    provider = Provider(
        npi=data["npi"],
        first_name=data["first_name"].strip(),
        last_name=data["last_name"].strip(),
        credential=str(data.get("credential") or "").strip(),
        taxonomy_code=data["taxonomy_code"],
    )
    session.add(provider)
    session.flush()
    _audit(session, access, "provider", provider.id, "create")
    return provider


# The billing identity's names and addresses that go into claim files (billing.text).
IDENTITY_TEXT_FIELDS = (
    "organization_name", "address_line1", "address_line2", "city", "pay_to_address_line1", "pay_to_city",
    "contact_name",
)  # fmt: skip


def set_billing_identity(session: Session, access: PracticeAccess, data: dict) -> BillingIdentity:
    errors: dict[str, list[str]] = {}
    data = dict(data)
    clean_fields(data, IDENTITY_TEXT_FIELDS, errors)
    if not codes.npi_is_valid(str(data.get("group_npi", ""))):
        errors["group_npi"] = ["not a valid NPI"]
    if not codes.tax_id_is_valid(str(data.get("tax_id", "")).replace("-", "")):
        errors["tax_id"] = ["9 digits (EIN)"]
    if data.get("taxonomy_code") and not codes.taxonomy_is_valid(data["taxonomy_code"]):
        errors["taxonomy_code"] = ["not a provider taxonomy code"]
    if not str(data.get("organization_name", "")).strip():
        errors["organization_name"] = ["required"]
    _check_address(
        errors, "", data.get("address_line1"), data.get("city"), data.get("state"), data.get("postal_code"), zip9=True
    )
    if data.get("pay_to_address_line1"):
        _check_address(
            errors,
            "pay_to_",
            data.get("pay_to_address_line1"),
            data.get("pay_to_city"),
            data.get("pay_to_state"),
            data.get("pay_to_postal_code"),
        )
    if errors:
        raise Invalid("billing identity is not valid", errors=errors)
    # The transport is not part of this: set_clearinghouse_transport, with its own permission and audit.
    values = {
        k: v for k, v in data.items() if k in BillingIdentity.__table__.columns.keys() and k not in ("id", "transport")
    }
    values["tax_id"] = str(values["tax_id"]).replace("-", "")
    values["postal_code"] = str(values["postal_code"]).replace("-", "")
    values["state"] = values["state"].upper()
    identity = session.get(BillingIdentity, 1)
    before = {k: getattr(identity, k) for k in values} if identity is not None else {}
    if identity is None:
        identity = BillingIdentity(id=1, **values)
        session.add(identity)
    else:
        for key, value in values.items():
            setattr(identity, key, value)
    session.flush()
    audit.record_change(session, access, "billing_identity", 1, before, values)
    return identity


def set_clearinghouse_transport(
    session: Session, access: PracticeAccess, transport: dict | None, *, policy: connections.OutboundPolicy
) -> BillingIdentity:
    """Change how the practice's claims reach the clearinghouse (company admins only, `connections:write`): the
    settings are checked against the company's secrets and the operator's allowed hosts (billing.connections) and
    the change is audited with before and after. Sending the stored settings back unchanged needs no permission."""
    identity = session.get(BillingIdentity, 1)
    if identity is None:
        raise NotFound("the practice has no billing identity yet")
    before = identity.transport or {}
    if (transport or {}) == before:
        return identity
    connections.require_admin(access, "clearinghouse transport", "transport")
    after = connections.validate(
        session, access.company_id, transport, purpose="clearinghouse", policy=policy, field="transport"
    )
    identity.transport = after
    session.flush()
    connections.record_change(session, access, "billing_identity", 1, before, after)
    return identity


# --- guarantors and coverages ---------------------------------------------------------------------------------------


def set_guarantor(session: Session, access: PracticeAccess, patient_id: int, data: dict) -> Guarantor:
    patient = get_patient(session, access, patient_id)
    errors: dict[str, list[str]] = {}
    data = dict(data)
    clean_fields(data, ("first_name", "last_name", "address_line1", "address_line2", "city"), errors)
    if data.get("relationship") not in ("parent", "spouse", "other"):
        errors["relationship"] = ["one of parent, spouse, other"]
    for key in ("first_name", "last_name"):
        if not str(data.get(key, "")).strip():
            errors[key] = ["required"]
    _check_address(errors, "", data.get("address_line1"), data.get("city"), data.get("state"), data.get("postal_code"))
    if errors:
        raise Invalid("guarantor is not valid", errors=errors)
    values = {
        k: v for k, v in data.items() if k in Guarantor.__table__.columns.keys() and k not in ("id", "patient_id")
    }
    guarantor = session.scalar(select(Guarantor).where(Guarantor.patient_id == patient.id))
    if guarantor is None:
        guarantor = Guarantor(patient_id=patient.id, **values)
        session.add(guarantor)
    else:
        for key, value in values.items():
            setattr(guarantor, key, value)
    session.flush()
    _audit(session, access, "patient", patient.id, "set_guarantor")
    return guarantor


SUBSCRIBER_FIELDS = (
    "subscriber_first_name",
    "subscriber_last_name",
    "subscriber_date_of_birth",
    "subscriber_sex",
    "subscriber_address_line1",
    "subscriber_city",
    "subscriber_state",
    "subscriber_postal_code",
)


def add_coverage(session: Session, access: PracticeAccess, patient_id: int, data: dict) -> Coverage:
    patient = get_patient(session, access, patient_id)
    get_payer(session, int(data["payer_id"]), company_id=access.company_id)
    errors: dict[str, list[str]] = {}
    data = dict(data)
    clean_fields(
        data, ("subscriber_first_name", "subscriber_last_name", "subscriber_address_line1", "subscriber_city"), errors
    )
    if int(data.get("priority", 1)) not in (1, 2, 3):
        errors["priority"] = ["1 (primary), 2 (secondary) or 3 (tertiary)"]
    if not str(data.get("member_id", "")).strip():
        errors["member_id"] = ["required"]
    relationship = str(data.get("relationship_code") or "18")
    if relationship not in codes.RELATIONSHIPS:
        errors["relationship_code"] = [f"one of {', '.join(codes.RELATIONSHIPS)}"]
    if relationship != "18":
        for key in SUBSCRIBER_FIELDS:
            if not data.get(key):
                errors[key] = ["required when the subscriber is not the patient"]
    effective = data.get("effective_date")
    end = data.get("end_date")
    if isinstance(effective, date) and isinstance(end, date) and end < effective:
        errors["end_date"] = ["before the effective date"]
    if errors:
        raise Invalid("coverage is not valid", errors=errors)
    coverage = Coverage(
        patient_id=patient.id,
        payer_id=int(data["payer_id"]),
        priority=int(data.get("priority", 1)),
        member_id=str(data["member_id"]).strip(),
        group_number=(data.get("group_number") or None),
        relationship_code=relationship,
        effective_date=effective,
        end_date=end,
        **({k: data.get(k) for k in SUBSCRIBER_FIELDS} if relationship != "18" else {}),
    )
    session.add(coverage)
    session.flush()
    _audit(session, access, "patient", patient.id, "add_coverage", {"coverage_id": coverage.id})
    return coverage


def list_coverages(session: Session, access: PracticeAccess, patient_id: int) -> list[Coverage]:
    patient = get_patient(session, access, patient_id)
    return list(
        session.scalars(
            select(Coverage).where(Coverage.patient_id == patient.id).order_by(Coverage.priority, Coverage.id)
        )
    )


# --- fee schedule and contracts -------------------------------------------------------------------------------------


def set_fee(
    session: Session, access: PracticeAccess, procedure_code: str, charge, modifier: str = ""
) -> FeeScheduleItem:
    errors = {}
    if not codes.procedure_code_is_valid(procedure_code):
        errors["procedure_code"] = [f"not a CPT/HCPCS code: {procedure_code!r}"]
    if modifier and not codes.modifier_is_valid(modifier):
        errors["modifier"] = [f"not a modifier: {modifier!r}"]
    amount = money(str(charge))
    if amount <= 0:
        errors["charge"] = ["must be positive"]
    if errors:
        raise Invalid("fee is not valid", errors=errors)
    session.execute(
        insert(FeeScheduleItem)
        .values(procedure_code=procedure_code, modifier=modifier, charge=amount)
        .on_conflict_do_update(index_elements=["procedure_code", "modifier"], set_={"charge": amount})
    )
    item = session.scalar(
        select(FeeScheduleItem).where(
            FeeScheduleItem.procedure_code == procedure_code, FeeScheduleItem.modifier == modifier
        )
    )
    session.refresh(item)
    _audit(session, access, "fee_schedule", f"{procedure_code}:{modifier}", "set", {"charge": str(amount)})
    return item


def create_contract(session: Session, access: PracticeAccess, data: dict) -> PayerContract:
    get_payer(session, int(data["payer_id"]), company_id=access.company_id)
    errors: dict[str, list[str]] = {}
    percent = data.get("default_percent_of_billed")
    if percent is not None and not (Decimal(0) < Decimal(str(percent)) <= Decimal(100)):
        errors["default_percent_of_billed"] = ["a percentage above 0 and at most 100"]
    rates = data.get("rates") or []
    for i, rate in enumerate(rates):
        if not codes.procedure_code_is_valid(str(rate.get("procedure_code", ""))):
            errors[f"rates[{i}].procedure_code"] = ["not a CPT/HCPCS code"]
        if money(str(rate.get("allowed", "0"))) <= 0:
            errors[f"rates[{i}].allowed"] = ["must be positive"]
    if data.get("effective_to") and data["effective_to"] < data["effective_from"]:
        errors["effective_to"] = ["before effective_from"]
    if errors:
        raise Invalid("contract is not valid", errors=errors)
    contract = PayerContract(
        payer_id=int(data["payer_id"]),
        name=data["name"],
        effective_from=data["effective_from"],
        effective_to=data.get("effective_to"),
        default_percent_of_billed=Decimal(str(percent)) if percent is not None else None,
    )
    session.add(contract)
    session.flush()
    for rate in rates:
        session.add(
            ContractRate(
                contract_id=contract.id,
                procedure_code=rate["procedure_code"],
                modifier=rate.get("modifier") or "",
                allowed=money(str(rate["allowed"])),
            )
        )
    session.flush()
    _audit(session, access, "payer_contract", contract.id, "create", {"rates": len(rates)})
    return contract


def payers_by_id(session: Session, ids: Iterable[int | None]) -> dict[int, Payer]:
    """The payers of `ids` (None ignored) by id, in one query."""
    wanted = {i for i in ids if i is not None}
    return {p.id: p for p in session.scalars(select(Payer).where(Payer.id.in_(wanted)))} if wanted else {}
