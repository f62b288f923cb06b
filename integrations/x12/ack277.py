"""277CA claim acknowledgements (005010X214): owns turning a 277CA file into per-claim accept/reject results in words.

One `Ack277` per ST*277. Claims are loop 2200D (TRN*2 = our CLM01) under the patient HL (PT), under the billing
provider HL (19, NM1*85 with XX NPI or FI tax id). A claim is `accepted` when every claim-level STC category is an
acknowledgement that lets it into adjudication (A0 forwarded, A1 received, A2 accepted, A5 split); any other category
(A3, A4, A6, A7, A8, E*, or a code we do not know) means it was not accepted, and `reasons` says why in words.
Parsing is all-or-nothing: a structural defect raises X12Error naming the segment and nothing is returned.
Envelope control-number mismatches are kept in `warnings` (see ack999).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from integrations.x12.codes import CLAIM_STATUS_CATEGORIES, CLAIM_STATUS_CODES, ENTITY_IDENTIFIERS, describe
from integrations.x12.reader import (
    Interchange,
    Segment,
    TransactionSet,
    X12Error,
    parse_date,
    transaction_sets,
)

__all__ = ["ACCEPTED_CATEGORIES", "Ack277", "ClaimAck", "ClaimStatus", "parse_277ca"]

ACCEPTED_CATEGORIES = frozenset({"A0", "A1", "A2", "A5"})
_LEVELS = frozenset({"20", "21", "19", "PT"})
_SEGMENTS = frozenset({"BHT", "HL", "NM1", "TRN", "DTP", "STC", "QTY", "AMT", "REF", "SVC"})


@dataclass(frozen=True)
class ClaimStatus:
    category_code: str
    category: str
    status_code: str
    status: str
    entity_code: str
    entity: str
    effective_date: date | None  # STC02
    action_code: str  # STC03, e.g. WQ, U
    amount: Decimal | None  # STC04

    @property
    def text(self) -> str:
        """E.g. 'A7 Acknowledgement/Rejected for Invalid Information: 562 Entity's NPI (85 Billing Provider)'."""
        text = f"{self.category_code} {self.category}"
        if self.status_code:
            text += f": {self.status_code} {self.status}"
        if self.entity_code:
            text += f" ({self.entity_code} {self.entity})"
        return text

    @property
    def accepting(self) -> bool:
        return self.category_code in ACCEPTED_CATEGORIES


@dataclass(frozen=True)
class ClaimAck:
    patient_control_number: str  # TRN02 of loop 2200D: the CLM01 we sent
    payer_claim_number: str | None  # REF*1K
    billing_provider_npi: str | None
    billing_provider_tax_id: str | None
    statuses: list[ClaimStatus]
    total_charge: Decimal | None  # STC04 of the first claim-level STC
    accepted: bool
    reasons: list[str]  # the non-accepting statuses in words
    patient_last_name: str = ""
    patient_first_name: str = ""
    member_id: str = ""
    clearinghouse_trace_number: str | None = None  # REF*D9
    service_date_from: date | None = None  # DTP*472
    service_date_to: date | None = None
    provider_statuses: list[ClaimStatus] = field(default_factory=list)  # STCs of the billing provider (2200C)
    segment_position: int | None = None  # of the TRN opening the claim


@dataclass(frozen=True)
class Ack277:
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    interchange_control_number: str
    control_number: str  # ST02 of this 277
    reference_id: str  # BHT03
    information_source: str  # NM103 of loop 2100A (payer or clearinghouse)
    receiver_trace_number: str  # TRN02 of loop 2200B: the BHT03 of the 837 acknowledged
    batch_statuses: list[ClaimStatus]  # STCs of loop 2200B (the whole batch)
    claims: list[ClaimAck]
    warnings: list[str] = field(default_factory=list)


def _statuses(seg: Segment) -> list[ClaimStatus]:
    if not seg.el(1):
        raise X12Error.at(seg, "STC01 (claim status) is missing", 1)
    effective = seg.date(2)
    action = seg.el(3)
    amount = seg.amount(4)
    statuses = []
    for n in (1, 10, 11):  # STC10 and STC11 carry further statuses sharing STC02-04
        if not seg.el(n):
            continue
        category, status, entity = seg.component(n, 1), seg.component(n, 2), seg.component(n, 3)
        if not category:
            raise X12Error.at(seg, "status category code is missing", n)
        statuses.append(
            ClaimStatus(
                category_code=category,
                category=describe(CLAIM_STATUS_CATEGORIES, category),
                status_code=status,
                status=describe(CLAIM_STATUS_CODES, status) if status else "",
                entity_code=entity,
                entity=describe(ENTITY_IDENTIFIERS, entity) if entity else "",
                effective_date=effective,
                action_code=action,
                amount=amount,
            )
        )
    return statuses


@dataclass
class _OpenClaim:
    trn: Segment
    provider_npi: str | None
    provider_tax_id: str | None
    provider_statuses: list[ClaimStatus]
    patient: Segment | None
    statuses: list[ClaimStatus] = field(default_factory=list)
    total_charge: Decimal | None = None
    payer_claim_number: str | None = None
    clearinghouse_trace_number: str | None = None
    service_from: date | None = None
    service_to: date | None = None
    in_service_line: bool = False

    def close(self) -> ClaimAck:
        if not self.statuses:
            raise X12Error.at(self.trn, "claim has no claim-level STC (status)")
        patient = self.patient
        return ClaimAck(
            patient_control_number=self.trn.el(2),
            payer_claim_number=self.payer_claim_number,
            billing_provider_npi=self.provider_npi,
            billing_provider_tax_id=self.provider_tax_id,
            statuses=self.statuses,
            total_charge=self.total_charge,
            accepted=all(status.accepting for status in self.statuses),
            reasons=[status.text for status in self.statuses if not status.accepting],
            patient_last_name=patient.el(3) if patient else "",
            patient_first_name=patient.el(4) if patient else "",
            member_id=patient.el(9) if patient else "",
            clearinghouse_trace_number=self.clearinghouse_trace_number,
            service_date_from=self.service_from,
            service_date_to=self.service_to,
            provider_statuses=list(self.provider_statuses),
            segment_position=self.trn.position,
        )


class _Ack277Reader:
    def __init__(self, interchange: Interchange, ts: TransactionSet, warnings: list[str]) -> None:
        self.interchange, self.ts, self.warnings = interchange, ts, warnings
        self.level: str | None = None
        self.reference_id = ""
        self.information_source = ""
        self.receiver_trace = ""
        self.batch_statuses: list[ClaimStatus] = []
        self.provider_npi: str | None = None
        self.provider_tax_id: str | None = None
        self.provider_statuses: list[ClaimStatus] = []
        self.patient_hl: Segment | None = None
        self.patient: Segment | None = None
        self.patient_has_claim = False
        self.claim: _OpenClaim | None = None
        self.claims: list[ClaimAck] = []

    def read(self) -> Ack277:
        body = self.ts.body
        if not body or body[0].id != "BHT":
            raise X12Error.at(body[0] if body else self.ts.trailer, "277 has no BHT after ST")
        for seg in body:
            self._segment(seg)
        self._close_patient()
        isa = self.interchange
        return Ack277(
            sender_qualifier=isa.sender_qualifier,
            sender_id=isa.sender_id,
            receiver_qualifier=isa.receiver_qualifier,
            receiver_id=isa.receiver_id,
            interchange_control_number=isa.control_number,
            control_number=self.ts.control_number,
            reference_id=self.reference_id,
            information_source=self.information_source,
            receiver_trace_number=self.receiver_trace,
            batch_statuses=self.batch_statuses,
            claims=self.claims,
            warnings=self.warnings,
        )

    def _close_claim(self) -> None:
        if self.claim is not None:
            self.claims.append(self.claim.close())
            self.claim = None

    def _close_patient(self) -> None:
        self._close_claim()
        if self.patient_hl is not None and not self.patient_has_claim:
            raise X12Error.at(self.patient_hl, "patient loop has no TRN (claim status tracking number, loop 2200D)")
        self.patient_hl = None

    def _segment(self, seg: Segment) -> None:
        if seg.id not in _SEGMENTS:
            raise X12Error.at(seg, "segment not expected in a 277CA")
        if seg.id == "BHT":
            self.reference_id = seg.el(3)
            return
        if seg.id == "HL":
            self._hl(seg)
            return
        if self.level is None:
            raise X12Error.at(seg, "segment before the first HL")
        handler = getattr(self, f"_{seg.id.lower()}", None)
        if handler is not None:
            handler(seg)

    def _hl(self, seg: Segment) -> None:
        level = seg.el(3)
        if level not in _LEVELS:
            raise X12Error.at(seg, f"unknown hierarchical level code {level!r} for a 277CA", 3)
        self._close_patient()
        self.level = level
        if level == "19":
            self.provider_npi = self.provider_tax_id = None
            self.provider_statuses = []
        elif level == "PT":
            self.patient_hl, self.patient, self.patient_has_claim = seg, None, False

    def _nm1(self, seg: Segment) -> None:
        if self.level == "20":
            self.information_source = seg.el(3)
        elif self.level == "19" and seg.el(1) == "85":
            qualifier, identifier = seg.el(8), seg.el(9)
            if qualifier == "XX":
                self.provider_npi = identifier
            elif qualifier == "FI":
                self.provider_tax_id = identifier
            else:
                raise X12Error.at(
                    seg, f"unknown billing provider identification code qualifier {qualifier!r} (XX or FI)", 8
                )
        elif self.level == "PT":
            if self.claim is not None:
                raise X12Error.at(seg, "NM1 inside a claim (loop 2200D); expected a new HL first")
            self.patient = seg

    def _trn(self, seg: Segment) -> None:
        if self.level == "21":
            self.receiver_trace = seg.el(2)
        if self.level != "PT":
            return
        if seg.el(1) != "2":
            raise X12Error.at(seg, f"unknown trace type code {seg.el(1)!r} for a claim (expected 2)", 1)
        if not seg.el(2):
            raise X12Error.at(seg, "claim TRN has no patient control number", 2)
        self._close_claim()
        self.patient_has_claim = True
        self.claim = _OpenClaim(
            trn=seg,
            provider_npi=self.provider_npi,
            provider_tax_id=self.provider_tax_id,
            provider_statuses=self.provider_statuses,
            patient=self.patient,
        )

    def _stc(self, seg: Segment) -> None:
        statuses = _statuses(seg)
        if self.level == "21":
            self.batch_statuses.extend(statuses)
        elif self.level == "19":
            self.provider_statuses.extend(statuses)
        elif self.level == "PT":
            claim = self.claim
            if claim is None:
                raise X12Error.at(seg, "STC in a patient loop with no TRN (claim status tracking number)")
            if claim.in_service_line:
                return  # line-level statuses (loop 2220D) do not change the claim's verdict
            if not claim.statuses:
                claim.total_charge = seg.amount(4)
            claim.statuses.extend(statuses)

    def _ref(self, seg: Segment) -> None:
        claim = self.claim
        if self.level != "PT" or claim is None or claim.in_service_line:
            return
        if seg.el(1) == "1K":
            claim.payer_claim_number = seg.el(2)
        elif seg.el(1) == "D9":
            claim.clearinghouse_trace_number = seg.el(2)

    def _dtp(self, seg: Segment) -> None:
        claim = self.claim
        if self.level != "PT" or claim is None or claim.in_service_line or seg.el(1) != "472":
            return
        qualifier, value = seg.el(2), seg.el(3)
        if qualifier == "D8":
            claim.service_from = claim.service_to = parse_date(value, seg, 3)
        elif qualifier == "RD8":
            start, _, end = value.partition("-")
            claim.service_from, claim.service_to = parse_date(start, seg, 3), parse_date(end, seg, 3)
        else:
            raise X12Error.at(seg, f"unknown date format qualifier {qualifier!r} (D8 or RD8)", 2)

    def _svc(self, seg: Segment) -> None:
        if self.level != "PT" or self.claim is None:
            raise X12Error.at(seg, "SVC outside a claim (loop 2200D)")
        self.claim.in_service_line = True


def parse_277ca(data: bytes | str) -> list[Ack277]:
    """Every ST*277 in `data`, in file order; X12Error (and nothing returned) if any part is malformed."""
    acks: list[Ack277] = []
    for interchange, ts in transaction_sets(data, "277"):
        warnings = [str(warning) for warning in interchange.warnings]
        acks.append(_Ack277Reader(interchange, ts, warnings).read())
    return acks
