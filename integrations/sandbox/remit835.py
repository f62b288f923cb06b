"""The 835 health care claim payment/advice (005010X221A1) the sandbox's payers send after adjudication.

Owns ``build_835``: one interchange per payer per pass, one transaction set (one payment: BPR + TRN) per payee
(billing provider NPI). BPR is ``I``/ACH (CCP with bank ids) or ``I``/CHK when money moves, ``H``/NON when nothing
does; a pass whose reversals exceed its payments carries the debt forward with a PLB ``FB`` so BPR02 is 0. Claims
are CLP/CAS/NM1/DTM with SVC lines carrying CAS, REF*6R (echoed from the 837), AMT*B6 and LQ*HE.

Balancing is asserted before anything is written: per line SVC02 = SVC03 + CAS; per claim CLP03 = CLP04 + CAS and
CLP05 = PR adjustments; per set BPR02 = sum(CLP04) - sum(PLB).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from .adjudicate import ZERO, AdjudicatedClaim, cents, hash_fraction
from .config import PayerBehaviour
from .edi import X12Out, envelope

__all__ = ["build_835"]

_CAS_ORDER = ("CO", "OA", "PI", "PR")
# Fictitious bank routing numbers and accounts (the payer's and the provider's) for ACH payments.
_PAYER_DFI, _PAYER_ACCOUNT = "999999992", "0001234567"
_PAYEE_DFI, _PAYEE_ACCOUNT = "999988880", "0009876543"


def _check_balance(claim: AdjudicatedClaim) -> None:
    for ln in claim.lines:
        if ln.charge != ln.paid + sum((a.amount for a in ln.adjustments), ZERO):
            raise AssertionError(f"835 line out of balance for claim {claim.pcn} line {ln.code}")
    adjustments = [a for ln in claim.lines for a in ln.adjustments]
    if claim.charge != claim.paid + sum((a.amount for a in adjustments), ZERO):
        raise AssertionError(f"835 claim {claim.pcn} out of balance")
    if claim.patient_responsibility != sum((a.amount for a in adjustments if a.group == "PR"), ZERO):
        raise AssertionError(f"835 claim {claim.pcn}: CLP05 differs from PR adjustments")


def _person(body: X12Out, entity: str, p: dict[str, str], qualifier: str, ident: str) -> None:
    person = p.get("entity_type", "1") == "1"
    body.seg(
        "NM1", entity, "1" if person else "2", p.get("last") or "UNKNOWN", p.get("first") if person else "",
        p.get("middle") if person else "", "", "", qualifier if ident else "", ident,
    )  # fmt: skip


def _claim(body: X12Out, claim: AdjudicatedClaim) -> None:
    _check_balance(claim)
    body.seg(
        "CLP", claim.pcn, claim.status, claim.charge, claim.paid, claim.patient_responsibility,
        claim.filing_indicator, claim.payer_claim_number, claim.facility, claim.frequency,
    )  # fmt: skip
    if claim.is_dependent:
        _person(body, "QC", claim.patient, "", "")
        _person(body, "IL", claim.subscriber, "MI", claim.subscriber.get("id", "") or "UNKNOWN")
    else:
        _person(body, "QC", claim.patient, "MI", claim.patient.get("id", ""))
    if claim.rendering and claim.rendering.get("id") and claim.rendering.get("id_qualifier") == "XX":
        _person(body, "82", claim.rendering, "XX", claim.rendering["id"])
    if claim.group_number:
        body.seg("REF", "1L", claim.group_number)
    body.seg("DTM", "050", claim.received)
    for ln in claim.lines:
        body.seg("SVC", (ln.qualifier, ln.code, *ln.modifiers), ln.charge, ln.paid, "", ln.units)
        body.seg("DTM", "472", ln.date_text)
        for group in _CAS_ORDER:
            items = [a for a in ln.adjustments if a.group == group]
            # At most six reason/amount/quantity triplets fit one CAS segment.
            for i in range(0, len(items), 6):
                triplets: list[Any] = []
                for a in items[i : i + 6]:
                    triplets += [a.reason, a.amount, ""]
                body.seg("CAS", group, *triplets)
        if ln.control_number:
            body.seg("REF", "6R", ln.control_number)
        if ln.allowed is not None:
            body.seg("AMT", "B6", ln.allowed)
        for remark in ln.remarks:
            body.seg("LQ", "HE", remark)


def _payment(claims: list[AdjudicatedClaim], behaviour: PayerBehaviour, *, trace: str, now: datetime) -> X12Out:
    payee = claims[0].billing
    npi = payee.get("id", "") if payee.get("id_qualifier") == "XX" else ""
    paid = sum((c.paid for c in claims), ZERO)
    plb: list[tuple[str, Decimal]] = []
    fraction, _ = hash_fraction("interest", trace)
    if paid > 0 and fraction < behaviour.interest_probability:
        interest = max(Decimal("0.01"), cents(paid * behaviour.interest_percent / Decimal(100)))
        plb.append((f"L6:{claims[0].payer_claim_number}", -interest))  # negative PLB: paid to the provider
    if paid - sum((a for _, a in plb), ZERO) < 0:
        # More taken back than paid: carry the debt forward instead of sending a negative payment.
        plb.append((f"FB:{trace}", paid - sum((a for _, a in plb), ZERO)))
    total = paid - sum((a for _, a in plb), ZERO)
    date = now.strftime("%Y%m%d")
    tax_id = behaviour.tax_id
    body = X12Out()
    if total > 0 and behaviour.payment_method == "ACH":
        body.seg(
            "BPR", "I", total, "C", "ACH", "CCP", "01", _PAYER_DFI, "DA", _PAYER_ACCOUNT, "1" + tax_id, "",
            "01", _PAYEE_DFI, "DA", _PAYEE_ACCOUNT, date,
        )  # fmt: skip
    elif total > 0:
        body.seg("BPR", "I", total, "C", "CHK", *[""] * 11, date)
    else:
        body.seg("BPR", "H", total, "C", "NON", *[""] * 11, date)
    body.seg("TRN", "1", trace, "1" + tax_id)
    body.seg("DTM", "405", date)
    body.seg("N1", "PR", claims[0].payer_name)
    address = behaviour.address
    body.seg("N3", address.get("line1", "PO BOX 1000"))
    body.seg("N4", address.get("city", "SPRINGFIELD"), address.get("state", "IL"), address.get("zip", "627010000"))
    body.seg("REF", "2U", behaviour.payer_id)
    body.seg("PER", "BL", "EDI SUPPORT", "TE", behaviour.technical_contact_phone)
    name = " ".join(p for p in (payee.get("first"), payee.get("last")) if p) if payee.get("entity_type") == "1" else ""
    if npi:
        body.seg("N1", "PE", name or payee.get("last") or "PROVIDER", "XX", npi)
    else:
        body.seg("N1", "PE", name or payee.get("last") or "PROVIDER", "FI", payee.get("tax_id") or "000000000")
    if payee.get("address1") and payee.get("city"):
        body.seg("N3", payee["address1"], payee.get("address2", ""))
        body.seg("N4", payee["city"], payee.get("state", ""), payee.get("zip", ""))
    if payee.get("tax_id") and npi:
        body.seg("REF", "TJ", payee["tax_id"])
    body.seg("LX", "1")
    for claim in claims:
        _claim(body, claim)
    for ident, amount in plb:
        reason, _, ref = ident.partition(":")
        body.seg("PLB", npi or payee.get("tax_id") or "0", f"{now.year}1231", (reason, ref), amount)
    if total != paid - sum((a for _, a in plb), ZERO):
        raise AssertionError("835 BPR02 differs from sum(CLP04) - sum(PLB)")
    return body


def build_835(
    claims: list[AdjudicatedClaim],
    *,
    behaviour: PayerBehaviour,
    control_number: int,
    traces: list[str],
    now: datetime,
    env: dict[str, str],
) -> str:
    """One interchange for one payer; ``traces`` gives a TRN02 per payee (in order of first appearance)."""
    by_payee: dict[str, list[AdjudicatedClaim]] = {}
    for claim in claims:
        by_payee.setdefault(claim.billing.get("id") or claim.billing.get("tax_id") or "", []).append(claim)
    sets = [
        ("835", _payment(group, behaviour, trace=trace, now=now))
        for group, trace in zip(by_payee.values(), traces, strict=False)
    ]
    return envelope(
        sender_qualifier=env.get("sender_qualifier", "ZZ"),
        sender_id=env.get("sender_id", "SANDBOXCH"),
        receiver_qualifier=env.get("receiver_qualifier", "ZZ"),
        receiver_id=env.get("receiver_id", "SUBMITTER"),
        gs_sender=env.get("gs_sender") or behaviour.payer_id,
        gs_receiver=env.get("gs_receiver") or "SUBMITTER",
        functional_id="HP",
        version="005010X221A1",
        control_number=control_number,
        when=now,
        usage=env.get("usage", "T"),
        transactions=sets,
    )


def payee_count(claims: list[AdjudicatedClaim]) -> int:
    return len({c.billing.get("id") or c.billing.get("tax_id") or "" for c in claims})
