"""The payer's side: turning an accepted claim into money, line by line, and remembering it.

Owns:
- ``AdjudicatedClaim`` / ``AdjudicatedLine`` / ``Adjustment``: what the 835 will say, JSON-serialisable (amounts as
  strings) so remittances can wait in the state file for ``remit_delay_seconds``;
- ``adjudicate``: pricing (fee schedule or percent of charge), CO-45 contractual write-off, OA-23 prior payer
  payment for secondary/tertiary claims, PR-3 copay, PR-1 deductible (consumed per member across claims), PR-2
  coinsurance, deterministic denials (hash of CLM01 + line number) with real CARC/RARC pairs, real duplicate
  detection (CO-18) and optional timely filing (CO-29);
- ``reversal_of``: the CLP02 = 22 mirror image of an earlier payment, for voids and replacements.

Every amount is Decimal quantised to cents; balancing holds by construction: for each line
charge = paid + sum(adjustments), and the claim totals are sums of the lines.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .config import Denial, PayerBehaviour
from .edi import CENT
from .model837 import Claim, Party
from .state import SandboxState

__all__ = [
    "AdjudicatedClaim",
    "AdjudicatedLine",
    "Adjustment",
    "adjudicate",
    "claim_fingerprint",
    "filing_indicator_835",
    "hash_fraction",
    "reversal_of",
]

ZERO = Decimal("0.00")
HUNDRED = Decimal("100")

# CLP06 takes a narrower code list than SBR09 in the 837 (pyx12 rejects CI, BL...): map the 837 codes onto it.
_CLP06 = {"12", "13", "14", "15", "16", "17", "AM", "CH", "DS", "HM", "LM", "MA", "MB", "MC", "OF", "TV", "VA", "WC"}
_SBR09_TO_CLP06 = {"CI": "12", "BL": "12", "HN": "16", "11": "ZZ", "ZZ": "ZZ"}


def filing_indicator_835(sbr09: str) -> str:
    code = sbr09.strip().upper()
    if code in _CLP06:
        return code
    return _SBR09_TO_CLP06.get(code, "ZZ")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def hash_fraction(*parts: str) -> tuple[Decimal, int]:
    """A reproducible pseudo-random fraction in [0, 1) and an integer, from the given strings."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return Decimal(int(digest[:12], 16)) / Decimal(16**12), int(digest[12:24], 16)


@dataclass
class Adjustment:
    group: str
    reason: str
    amount: Decimal


@dataclass
class AdjudicatedLine:
    qualifier: str
    code: str
    modifiers: list[str]
    charge: Decimal
    paid: Decimal
    units: str
    date_text: str  # CCYYMMDD of the service (DTM*472)
    control_number: str  # REF*6R from the 837 ("" when it had none)
    allowed: Decimal | None
    adjustments: list[Adjustment] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


@dataclass
class AdjudicatedClaim:
    account: str
    payer_id: str
    payer_name: str
    pcn: str
    status: str  # CLP02
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal
    filing_indicator: str  # CLP06
    payer_claim_number: str  # CLP07 (= REF*1K of the 277CA)
    facility: str  # CLP08: place of service
    frequency: str  # CLP09
    received: str  # CCYYMMDD, DTM*050
    patient: dict[str, str]
    subscriber: dict[str, str]
    is_dependent: bool
    billing: dict[str, str]
    rendering: dict[str, str] | None
    group_number: str
    source_file: str
    lines: list[AdjudicatedLine] = field(default_factory=list)
    reversed: bool = False

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdjudicatedClaim:
        lines = []
        for ln in data["lines"]:
            adjustments = [Adjustment(a["group"], a["reason"], Decimal(a["amount"])) for a in ln["adjustments"]]
            allowed = None if ln["allowed"] is None else Decimal(ln["allowed"])
            values = {**ln, "charge": Decimal(ln["charge"]), "paid": Decimal(ln["paid"]), "allowed": allowed}
            lines.append(AdjudicatedLine(**{**values, "adjustments": adjustments}))
        amounts = {k: Decimal(data[k]) for k in ("charge", "paid", "patient_responsibility")}
        return cls(**{**data, **amounts, "lines": lines})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _party(p: Party, member_id: str = "") -> dict[str, str]:
    return {
        "entity_type": p.entity_type or "1",
        "last": p.last,
        "first": p.first,
        "middle": p.middle,
        "id_qualifier": p.id_qualifier,
        "id": member_id or p.id,
        "address1": p.address1,
        "address2": p.address2,
        "city": p.city,
        "state": p.state,
        "zip": p.zip,
        "tax_id": p.tax_id,
        "birth_date": p.birth_date_text,
    }


def claim_fingerprint(claim: Claim) -> str:
    """What makes two submissions "the same claim" for duplicate detection."""
    parts = [claim.pcn, str(claim.charge), claim.member_id, claim.patient.last, claim.patient.first]
    for ln in claim.lines:
        parts += [ln.code, ":".join(ln.modifiers), str(ln.charge), ln.units, ln.date_text]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _member_key(claim: Claim, payer_id: str) -> str:
    p = claim.patient
    return "|".join([payer_id, claim.member_id, p.last.upper(), p.first.upper(), p.birth_date_text])


def _allowed(behaviour: PayerBehaviour, code: str, modifiers: list[str], units: str, charge: Decimal) -> Decimal:
    schedule = behaviour.fee_schedule
    per_unit = None
    for key in ([f"{code}:{modifiers[0]}"] if modifiers else []) + [code]:
        if key in schedule:
            per_unit = schedule[key]
            break
    if per_unit is not None:
        try:
            count = Decimal(units) if units else Decimal(1)
        except ArithmeticError:
            count = Decimal(1)
        allowed = cents(per_unit * count)
    else:
        allowed = cents(charge * behaviour.allowed_percent / HUNDRED)
    # A payer never allows more than was billed.
    return max(ZERO, min(allowed, charge))


def adjudicate(
    claim: Claim,
    *,
    behaviour: PayerBehaviour,
    state: SandboxState,
    account: str,
    payer_claim_number: str,
    received: date,
    source_file: str,
) -> AdjudicatedClaim:
    """Price and pay ``claim``; consumes deductible in ``state`` and records the claim for later reversal."""
    payer_id = behaviour.payer_id
    secondary = claim.payer_responsibility.upper() in ("S", "T")
    dup_key = f"{account}|{payer_id}|{claim_fingerprint(claim)}"
    duplicate = behaviour.detect_duplicates and claim.frequency == "1" and dup_key in state.seen
    member_key = _member_key(claim, payer_id)
    deductible_left = max(ZERO, behaviour.deductible - Decimal(state.deductible_used.get(member_key, "0")))
    copay_left = behaviour.copay_by_pos.get(claim.place_of_service, ZERO)  # once per claim
    denials = behaviour.denials
    timely = behaviour.timely_filing_days

    lines: list[AdjudicatedLine] = []
    for ln in claim.lines:
        charge = cents(ln.charge if ln.charge is not None else ZERO)
        out = AdjudicatedLine(
            qualifier=ln.qualifier or "HC",
            code=ln.code,
            modifiers=list(ln.modifiers),
            charge=charge,
            paid=ZERO,
            units=ln.units or "1",
            date_text=ln.date_from.strftime("%Y%m%d") if ln.date_from else received.strftime("%Y%m%d"),
            control_number=ln.control_number,
            allowed=None,
        )
        lines.append(out)
        denial: Denial | None = None
        if duplicate:
            denial = Denial("CO", "18", ())
        elif timely is not None and ln.date_from and (received - ln.date_from).days > timely:
            denial = Denial("CO", "29", ())
        elif denials:
            fraction, pick = hash_fraction(claim.pcn, str(ln.number))
            if fraction < behaviour.denial_rate:
                denial = denials[pick % len(denials)]
        if denial is not None:
            if charge:
                out.adjustments.append(Adjustment(denial.group, denial.reason, charge))
            out.remarks = list(denial.remarks)
            continue

        allowed = _allowed(behaviour, ln.code, ln.modifiers, ln.units, charge)
        out.allowed = allowed
        if charge - allowed:
            out.adjustments.append(Adjustment("CO", "45", charge - allowed))
        base = allowed
        if secondary and ln.prior_paid:
            prior = min(cents(ln.prior_paid), base)
            if prior:
                out.adjustments.append(Adjustment("OA", "23", prior))
                base -= prior
        visit_copay = min(copay_left, base)
        copay_left -= visit_copay
        copay = visit_copay + min(behaviour.copay_by_code.get(ln.code, ZERO), base - visit_copay)
        deductible = min(deductible_left, base - copay)
        deductible_left -= deductible
        coinsurance = cents((base - copay - deductible) * behaviour.coinsurance_percent / HUNDRED)
        if deductible:
            out.adjustments.append(Adjustment("PR", "1", deductible))
        if coinsurance:
            out.adjustments.append(Adjustment("PR", "2", coinsurance))
        if copay:
            out.adjustments.append(Adjustment("PR", "3", copay))
        out.paid = base - copay - deductible - coinsurance

    used = behaviour.deductible - deductible_left if behaviour.deductible else ZERO
    if used > Decimal(state.deductible_used.get(member_key, "0")):
        state.deductible_used[member_key] = str(used)

    total_paid = sum((ln.paid for ln in lines), ZERO)
    patient = sum((a.amount for ln in lines for a in ln.adjustments if a.group == "PR"), ZERO)
    all_denied = bool(lines) and all(ln.allowed is None for ln in lines)
    status = "4" if all_denied else {"S": "2", "T": "3"}.get(claim.payer_responsibility.upper(), "1")
    result = AdjudicatedClaim(
        account=account,
        payer_id=payer_id,
        payer_name=behaviour.name(claim.payer.last),
        pcn=claim.pcn,
        status=status,
        charge=sum((ln.charge for ln in lines), ZERO),
        paid=total_paid,
        patient_responsibility=patient,
        filing_indicator=filing_indicator_835(claim.filing_indicator),
        payer_claim_number=payer_claim_number,
        facility=claim.place_of_service or "11",
        frequency=claim.frequency or "1",
        received=received.strftime("%Y%m%d"),
        patient=_party(claim.patient, claim.member_id if not claim.is_dependent else ""),
        subscriber=_party(claim.subscriber),
        is_dependent=claim.is_dependent,
        billing=_party(claim.billing),
        rendering=_party(claim.rendering) if claim.rendering else None,
        group_number=claim.group_number,
        source_file=source_file,
        lines=lines,
    )
    state.claims[f"{account}|{payer_id}|{payer_claim_number}"] = result.to_json()
    state.latest_by_pcn[f"{account}|{payer_id}|{claim.pcn}"] = payer_claim_number
    if claim.frequency == "1":
        state.seen[dup_key] = payer_claim_number
    return result


def reversal_of(original: AdjudicatedClaim, *, received: date, state: SandboxState) -> AdjudicatedClaim:
    """CLP02 = 22: the original's amounts negated, same CLP01 and payer claim number; gives back its deductible."""
    lines = [
        AdjudicatedLine(
            qualifier=ln.qualifier,
            code=ln.code,
            modifiers=list(ln.modifiers),
            charge=-ln.charge,
            paid=-ln.paid,
            units=ln.units,
            date_text=ln.date_text,
            control_number=ln.control_number,
            allowed=None if ln.allowed is None else -ln.allowed,
            adjustments=[Adjustment(a.group, a.reason, -a.amount) for a in ln.adjustments],
            remarks=[],
        )
        for ln in original.lines
    ]
    p = original.patient
    member_key = "|".join(
        [original.payer_id, original.subscriber["id"], p["last"].upper(), p["first"].upper(), p["birth_date"]]
    )
    refunded = sum(
        (a.amount for ln in original.lines for a in ln.adjustments if (a.group, a.reason) == ("PR", "1")), ZERO
    )
    if refunded and member_key in state.deductible_used:
        state.deductible_used[member_key] = str(max(ZERO, Decimal(state.deductible_used[member_key]) - refunded))
    key = f"{original.account}|{original.payer_id}|{original.payer_claim_number}"
    if key in state.claims:
        state.claims[key]["reversed"] = True
    return AdjudicatedClaim(
        **{
            **original.__dict__,
            "status": "22",
            "charge": -original.charge,
            "paid": -original.paid,
            "patient_responsibility": -original.patient_responsibility,
            "received": received.strftime("%Y%m%d"),
            "lines": lines,
            "reversed": True,
        }
    )
