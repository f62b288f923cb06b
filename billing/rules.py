"""The billing rules, written once: what is *denied* (a service line, a claim), what is *pending with insurance*, what
the patient *owes now*, and which ledger entry kinds count as a *payment*, an *adjustment* or a *refund*.

Posting (the claim status), the denial work queue, statements, collections, patient accounts and the doctor's reports
all decide these through this module, so they cannot drift apart. Each rule is a plain Python predicate and, where a
read needs it in SQL, a SQLAlchemy expression built from the same definition (the tests check that both agree on the
same data). The definitions follow /work/shared/domain.md (its accounting and KPI sections):

- A **claim is denied** when the payer says so (CLP02 = 4) or when it adjudicated the claim, paid nothing and left
  nothing to the patient (charge > 0, CLP04 = 0, CLP05 = 0): whatever group the payer used (CO, PI or OA), the
  balance stays in insurance A/R to be worked, which is what a denial is. The denial rate counts these claims over the
  claims adjudicated.
- A **line is denied** when its claim is denied, or when the payer paid nothing on it, adjusted it with a CO, PI or
  OA reason and moved none of it to the patient (no PR). A claim with some lines denied is not a denied claim: it
  takes ``paid``/``partially_paid`` from what is still pending, and its denied lines go to the work queue.
- A **service is pending with insurance** while its insurance part is above zero; a **visit** is pending while any of
  its services is. A negative insurance part (the payer paid more than it owed) is a credit balance, a liability to
  refund, not negative A/R (domain.md), so it never offsets another service's open insurance balance.
- What the patient **owes now** is the patient part of the visits that are not pending with insurance (per visit, and
  per patient the sum over those visits); the patient part of a pending visit is not billed yet.
- **Payments** are ``insurance_payment`` and ``patient_payment`` entries, **adjustments** are
  ``contractual_adjustment``, ``other_adjustment`` and ``write_off``, a **refund** is a ``refund`` entry (money paid
  back out, netted from payments). ``patient_responsibility`` and ``transfer_to_secondary`` only move a balance
  between insurance and the patient: they are neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from billing.models import LedgerEntry, ServiceLine

ZERO = Decimal("0")

# --- ledger entry kinds ---------------------------------------------------------------------------------------------

PAYMENT_KINDS = ("insurance_payment", "patient_payment")
ADJUSTMENT_KINDS = ("contractual_adjustment", "other_adjustment", "write_off")
REFUND_KINDS = ("refund",)
# Move a balance between the insurance and the patient part; not money in or out, not an adjustment.
TRANSFER_KINDS = ("patient_responsibility", "transfer_to_secondary")


def is_payment(kind: str) -> bool:
    """An entry of money received (from a payer or the patient)."""
    return kind in PAYMENT_KINDS


def is_adjustment(kind: str) -> bool:
    """An entry that lowers what is owed without money: contractual, other (payer) adjustment or a write-off."""
    return kind in ADJUSTMENT_KINDS


def is_refund(kind: str) -> bool:
    """Money paid back out (to a payer or the patient); counted against payments."""
    return kind in REFUND_KINDS


# --- denied ---------------------------------------------------------------------------------------------------------

DENIED_CLAIM_STATUS = "4"  # CLP02
# Groups whose adjustment of an unpaid line keeps the balance with insurance: a denial (PR moves it to the patient,
# CR only corrects an earlier adjudication).
DENIAL_GROUPS = ("CO", "PI", "OA")
PATIENT_GROUP = "PR"


def claim_denied(status_code: str, charge: Decimal, paid: Decimal, patient_responsibility: Decimal) -> bool:
    """One adjudication of a claim (one CLP) is a denial: CLP02 = 4, or a charge with nothing paid and nothing left
    to the patient."""
    if status_code == DENIED_CLAIM_STATUS:
        return True
    return charge > ZERO and paid == ZERO and patient_responsibility == ZERO


def claim_denied_sql(status_code, charge, paid, patient_responsibility) -> ColumnElement[bool]:
    """`claim_denied` over columns (e.g. RemittanceClaim.status_code, .charge, .paid, .patient_responsibility)."""
    return or_(
        status_code == DENIED_CLAIM_STATUS,
        and_(charge > 0, paid == 0, patient_responsibility == 0),
    )


def line_denied(paid: Decimal, groups: Iterable[str], *, claim_denied: bool = False) -> bool:
    """A service line of one adjudication is denied: its claim is, or nothing was paid on it and it carries a
    CO/PI/OA adjustment with a reason and no PR. `groups` are the group codes of the line's coded adjustments."""
    if claim_denied:
        return True
    groups = set(groups)
    return paid == ZERO and bool(groups & set(DENIAL_GROUPS)) and PATIENT_GROUP not in groups


def line_denied_sql(paid, denial_code_count, has_patient_part, claim_is_denied) -> ColumnElement[bool]:
    """`line_denied` over aggregated columns: what was paid on the line, how many CO/PI/OA coded adjustments it has,
    whether it has a PR adjustment, and whether its claim is denied (any boolean expression)."""
    return or_(
        claim_is_denied,
        and_(paid == 0, denial_code_count > 0, ~has_patient_part),
    )


def denial_code_sql(group_code, reason_code) -> ColumnElement[bool]:
    """An adjustment that can make a line denied: a CO/PI/OA group with a reason code."""
    return and_(group_code.in_(DENIAL_GROUPS), reason_code != "")


def claim_status_after(adjudications_denied: Iterable[bool], pending_with_payer: Decimal) -> str:
    """The status of a claim after posting its adjudication(s) of one remittance: ``denied`` when every one is a
    denial, else ``paid`` when nothing is left pending with its payer (or an earlier one), else ``partially_paid``.
    A claim with only some lines denied is not denied: those lines are worked in the denial queue."""
    flags = list(adjudications_denied)
    if flags and all(flags):
        return "denied"
    return "paid" if pending_with_payer == ZERO else "partially_paid"


# --- pending with insurance / owed now ------------------------------------------------------------------------------


def service_pending(insurance_part: Decimal) -> bool:
    """A service still waits on insurance while its insurance part is above zero (a credit is not pending)."""
    return insurance_part > ZERO


def visit_pending(insurance_parts: Iterable[Decimal]) -> bool:
    """A visit is pending with insurance while any of its services is: a credit on one service never offsets
    another's open insurance balance."""
    return any(service_pending(part) for part in insurance_parts)


def visit_owed_now(services: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """What the patient owes now on one visit from its services' (insurance part, patient part): the patient part
    when insurance is done with the visit, else nothing yet."""
    services = list(services)
    if visit_pending(ins for ins, _ in services):
        return ZERO
    return sum((pat for _, pat in services), ZERO)


def pending_encounters_sql():
    """SELECT of the encounter ids pending with insurance (any service with an insurance part above zero)."""
    services = (
        select(LedgerEntry.service_line_id, func.sum(LedgerEntry.insurance_delta).label("insurance"))
        .group_by(LedgerEntry.service_line_id)
        .subquery("service_insurance")
    )
    return (
        select(ServiceLine.encounter_id)
        .join(services, services.c.service_line_id == ServiceLine.id)
        .where(services.c.insurance > 0)
        .distinct()
    )


def owed_now_services_sql(patient_ids: list[int] | None = None):
    """Subquery, one row per service the patient owes on now (its visit is not pending with insurance):
    patient_id, encounter_id, service_line_id, date_of_service, patient_part. Statements, collections and patient
    accounts sum this."""
    query = (
        select(
            LedgerEntry.patient_id,
            ServiceLine.encounter_id,
            ServiceLine.id.label("service_line_id"),
            ServiceLine.date_of_service,
            func.sum(LedgerEntry.patient_delta).label("patient_part"),
        )
        .join(ServiceLine, ServiceLine.id == LedgerEntry.service_line_id)
        .where(ServiceLine.encounter_id.not_in(pending_encounters_sql()))
        .group_by(LedgerEntry.patient_id, ServiceLine.encounter_id, ServiceLine.id, ServiceLine.date_of_service)
    )
    if patient_ids is not None:
        query = query.where(LedgerEntry.patient_id.in_(patient_ids))
    return query.subquery("owed_now")


def owed_now_by_patient_sql():
    """Subquery (patient_id, due): per patient, the sum of what is owed now over the visits insurance is done with."""
    services = owed_now_services_sql()
    return (
        select(services.c.patient_id, func.sum(services.c.patient_part).label("due"))
        .group_by(services.c.patient_id)
        .subquery("due")
    )
