"""Appeals: a letter per reason family (medical necessity, timely filing, coding, authorisation, underpayment against
the contract), written from a template filled with the practice, payer, patient, claim and lines, the denial reasons
in words, the contract rate where relevant and the biller's argument; rendered to PDF, stored under the practice's
prefix and attached to the claim (an `Appeal` row with its storage key), with the payer's deadline (the denial date
plus the enrolment's appeal window) and, later, the outcome.

Templates are project data (billing/data/appeal_templates/<family>.txt) that a practice may override
(`AppealTemplate`). They are Jinja templates run in a sandboxed environment with strict undefined variables: a
practice's template can read the letter's values and nothing else (no attribute access to Python internals, no
eval), and a template that names a value that does not exist is refused when it is saved, not when a letter is due.
Every render, the check at save included, has bounded work (billing.letter_sandbox): it runs in a child process
with a time and memory limit, loops and built strings are capped, and a template past a limit is refused when saved.

Outcome: upheld puts the items back in the work queue (write off, bill the patient, or appeal again); overturned
takes back the payer's denial adjustments (insurance owes the amount again) and closes the items, so the payer's new
835 posts as usual through billing.posting and moves the claim from denied to paid."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from billing import denials, ledger, letter_sandbox
from billing.adjustment_codes import describe_adjustment
from billing.claims import get_claim
from billing.models import (
    Appeal,
    AppealTemplate,
    BillingIdentity,
    Coverage,
    DenialItem,
    Encounter,
    LedgerEntry,
    Patient,
    Payer,
    PracticePayer,
)
from billing.money import ZERO, money
from billing.pricing import allowed_for
from integrations.pdf.appeal import AppealLetter, render_appeal_letter
from integrations.storage import Storage, practice_key
from medbill.errors import Conflict, Invalid, NotFound
from tenants import audit
from tenants.authz import PracticeAccess
from tenants.models import User

FAMILIES: dict[str, str] = {
    "medical_necessity": "Medical necessity",
    "timely_filing": "Timely filing",
    "coding": "Coding",
    "authorization": "Authorization",
    "underpayment": "Underpayment against the contract",
}
# CARC -> the family of appeal that answers it; anything else defaults to medical necessity (the most common).
_FAMILY_BY_CARC: dict[str, str] = {
    **dict.fromkeys(("50", "55", "56", "150", "151", "152", "167", "N/A"), "medical_necessity"),
    **dict.fromkeys(("29",), "timely_filing"),
    **dict.fromkeys(("4", "5", "6", "7", "8", "9", "10", "11", "16", "97", "125", "181", "182", "189", "B7"), "coding"),
    **dict.fromkeys(("15", "39", "62", "197", "198", "243", "288"), "authorization"),
}
OUTCOMES = ("upheld", "overturned")
DEFAULT_APPEAL_WINDOW_DAYS = 180
MAX_TEMPLATE_CHARS = 20000
MAX_ARGUMENT_CHARS = 5000


def suggest_family(kind: str, codes: list[str]) -> str:
    if kind == "underpayment":
        return "underpayment"
    for code in codes:
        family = _FAMILY_BY_CARC.get(code.partition("-")[2])
        if family:
            return family
    return "medical_necessity"


def _check_family(family: str) -> str:
    if family not in FAMILIES:
        raise Invalid(f"unknown appeal family {family!r}", errors={"family": [f"one of {', '.join(FAMILIES)}"]})
    return family


# --- templates --------------------------------------------------------------------------------------------------------


@cache
def default_template(family: str) -> str:
    _check_family(family)
    return resources.files("billing.data").joinpath("appeal_templates", f"{family}.txt").read_text(encoding="utf-8")


def get_template(session: Session, family: str) -> tuple[str, str]:
    """(body, source): the practice's own template for the family, else the project's ("default")."""
    _check_family(family)
    row = session.get(AppealTemplate, family)
    return (row.body, "practice") if row is not None else (default_template(family), "default")


def _render(body: str, context: dict) -> str:
    """The letter's text. The template runs in billing.letter_sandbox: a child process with a time and memory limit
    and caps on loops and sizes, so a practice's template cannot hold the web thread or the worker."""
    try:
        return letter_sandbox.render(body, context).strip() + "\n"
    except letter_sandbox.TemplateFailure as exc:
        raise Invalid(exc.message, errors={"body": [exc.message]}) from None


def sample_context() -> dict:
    """Every value a template can use, with example figures: what a saved template is checked against."""
    line = {
        "number": 1, "procedure": "99213-25", "date_of_service": "01/15/2026", "charge": "150.00", "paid": "0.00",
        "patient_responsibility": "0.00", "contract_rate": "95.00", "shortfall": "95.00", "diagnoses": "E11.9, I10",
        "reasons": ["CO-50 (Contractual obligation): example reason."],
    }  # fmt: skip
    return {
        "practice": {"name": "Example Practice", "npi": "1234567893", "tax_id": "741234567",
                     "address": "100 Main St, Austin, TX 78701", "contact_name": "Billing Office",
                     "contact_phone": "(512) 555-0100"},
        "payer": {"name": "Example Health Plan", "payer_id": "EX001", "address": "PO Box 1, Dallas, TX 75201"},
        "patient": {"name": "Ann Lee", "first_name": "Ann", "last_name": "Lee", "date_of_birth": "02/03/1980",
                    "account_number": "ACC-1", "member_id": "M123"},
        "claim": {"number": "1001", "payer_claim_number": "PCN1", "dates_of_service": "01/15/2026",
                  "total_charge": "150.00", "submitted_on": "01/20/2026", "frequency_code": "1"},
        "lines": [line],
        "denial": {"date": "02/10/2026", "reasons": line["reasons"], "codes": ["CO-50"], "amount": "150.00"},
        "appeal": {"family": "Medical necessity", "deadline": "08/09/2026", "date": "02/20/2026"},
        "argument": "The biller's argument.",
        "biller": {"name": "Maria Lopez"},
        "today": "02/20/2026",
    }  # fmt: skip


def put_template(session: Session, access: PracticeAccess, family: str, body: str) -> AppealTemplate:
    """Save the practice's own template for a family, after checking it renders (syntax, known values only)."""
    _check_family(family)
    body = (body or "").replace("\r\n", "\n")
    if not body.strip():
        raise Invalid("a template needs text", errors={"body": ["required"]})
    if len(body) > MAX_TEMPLATE_CHARS:
        raise Invalid("template too long", errors={"body": [f"at most {MAX_TEMPLATE_CHARS} characters"]})
    _render(body, sample_context())
    session.execute(
        insert(AppealTemplate)
        .values(family=family, body=body, updated_by_user_id=access.user_id)
        .on_conflict_do_update(
            index_elements=["family"],
            set_={"body": body, "updated_by_user_id": access.user_id, "updated_at": datetime.now(UTC)},
        )
    )
    audit.record_access(session, access, "appeal_template", family, "update", {"chars": len(body)})
    return session.get(AppealTemplate, family, populate_existing=True)


def reset_template(session: Session, access: PracticeAccess, family: str) -> None:
    """Back to the project's template."""
    _check_family(family)
    row = session.get(AppealTemplate, family)
    if row is not None:
        session.delete(row)
        audit.record_access(session, access, "appeal_template", family, "reset")


# --- the letter -------------------------------------------------------------------------------------------------------


def _day(value: date | None) -> str:
    return value.strftime("%m/%d/%Y") if value else ""


def _amount(value: Decimal | None) -> str:
    return f"{money(value):,.2f}" if value is not None else ""


def appeal_deadline(session: Session, payer_id: int, denial_date: date) -> date:
    window = session.scalar(select(PracticePayer.appeal_window_days).where(PracticePayer.payer_id == payer_id))
    return denial_date + timedelta(days=window if window is not None else DEFAULT_APPEAL_WINDOW_DAYS)


def _line_figures(session: Session, line_ids: list[int]) -> dict[int, dict[str, Decimal]]:
    """What was paid and put on the patient per line, from the ledger (reversed entries net out)."""
    out: dict[int, dict[str, Decimal]] = {i: {"paid": ZERO, "patient": ZERO} for i in line_ids}
    for line_id in line_ids:
        balance = ledger.line_balance(session, line_id)
        out[line_id]["paid"] = balance.payments
    rows = session.execute(
        select(LedgerEntry.claim_line_id, LedgerEntry.amount).where(
            LedgerEntry.claim_line_id.in_(line_ids), LedgerEntry.kind == "patient_responsibility"
        )
    ).all()
    for line_id, amount in rows:
        out[line_id]["patient"] += amount
    return out


def letter_context(
    session: Session, access: PracticeAccess, items: list[DenialItem], *, family: str, argument: str, deadline: date
) -> dict:
    claim = get_claim(session, items[0].claim_id)
    patient = session.get(Patient, claim.patient_id)
    identity = session.get(BillingIdentity, 1)
    payer = session.get(Payer, claim.payer_id)
    coverage = session.get(Coverage, claim.coverage_id)
    encounter = session.get(Encounter, claim.encounter_id)
    # Work no person started (system access) has no user: the letter is signed by the billing office alone.
    biller = session.get(User, access.user_id) if access.user_id is not None else None
    by_line = {i.claim_line_id: i for i in items}
    lines = [cl for cl in claim.lines if cl.id in by_line]
    figures = _line_figures(session, [cl.id for cl in lines])
    codes = sorted({c for i in items for c in (i.reason_codes or [])})
    reasons = [describe_adjustment(*c.split("-", 1), group_in_words=True) for c in codes]
    diagnoses = list(encounter.diagnoses or []) if encounter else []
    line_out = []
    for cl in lines:
        item, service = by_line[cl.id], cl.service_line
        rate = item.expected_allowed
        if rate is None:
            rate = allowed_for(
                session, claim.payer_id, service.procedure_code, list(service.modifiers or []), cl.charge,
                service.units, service.date_of_service,
            )  # fmt: skip
        received = figures[cl.id]["paid"] + figures[cl.id]["patient"]
        shortfall = item.amount if item.kind == "underpayment" else max(ZERO, (rate or ZERO) - received)
        pointers = [p for p in service.diagnosis_pointers or [] if 0 < p <= len(diagnoses)]
        line_out.append(
            {
                "number": cl.line_number,
                "procedure": "-".join([service.procedure_code, *(service.modifiers or [])]),
                "date_of_service": _day(service.date_of_service),
                "charge": _amount(cl.charge),
                "paid": _amount(figures[cl.id]["paid"]),
                "patient_responsibility": _amount(figures[cl.id]["patient"]),
                "contract_rate": _amount(rate) if rate is not None else "",
                "shortfall": _amount(shortfall),
                "diagnoses": ", ".join(diagnoses[p - 1] for p in pointers),
                "reasons": [describe_adjustment(*c.split("-", 1), group_in_words=True) for c in item.reason_codes],
            }
        )  # fmt: skip
    dates = sorted({cl.service_line.date_of_service for cl in claim.lines})
    address = ""
    if identity is not None:
        address = ", ".join(
            p for p in (identity.address_line1, identity.address_line2, identity.city,
                        f"{identity.state} {identity.postal_code[:5]}") if p
        )  # fmt: skip
    payer_address = ""
    if payer is not None:
        payer_address = ", ".join(
            p for p in (payer.address_line1, payer.city, f"{payer.state} {payer.postal_code[:5]}".strip()) if p
        )
    phone = identity.contact_phone if identity else ""
    if len(phone) == 10 and phone.isdigit():
        phone = f"({phone[:3]}) {phone[3:6]}-{phone[6:]}"
    denial_date = denials.denial_date_of(items)
    return {
        "practice": {
            "name": identity.organization_name if identity else access.name,
            "npi": identity.group_npi if identity else "",
            "tax_id": identity.tax_id if identity else "",
            "address": address,
            "contact_name": identity.contact_name if identity else "",
            "contact_phone": phone,
        },
        "payer": {
            "name": payer.name if payer else f"Payer {claim.payer_id}",
            "payer_id": payer.payer_id if payer else "",
            "address": payer_address,
        },
        "patient": {
            "name": f"{patient.first_name} {patient.last_name}",
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "date_of_birth": _day(patient.date_of_birth),
            "account_number": patient.account_number,
            "member_id": coverage.member_id if coverage else "",
        },
        "claim": {
            "number": str(claim.id),
            "payer_claim_number": claim.payer_claim_number or "",
            "dates_of_service": " - ".join(dict.fromkeys((_day(dates[0]), _day(dates[-1])))) if dates else "",
            "total_charge": _amount(claim.total_charge),
            "submitted_on": _day(claim.submitted_at.date()) if claim.submitted_at else "",
            "frequency_code": claim.frequency_code,
        },
        "lines": line_out,
        "denial": {
            "date": _day(denial_date),
            "reasons": reasons,
            "codes": codes,
            "amount": _amount(sum((i.amount for i in items), ZERO)),
        },
        "appeal": {"family": FAMILIES[family], "deadline": _day(deadline), "date": _day(date.today())},
        "argument": argument,
        "biller": {"name": biller.full_name if biller else ""},
        "today": _day(date.today()),
    }


def appeal_key(slug: str, claim_id: int, appeal_id: int) -> str:
    return practice_key(slug, "appeals", f"claim-{claim_id}", f"appeal-{appeal_id}.pdf")


def create_appeal(
    session: Session,
    access: PracticeAccess,
    item_id: int,
    *,
    argument: str,
    storage: Storage,
    family: str | None = None,
) -> Appeal:
    """Write the appeal letter for the item and the claim's other open items of the same kind: render, store the PDF,
    record the appeal with its deadline, and mark the items appealed. The caller commits."""
    argument = (argument or "").strip()
    if not argument:
        raise Invalid("an appeal needs the biller's argument", errors={"argument": ["required"]})
    if len(argument) > MAX_ARGUMENT_CHARS:
        raise Invalid("argument too long", errors={"argument": [f"at most {MAX_ARGUMENT_CHARS} characters"]})
    item = denials.get_item(session, item_id, for_update=True)
    if item.status == "appealed":
        raise Conflict(f"denial work item {item.id} is already under appeal {item.appeal_id}")
    if item.status == "closed":
        raise Conflict(f"denial work item {item.id} is closed ({item.action})")
    items = list(
        session.scalars(
            select(DenialItem)
            .where(DenialItem.claim_id == item.claim_id, DenialItem.kind == item.kind, DenialItem.status == "open")
            .order_by(DenialItem.claim_line_id, DenialItem.id)
            .with_for_update()
        )
    )
    family = _check_family(family or suggest_family(item.kind, sorted({c for i in items for c in i.reason_codes})))
    denial_date = denials.denial_date_of(items)
    deadline = appeal_deadline(session, item.payer_id, denial_date)
    body, source = get_template(session, family)
    context = letter_context(session, access, items, family=family, argument=argument, deadline=deadline)
    text = _render(body, context)
    appeal = Appeal(
        claim_id=item.claim_id,
        family=family,
        argument=argument,
        letter_text=text,
        template_source=source,
        denial_date=denial_date,
        deadline=deadline,
        created_by_user_id=access.user_id,
    )
    session.add(appeal)
    session.flush()
    practice = context["practice"]
    payer = context["payer"]
    pdf = render_appeal_letter(
        AppealLetter(
            letterhead=[practice["name"], practice["address"],
                        f"NPI {practice['npi']} - Tax ID {practice['tax_id']} - {practice['contact_phone']}"],
            recipient=[f"{payer['name']}", "Appeals Department", *([payer["address"]] if payer["address"] else [])],
            letter_date=date.today(),
            body=text,
            reference=f"Appeal {appeal.id} - claim {item.claim_id} - reply by {_day(deadline)}",
        )
    )  # fmt: skip
    key = appeal_key(access.slug, item.claim_id, appeal.id)
    storage.put(key, pdf, content_type="application/pdf")
    appeal.storage_key = key
    appeal.filename = f"appeal-{appeal.id}-claim-{item.claim_id}.pdf"
    for it in items:
        it.status = "appealed"
        it.appeal_id = appeal.id
    audit.record_access(
        session, access, "appeal", appeal.id, "create",
        {"claim_id": item.claim_id, "family": family, "items": [i.id for i in items], "deadline": deadline.isoformat()},
    )  # fmt: skip
    session.flush()
    return appeal


def get_appeal(session: Session, appeal_id: int, *, for_update: bool = False) -> Appeal:
    stmt = select(Appeal).where(Appeal.id == appeal_id)
    if for_update:
        stmt = stmt.with_for_update()
    appeal = session.scalar(stmt)
    if appeal is None:
        raise NotFound(f"appeal {appeal_id} not found")
    return appeal


def appeal_items(session: Session, appeal_id: int) -> list[DenialItem]:
    return list(session.scalars(select(DenialItem).where(DenialItem.appeal_id == appeal_id).order_by(DenialItem.id)))


def record_outcome(session: Session, access: PracticeAccess, appeal_id: int, outcome: str, note: str = "") -> Appeal:
    """The payer's answer, once. Upheld: the items go back to the queue. Overturned: the denial adjustments are taken
    back (insurance owes the amount again) and the items close; the payer's new 835 then posts as usual."""
    if outcome not in OUTCOMES:
        raise Invalid(f"unknown outcome {outcome!r}", errors={"outcome": [f"one of {', '.join(OUTCOMES)}"]})
    appeal = get_appeal(session, appeal_id, for_update=True)
    if appeal.outcome is not None:
        raise Conflict(f"appeal {appeal.id} already has an outcome ({appeal.outcome})")
    appeal.outcome = outcome
    appeal.outcome_note = (note or "").strip()[:2000]
    appeal.outcome_at = datetime.now(UTC)
    appeal.outcome_by_user_id = access.user_id
    reversals: list[int] = []
    for item in appeal_items(session, appeal.id):
        if item.status != "appealed":
            continue  # settled meanwhile (a remittance paid it)
        if outcome == "upheld":
            item.status = "open"
            continue
        released = denials.release_denial(session, item, user_id=access.user_id, why=f"appeal {appeal.id} overturned")
        reversals += released
        item.status = "closed"
        item.action = "appeal_overturned"
        item.action_detail = {"appeal_id": appeal.id, "reversals": released}
        item.closed_at = datetime.now(UTC)
        item.closed_by_user_id = access.user_id
        if item.underpayment_id is not None:
            denials._resolve_underpayment(session, item, access, f"appeal {appeal.id} overturned")
    audit.record_access(
        session, access, "appeal", appeal.id, "outcome",
        {"claim_id": appeal.claim_id, "outcome": outcome, "reversals": reversals},
    )  # fmt: skip
    session.flush()
    return appeal


def list_appeals(session: Session, *, claim_id: int | None = None, open_only: bool = False) -> list[Appeal]:
    stmt = select(Appeal)
    if claim_id is not None:
        stmt = stmt.where(Appeal.claim_id == claim_id)
    if open_only:
        stmt = stmt.where(Appeal.outcome.is_(None))
    return list(session.scalars(stmt.order_by(Appeal.deadline, Appeal.id)))


__all__ = [
    "FAMILIES",
    "OUTCOMES",
    "appeal_deadline",
    "create_appeal",
    "get_template",
    "put_template",
    "record_outcome",
    "suggest_family",
]
