"""837P (005010X222A1) professional claims: owns the input dataclasses, their consistency checks and the file layout.

The lead's code builds these dataclasses from the database; `write_837p` checks them (raising ValueError naming the
claim's patient control number and the field) and writes one ISA/GS holding one or more ST/SE transaction sets.
The scrubber catches bad claims earlier for users; the checks here exist so that this writer never emits a file
whose contents contradict themselves.

Secondary and tertiary claims (coordination of benefits): `Claim.other_payers` lists the payers that adjudicated the
claim before the destination payer (loops 2320/2330A/2330B) and `ServiceLine.adjudications` their line-level results
(loop 2430). The amounts must balance as the TR3 (1.4.4) requires:
- per line and prior payer: SV102 = the payer's SVD02 amounts + its 2430 CAS amounts;
- per prior payer with line adjudications: AMT*D = its SVD02 amounts - its 2320 CAS amounts (with no claim-level
  adjustments: the sum of its line payments);
- per prior payer: CLM02 = AMT*D + its 2320 and 2430 CAS amounts.
The remaining patient liability (AMT*EAF) goes at one level only: 2320 when the payer adjudicated at claim level,
else one AMT*EAF per 2430, each the line's PR adjustments (which must then add up to the figure given).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from integrations.x12.writer import SegmentWriter, format_decimal

__all__ = [
    "Address",
    "BillingProvider",
    "Claim",
    "Interchange837",
    "LineAdjudication",
    "OtherPayer",
    "Payer",
    "Person",
    "Receiver",
    "RenderingProvider",
    "ServiceLine",
    "Submitter",
    "Subscriber",
    "claim_problem",
    "write_837p",
]

IMPLEMENTATION_REF = "005010X222A1"
MAX_LINES_PER_CLAIM = 50
MAX_DIAGNOSES = 12
MAX_POINTERS = 4
MAX_MODIFIERS = 4
SELF = "18"
_CENT = Decimal("0.01")
_FREQUENCIES = frozenset({"1", "7", "8"})
_FREQUENCIES_NEEDING_PAYER_CLAIM_NUMBER = frozenset({"7", "8"})
_PAYER_RESPONSIBILITIES = frozenset("ABCDEFGHPSTU")
_SEXES = frozenset({"F", "M", "U"})
MAX_OTHER_PAYERS = 10  # loop 2320 repeats
MAX_LINE_ADJUDICATIONS = 15  # loop 2430 repeats per line
MAX_CAS_SEGMENTS = 5  # per 2320 and per 2430
CAS_TRIPLETS = 6  # reason/amount/quantity triplets per CAS
_CAS_GROUPS = frozenset({"CO", "CR", "OA", "PI", "PR"})
_PATIENT_RESPONSIBILITY_GROUP = "PR"
_OTHER_RELATIONSHIPS = frozenset({"01", "18", "19", "20", "21", "39", "40", "53", "G8"})  # 2320 SBR02
# Payer sequence: primary, secondary, tertiary, payers 4 to 11 (U, unknown, has no place in it).
_PAYER_SEQUENCE = {code: rank for rank, code in enumerate("PSTABCDEFGH")}


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    state: str
    postal_code: str  # 5 or 9 digits (a '-' between ZIP and +4 is accepted)
    line2: str = ""


@dataclass(frozen=True)
class Submitter:
    name: str
    identifier: str
    contact_name: str
    contact_phone: str
    contact_email: str = ""


@dataclass(frozen=True)
class Receiver:
    name: str
    identifier: str


@dataclass(frozen=True)
class BillingProvider:
    organization_name: str
    npi: str
    tax_id: str
    address: Address
    taxonomy_code: str | None = None
    pay_to_address: Address | None = None


@dataclass(frozen=True)
class Person:
    last_name: str
    first_name: str
    date_of_birth: date
    sex: str  # F, M, U
    address: Address
    middle_name: str = ""


@dataclass(frozen=True)
class Subscriber:
    person: Person
    member_id: str
    group_number: str | None = None


@dataclass(frozen=True)
class Payer:
    name: str
    payer_id: str
    claim_filing_indicator: str  # CI, MB, MC, BL, HM, ...
    address: Address | None = None


@dataclass(frozen=True)
class RenderingProvider:
    npi: str
    last_name: str
    first_name: str
    taxonomy_code: str | None = None


@dataclass(frozen=True)
class LineAdjudication:
    """Loop 2430: one prior payer's adjudication of one service line."""

    payer_id: str  # SVD01: the prior payer's id, as in OtherPayer.payer.payer_id
    paid: Decimal  # SVD02
    procedure_code: str  # SVD03 (HC:code:modifiers) as adjudicated
    modifiers: tuple[str, ...] = ()
    units: Decimal = Decimal(1)  # SVD05
    adjustments: tuple[tuple[str, str, Decimal], ...] = ()  # CAS (group, reason, amount); zero amounts are not sent
    adjudication_date: date | None = None  # DTP*573; defaults to the OtherPayer's adjudication_date


@dataclass(frozen=True)
class ServiceLine:
    line_item_control_number: str
    procedure_code: str
    charge: Decimal
    units: Decimal
    date_of_service: date
    diagnosis_pointers: tuple[int, ...]
    modifiers: tuple[str, ...] = ()
    place_of_service: str | None = None
    rendering_provider: RenderingProvider | None = None
    adjudications: tuple[LineAdjudication, ...] = ()  # 2430, prior payers' results for this line


@dataclass(frozen=True)
class OtherPayer:
    """Loops 2320 + 2330A + 2330B: a payer that adjudicated the claim before the destination payer."""

    payer: Payer  # the prior payer (name, payer_id, claim filing indicator, address)
    subscriber: Subscriber  # the insured under that payer's policy
    relationship_code: str  # 2320 SBR02: the patient's relationship to that subscriber (18 self, 19 child, ...)
    responsibility: str  # 2320 SBR01: that payer's place in the sequence (P, S, T, ...)
    paid: Decimal  # AMT*D: what that payer paid on the claim
    claim_adjustments: tuple[tuple[str, str, Decimal], ...] = ()  # 2320 CAS (group, reason, amount)
    adjudication_date: date | None = None  # 2330B DTP*573; required when the payer has no line adjudications
    remaining_patient_liability: Decimal | None = None  # AMT*EAF (2320, or per 2430 for line-level adjudication)


@dataclass(frozen=True)
class Claim:
    patient_control_number: str
    total_charge: Decimal
    place_of_service: str
    diagnoses: tuple[str, ...]  # ICD-10-CM, dot optional
    subscriber: Subscriber
    payer: Payer
    lines: tuple[ServiceLine, ...]
    relationship_code: str = "18"  # patient's relationship to the subscriber; "18" = self
    patient: Person | None = None  # required when relationship_code != "18"
    payer_responsibility: str = "P"  # P, S, T
    frequency_code: str = "1"  # 1 original, 7 replacement, 8 void
    payer_claim_number: str | None = None  # REF*F8, required for 7 and 8
    rendering_provider: RenderingProvider | None = None  # 2310B when it differs from the billing provider
    # Checked against the lines' dates; not written, as the 837P has no claim-level service period (each line has
    # its DTP*472).
    service_date_range: tuple[date, date] | None = None
    # Prior payers, for a secondary/tertiary claim (payer_responsibility S, T, ...); see the module docstring.
    other_payers: tuple[OtherPayer, ...] = ()


@dataclass(frozen=True)
class Interchange837:
    submitter: Submitter
    receiver: Receiver
    billing_provider: BillingProvider
    claims: tuple[Claim, ...]
    interchange_control_number: int
    group_control_number: int
    first_transaction_control_number: int
    created_at: datetime
    usage_indicator: str = "P"  # "T" test
    max_claims_per_transaction: int = 5000


# ---------------------------------------------------------------------------------------------------------------
# checks


def _money(value: object, where: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise ValueError(f"{where}: must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value != value.quantize(_CENT):
        raise ValueError(f"{where}: {value} is not an amount in whole cents")
    return value


def _postal_code(address: Address, where: str) -> str:
    digits = address.postal_code.strip().replace("-", "")
    if not (digits.isdigit() and len(digits) in (5, 9)):
        raise ValueError(f"{where}.postal_code: not a 5 or 9 digit ZIP code")
    return digits


def _check_address(address: Address, where: str) -> None:
    for name in ("line1", "city", "state"):
        if not getattr(address, name).strip():
            raise ValueError(f"{where}.{name}: required")
    _postal_code(address, where)


def _check_person(person: Person, where: str) -> None:
    if not person.last_name.strip():
        raise ValueError(f"{where}.last_name: required")
    if person.sex not in _SEXES:
        raise ValueError(f"{where}.sex: {person.sex!r} is not F, M or U")
    _check_address(person.address, f"{where}.address")


def _check_claim(claim: Claim) -> None:
    pcn = claim.patient_control_number

    def fail(field: str, problem: str) -> ValueError:
        return ValueError(f"claim {pcn!r}: {field}: {problem}")

    if not pcn.strip():
        raise ValueError("claim with an empty patient_control_number")
    if not claim.lines:
        raise fail("lines", "a claim needs at least one service line")
    if len(claim.lines) > MAX_LINES_PER_CLAIM:
        raise fail("lines", f"{len(claim.lines)} service lines; the 837P allows at most {MAX_LINES_PER_CLAIM}")
    total = _money(claim.total_charge, f"claim {pcn!r}: total_charge")
    line_sum = sum(
        (_money(line.charge, f"claim {pcn!r}: lines[{i}].charge") for i, line in enumerate(claim.lines)), Decimal(0)
    )
    if total != line_sum:
        raise fail("total_charge", f"{total} is not the sum of the line charges ({line_sum})")
    if claim.frequency_code not in _FREQUENCIES:
        raise fail("frequency_code", f"{claim.frequency_code!r} is not 1 (original), 7 (replacement) or 8 (void)")
    if claim.frequency_code in _FREQUENCIES_NEEDING_PAYER_CLAIM_NUMBER and not (claim.payer_claim_number or "").strip():
        raise fail("payer_claim_number", f"required for frequency code {claim.frequency_code} (REF*F8)")
    if claim.payer_responsibility not in _PAYER_RESPONSIBILITIES:
        raise fail("payer_responsibility", f"{claim.payer_responsibility!r} is not a payer responsibility code")
    if claim.relationship_code != SELF and claim.patient is None:
        raise fail("patient", f"required when relationship_code is {claim.relationship_code!r} (not self)")
    if claim.relationship_code == SELF and claim.patient is not None and claim.patient != claim.subscriber.person:
        raise fail("patient", "differs from the subscriber although relationship_code is '18' (self)")
    if not claim.diagnoses:
        raise fail("diagnoses", "at least one diagnosis is required")
    if len(claim.diagnoses) > MAX_DIAGNOSES:
        raise fail("diagnoses", f"{len(claim.diagnoses)} diagnoses; the 837P allows at most {MAX_DIAGNOSES}")
    if not claim.subscriber.member_id.strip():
        raise fail("subscriber.member_id", "required")
    _check_person(claim.subscriber.person, f"claim {pcn!r}: subscriber.person")
    if claim.patient is not None:
        _check_person(claim.patient, f"claim {pcn!r}: patient")
    if claim.payer.address is not None:
        _check_address(claim.payer.address, f"claim {pcn!r}: payer.address")
    if claim.service_date_range is not None and claim.service_date_range[0] > claim.service_date_range[1]:
        raise fail("service_date_range", "starts after it ends")
    for i, line in enumerate(claim.lines):
        where = f"lines[{i}]"
        if not line.diagnosis_pointers:
            raise fail(f"{where}.diagnosis_pointers", "at least one diagnosis pointer is required")
        if len(line.diagnosis_pointers) > MAX_POINTERS:
            raise fail(
                f"{where}.diagnosis_pointers", f"{len(line.diagnosis_pointers)} pointers; at most {MAX_POINTERS}"
            )
        for pointer in line.diagnosis_pointers:
            if not 1 <= pointer <= len(claim.diagnoses):
                raise fail(
                    f"{where}.diagnosis_pointers", f"pointer {pointer} is outside 1..{len(claim.diagnoses)} (diagnoses)"
                )
        if len(line.modifiers) > MAX_MODIFIERS:
            raise fail(f"{where}.modifiers", f"{len(line.modifiers)} modifiers; at most {MAX_MODIFIERS}")
        if not isinstance(line.units, Decimal) or not line.units.is_finite() or line.units <= 0:
            raise fail(f"{where}.units", f"{line.units!r} is not a positive Decimal")
        if line.charge < 0:
            raise fail(f"{where}.charge", f"{line.charge} is negative")
        if claim.service_date_range is not None:
            start, end = claim.service_date_range
            if not start <= line.date_of_service <= end:
                raise fail(
                    f"{where}.date_of_service",
                    f"{line.date_of_service} is outside the claim's service_date_range {start}..{end}",
                )
    _check_other_payers(claim)


def _cas_segments(adjustments: tuple[tuple[str, str, Decimal], ...]) -> list[tuple[str, list[tuple[str, Decimal]]]]:
    """CAS segments for `adjustments`: grouped by group code (in order of first appearance), at most CAS_TRIPLETS
    reasons each; zero amounts are left out (the TR3 sends only non-zero adjustments)."""
    by_group: dict[str, list[tuple[str, Decimal]]] = {}
    for group, reason, amount in adjustments:
        if amount != 0:
            by_group.setdefault(group, []).append((reason, amount))
    return [
        (group, reasons[start : start + CAS_TRIPLETS])
        for group, reasons in by_group.items()
        for start in range(0, len(reasons), CAS_TRIPLETS)
    ]


def _check_adjustments(adjustments: object, where: str) -> Decimal:
    """Checks CAS input; returns the sum of the amounts."""
    if not isinstance(adjustments, tuple):
        raise ValueError(f"{where}: must be a tuple of (group, reason, amount)")
    total = Decimal(0)
    for k, adjustment in enumerate(adjustments):
        if not (isinstance(adjustment, tuple) and len(adjustment) == 3):
            raise ValueError(f"{where}[{k}]: {adjustment!r} is not a (group, reason, amount) triple")
        group, reason, amount = adjustment
        if group not in _CAS_GROUPS:
            raise ValueError(f"{where}[{k}]: group {group!r} is not one of {', '.join(sorted(_CAS_GROUPS))}")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{where}[{k}]: an adjustment reason code is required")
        total += _money(amount, f"{where}[{k}].amount")
    segments = len(_cas_segments(adjustments))
    if segments > MAX_CAS_SEGMENTS:
        raise ValueError(
            f"{where}: needs {segments} CAS segments (one per group, {CAS_TRIPLETS} reasons each); "
            f"the 837P allows at most {MAX_CAS_SEGMENTS}"
        )
    return total


def _patient_responsibility(adjustments: tuple[tuple[str, str, Decimal], ...]) -> Decimal:
    return sum((amount for group, _, amount in adjustments if group == _PATIENT_RESPONSIBILITY_GROUP), Decimal(0))


def _check_other_payers(claim: Claim) -> None:
    """Coordination of benefits: the prior payers (2320/2330A/2330B) and the line adjudications (2430)."""
    pcn = claim.patient_control_number

    def fail(field: str, problem: str) -> ValueError:
        return ValueError(f"claim {pcn!r}: {field}: {problem}")

    ids: dict[str, int] = {}
    if claim.other_payers:
        if len(claim.other_payers) > MAX_OTHER_PAYERS:
            raise fail("other_payers", f"{len(claim.other_payers)} other payers; at most {MAX_OTHER_PAYERS}")
        if claim.payer_responsibility == "P":
            raise fail(
                "payer_responsibility",
                "'P' (primary) although other_payers lists payers that adjudicated the claim before; "
                "the destination payer of a secondary claim is 'S' (tertiary 'T')",
            )
        destination_rank = _PAYER_SEQUENCE.get(claim.payer_responsibility)
        responsibilities: set[str] = set()
        for i, other in enumerate(claim.other_payers):
            where = f"other_payers[{i}]"
            payer_id = other.payer.payer_id.strip()
            if not payer_id:
                raise fail(f"{where}.payer.payer_id", "required")
            if not other.payer.name.strip():
                raise fail(f"{where}.payer.name", "required")
            if payer_id in ids:
                raise fail(f"{where}.payer.payer_id", f"{payer_id!r} is also other_payers[{ids[payer_id]}]")
            ids[payer_id] = i
            code = other.responsibility
            if code not in _PAYER_RESPONSIBILITIES:
                raise fail(f"{where}.responsibility", f"{code!r} is not a payer responsibility code")
            if code == claim.payer_responsibility or code in responsibilities:
                raise fail(f"{where}.responsibility", f"{code!r} is already another payer's place in the sequence")
            rank = _PAYER_SEQUENCE.get(code)
            if rank is not None and destination_rank is not None and rank > destination_rank:
                raise fail(
                    f"{where}.responsibility",
                    f"{code!r} comes after the claim's payer_responsibility {claim.payer_responsibility!r}, "
                    "but this payer has already adjudicated the claim",
                )
            responsibilities.add(code)
            if other.relationship_code not in _OTHER_RELATIONSHIPS:
                raise fail(
                    f"{where}.relationship_code",
                    f"{other.relationship_code!r} is not one of {', '.join(sorted(_OTHER_RELATIONSHIPS))}",
                )
            if not other.subscriber.member_id.strip():
                raise fail(f"{where}.subscriber.member_id", "required")
            _check_person(other.subscriber.person, f"claim {pcn!r}: {where}.subscriber.person")
            if other.payer.address is not None:
                _check_address(other.payer.address, f"claim {pcn!r}: {where}.payer.address")
            _money(other.paid, f"claim {pcn!r}: {where}.paid")
            if other.remaining_patient_liability is not None:
                _money(other.remaining_patient_liability, f"claim {pcn!r}: {where}.remaining_patient_liability")

    # Per prior payer: sums over its line adjudications.
    line_paid: dict[str, Decimal] = {}
    line_adjusted: dict[str, Decimal] = {}
    line_patient: dict[str, Decimal] = {}
    for i, line in enumerate(claim.lines):
        if not line.adjudications:
            continue
        if len(line.adjudications) > MAX_LINE_ADJUDICATIONS:
            raise fail(
                f"lines[{i}].adjudications",
                f"{len(line.adjudications)} line adjudications; at most {MAX_LINE_ADJUDICATIONS}",
            )
        accounted: dict[str, Decimal] = {}
        for j, adjudication in enumerate(line.adjudications):
            where = f"lines[{i}].adjudications[{j}]"
            payer_id = adjudication.payer_id.strip()
            if payer_id not in ids:
                known = ", ".join(repr(known_id) for known_id in ids) or "none"
                raise fail(
                    f"{where}.payer_id",
                    f"{adjudication.payer_id!r} is not the payer_id of any of other_payers ({known})",
                )
            other = claim.other_payers[ids[payer_id]]
            paid = _money(adjudication.paid, f"claim {pcn!r}: {where}.paid")
            adjusted = _check_adjustments(adjudication.adjustments, f"claim {pcn!r}: {where}.adjustments")
            if not adjudication.procedure_code.strip():
                raise fail(f"{where}.procedure_code", "required")
            if len(adjudication.modifiers) > MAX_MODIFIERS:
                raise fail(f"{where}.modifiers", f"{len(adjudication.modifiers)} modifiers; at most {MAX_MODIFIERS}")
            units = adjudication.units
            if not isinstance(units, Decimal) or not units.is_finite() or units < 0:
                raise fail(f"{where}.units", f"{units!r} is not a Decimal of zero or more")
            if adjudication.adjudication_date is None and other.adjudication_date is None:
                raise fail(
                    f"{where}.adjudication_date",
                    f"required (2430 DTP*573) unless other_payers[{ids[payer_id]}].adjudication_date is given",
                )
            accounted[payer_id] = accounted.get(payer_id, Decimal(0)) + paid + adjusted
            line_paid[payer_id] = line_paid.get(payer_id, Decimal(0)) + paid
            line_adjusted[payer_id] = line_adjusted.get(payer_id, Decimal(0)) + adjusted
            line_patient[payer_id] = line_patient.get(payer_id, Decimal(0)) + _patient_responsibility(
                adjudication.adjustments
            )
        for payer_id, amount in accounted.items():
            if amount != line.charge:
                raise fail(
                    f"lines[{i}].adjudications",
                    f"payer {payer_id!r}: paid + adjustments = {amount}, not the line charge {line.charge}",
                )

    for i, other in enumerate(claim.other_payers):
        where = f"other_payers[{i}]"
        payer_id = other.payer.payer_id.strip()
        claim_adjusted = _check_adjustments(other.claim_adjustments, f"claim {pcn!r}: {where}.claim_adjustments")
        if payer_id in line_paid:
            expected = line_paid[payer_id] - claim_adjusted
            if other.paid != expected:
                detail = f" minus its claim_adjustments ({claim_adjusted})" if claim_adjusted else ""
                raise fail(
                    f"{where}.paid",
                    f"{other.paid} is not the sum of payer {payer_id!r}'s line adjudications' paid amounts "
                    f"({line_paid[payer_id]}){detail}",
                )
            liability = other.remaining_patient_liability
            if liability is not None and liability != line_patient[payer_id]:
                raise fail(
                    f"{where}.remaining_patient_liability",
                    f"{liability} is not the sum of the PR adjustments in payer {payer_id!r}'s line adjudications "
                    f"({line_patient[payer_id]}); with line adjudications it is sent per line (2430 AMT*EAF) "
                    "as each line's PR adjustments",
                )
        elif other.adjudication_date is None:
            raise fail(
                f"{where}.adjudication_date", "required (2330B DTP*573) when the payer has no line adjudications"
            )
        balance = other.paid + claim_adjusted + line_adjusted.get(payer_id, Decimal(0))
        if balance != claim.total_charge:
            raise fail(
                f"{where}",
                f"paid + claim and line adjustments of payer {payer_id!r} = {balance}, "
                f"not the claim's total_charge {claim.total_charge}",
            )


def _tax_id(value: str) -> str:
    digits = value.strip().replace("-", "")
    if not (digits.isdigit() and len(digits) == 9):
        raise ValueError("billing_provider.tax_id: not a 9 digit EIN/SSN")
    return digits


def _phone(value: str) -> str:
    # Punctuation is formatting; anything else (letters, an extension) would be lost silently, so it is refused.
    digits = "".join(ch for ch in value if ch not in " ()-.+")
    if not digits.isdigit():
        raise ValueError("submitter.contact_phone: not a phone number (digits only, no extension)")
    return digits


def _check(interchange: Interchange837) -> None:
    _tax_id(interchange.billing_provider.tax_id)
    _phone(interchange.submitter.contact_phone)
    if not interchange.claims:
        raise ValueError("interchange: no claims")
    if interchange.max_claims_per_transaction < 1:
        raise ValueError("interchange: max_claims_per_transaction must be at least 1")
    if interchange.usage_indicator not in ("P", "T"):
        raise ValueError(f"interchange: usage_indicator {interchange.usage_indicator!r} is not P or T")
    transactions = -(-len(interchange.claims) // interchange.max_claims_per_transaction)
    if interchange.first_transaction_control_number < 1 or (
        interchange.first_transaction_control_number + transactions - 1 > 999_999_999
    ):
        raise ValueError("interchange: first_transaction_control_number leaves the range 1..999999999")
    _check_address(interchange.billing_provider.address, "billing_provider.address")
    if interchange.billing_provider.pay_to_address is not None:
        _check_address(interchange.billing_provider.pay_to_address, "billing_provider.pay_to_address")
    seen: set[str] = set()
    for claim in interchange.claims:
        _check_claim(claim)
        if claim.patient_control_number in seen:
            # 999/277CA/835 answers are matched back on CLM01; two claims with one number would be ambiguous.
            raise ValueError(f"claim {claim.patient_control_number!r}: patient_control_number appears twice")
        seen.add(claim.patient_control_number)


# ---------------------------------------------------------------------------------------------------------------
# writing


def _address(w: SegmentWriter, address: Address) -> None:
    w.segment("N3", address.line1, address.line2 or None)
    w.segment("N4", address.city, address.state, address.postal_code.strip().replace("-", ""))


def _person(w: SegmentWriter, qualifier: str, person: Person, member_id: str | None) -> None:
    w.segment(
        "NM1",
        qualifier,
        "1",
        person.last_name,
        person.first_name,
        person.middle_name or None,
        None,
        None,
        "MI" if member_id else None,
        member_id,
    )
    _address(w, person.address)
    w.segment("DMG", "D8", person.date_of_birth.strftime("%Y%m%d"), person.sex)


def _rendering(w: SegmentWriter, provider: RenderingProvider) -> None:
    w.segment("NM1", "82", "1", provider.last_name, provider.first_name, None, None, None, "XX", provider.npi)
    if provider.taxonomy_code:
        w.segment("PRV", "PE", "PXC", provider.taxonomy_code)


def _cas(w: SegmentWriter, adjustments: tuple[tuple[str, str, Decimal], ...]) -> None:
    for group, reasons in _cas_segments(adjustments):
        w.segment("CAS", group, *[value for reason, amount in reasons for value in (reason, amount, None)])


def _has_line_adjudications(claim: Claim, payer_id: str) -> bool:
    return any(adj.payer_id.strip() == payer_id for line in claim.lines for adj in line.adjudications)


def _other_payer(w: SegmentWriter, claim: Claim, other: OtherPayer) -> None:
    """Loops 2320, 2330A and 2330B for one prior payer."""
    line_level = _has_line_adjudications(claim, other.payer.payer_id.strip())
    w.segment(
        "SBR",
        other.responsibility,
        other.relationship_code,
        other.subscriber.group_number,
        None,
        None,
        None,
        None,
        None,
        other.payer.claim_filing_indicator,
    )
    _cas(w, other.claim_adjustments)
    w.segment("AMT", "D", other.paid)
    if other.remaining_patient_liability is not None and not line_level:
        w.segment("AMT", "EAF", other.remaining_patient_liability)
    # OI03/OI06 repeat the claim's CLM08 (benefits assigned) and CLM09 (release of information); OI04 (patient
    # signature source) is sent only when CLM10 is, which this writer does not send.
    w.segment("OI", None, None, "Y", None, None, "Y")
    person = other.subscriber.person
    w.segment(
        "NM1",
        "IL",
        "1",
        person.last_name,
        person.first_name,
        person.middle_name or None,
        None,
        None,
        "MI",
        other.subscriber.member_id,
    )
    _address(w, person.address)
    w.segment("NM1", "PR", "2", other.payer.name, None, None, None, None, "PI", other.payer.payer_id.strip())
    if other.payer.address is not None:
        _address(w, other.payer.address)
    if not line_level:
        assert other.adjudication_date is not None  # checked
        w.segment("DTP", "573", "D8", other.adjudication_date.strftime("%Y%m%d"))


def _line_adjudication(w: SegmentWriter, other: OtherPayer, adjudication: LineAdjudication) -> None:
    """Loop 2430."""
    w.segment(
        "SVD",
        adjudication.payer_id.strip(),
        adjudication.paid,
        ("HC", adjudication.procedure_code, *adjudication.modifiers),
        None,
        format_decimal(adjudication.units),
    )
    _cas(w, adjudication.adjustments)
    when = adjudication.adjudication_date or other.adjudication_date
    assert when is not None  # checked
    w.segment("DTP", "573", "D8", when.strftime("%Y%m%d"))
    if other.remaining_patient_liability is not None:
        w.segment("AMT", "EAF", _patient_responsibility(adjudication.adjustments))


def _diagnosis(code: str) -> str:
    return code.strip().replace(".", "").upper()


def _claim(w: SegmentWriter, interchange: Interchange837, claim: Claim, hl: int) -> int:
    """Write loops 2000B..2400 for one claim starting at HL number `hl`; returns the next free HL number."""
    dependent = claim.relationship_code != SELF
    subscriber_hl = hl
    w.segment("HL", subscriber_hl, "1", "22", "1" if dependent else "0")
    w.segment(
        "SBR",
        claim.payer_responsibility,
        None if dependent else SELF,
        claim.subscriber.group_number,
        None,
        None,
        None,
        None,
        None,
        claim.payer.claim_filing_indicator,
    )
    # 2010BA: the subscriber's address and demographics are required when the subscriber is the patient and
    # situational otherwise; they are always known here, so they are always written.
    _person(w, "IL", claim.subscriber.person, claim.subscriber.member_id)
    w.segment("NM1", "PR", "2", claim.payer.name, None, None, None, None, "PI", claim.payer.payer_id)
    if claim.payer.address is not None:
        _address(w, claim.payer.address)
    hl += 1
    if dependent:
        assert claim.patient is not None
        w.segment("HL", hl, subscriber_hl, "23", "0")
        w.segment("PAT", claim.relationship_code)
        _person(w, "QC", claim.patient, None)
        hl += 1

    w.segment(
        "CLM",
        claim.patient_control_number,
        claim.total_charge,
        None,
        None,
        (claim.place_of_service, "B", claim.frequency_code),
        "Y",
        "A",
        "Y",
        "Y",
    )
    if claim.frequency_code in _FREQUENCIES_NEEDING_PAYER_CLAIM_NUMBER:
        w.segment("REF", "F8", claim.payer_claim_number)
    w.segment(
        "HI",
        *[("ABK" if i == 0 else "ABF", _diagnosis(code)) for i, code in enumerate(claim.diagnoses)],
    )
    if claim.rendering_provider is not None:
        _rendering(w, claim.rendering_provider)
    for other in claim.other_payers:
        _other_payer(w, claim, other)
    others = {other.payer.payer_id.strip(): other for other in claim.other_payers}

    billing_npi = interchange.billing_provider.npi
    for number, line in enumerate(claim.lines, start=1):
        w.segment("LX", number)
        place = line.place_of_service if line.place_of_service not in (None, claim.place_of_service) else None
        w.segment(
            "SV1",
            ("HC", line.procedure_code, *line.modifiers),
            line.charge,
            "UN",
            format_decimal(line.units),
            place,
            None,
            tuple(str(pointer) for pointer in line.diagnosis_pointers),
        )
        w.segment("DTP", "472", "D8", line.date_of_service.strftime("%Y%m%d"))
        if line.line_item_control_number.strip():
            w.segment("REF", "6R", line.line_item_control_number)
        renderer = line.rendering_provider
        # 2420A only when the line's renderer differs from the claim's (2310B, or else the billing provider).
        if (
            renderer is not None
            and renderer != claim.rendering_provider
            and not (claim.rendering_provider is None and renderer.npi == billing_npi)
        ):
            _rendering(w, renderer)
        for adjudication in line.adjudications:
            _line_adjudication(w, others[adjudication.payer_id.strip()], adjudication)
    return hl


def _transaction(w: SegmentWriter, interchange: Interchange837, claims: tuple[Claim, ...], control: int) -> None:
    created = interchange.created_at
    submitter, billing = interchange.submitter, interchange.billing_provider
    w.st("837", control, IMPLEMENTATION_REF)
    # BHT03 is the batch id a 277CA echoes back (TRN02 of loop 2200B): unique per transaction set.
    w.segment(
        "BHT",
        "0019",
        "00",
        f"{interchange.group_control_number}-{control:04d}",
        created.strftime("%Y%m%d"),
        created.strftime("%H%M"),
        "CH",
    )
    w.segment("NM1", "41", "2", submitter.name, None, None, None, None, "46", submitter.identifier)
    w.segment(
        "PER",
        "IC",
        submitter.contact_name,
        "TE",
        _phone(submitter.contact_phone),
        "EM" if submitter.contact_email else None,
        submitter.contact_email or None,
    )
    w.segment(
        "NM1", "40", "2", interchange.receiver.name, None, None, None, None, "46", interchange.receiver.identifier
    )

    w.segment("HL", 1, None, "20", "1")
    if billing.taxonomy_code:
        w.segment("PRV", "BI", "PXC", billing.taxonomy_code)
    w.segment("NM1", "85", "2", billing.organization_name, None, None, None, None, "XX", billing.npi)
    _address(w, billing.address)
    w.segment("REF", "EI", _tax_id(billing.tax_id))
    if billing.pay_to_address is not None:
        w.segment("NM1", "87", "2")
        _address(w, billing.pay_to_address)

    hl = 2
    for claim in claims:
        hl = _claim(w, interchange, claim, hl)
    w.se()


def claim_problem(interchange: Interchange837, claim: Claim) -> str | None:
    """Why `claim` cannot be written into `interchange` (its own checks and loops 2000B-2400), or None when it can.
    The envelope and the billing provider are not looked at: a caller uses this to tell which claims of a refused
    batch to leave out, so that one bad claim does not stop the others."""
    try:
        _check_claim(claim)
        _claim(SegmentWriter(), interchange, claim, 2)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def write_837p(interchange: Interchange837) -> str:
    """The 837P file for `interchange`: one ISA/GS, claims split into STs of at most max_claims_per_transaction."""
    _check(interchange)
    w = SegmentWriter()
    created = interchange.created_at
    w.isa(
        sender_qualifier="ZZ",
        sender_id=interchange.submitter.identifier,
        receiver_qualifier="ZZ",
        receiver_id=interchange.receiver.identifier,
        control_number=interchange.interchange_control_number,
        created_at=created,
        usage_indicator=interchange.usage_indicator,
    )
    w.gs(
        functional_id="HC",
        sender_id=interchange.submitter.identifier,
        receiver_id=interchange.receiver.identifier,
        control_number=interchange.group_control_number,
        created_at=created,
        version=IMPLEMENTATION_REF,
    )
    size = interchange.max_claims_per_transaction
    for index, start in enumerate(range(0, len(interchange.claims), size)):
        chunk = interchange.claims[start : start + size]
        _transaction(w, interchange, chunk, interchange.first_transaction_control_number + index)
    w.ge()
    w.iea()
    return w.text()
