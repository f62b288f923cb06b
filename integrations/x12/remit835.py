"""835 remittance advice (005010X221A1): owns turning an 835 file into payments per claim and service line.

One `Remittance` per ST*835, in file order: the payment (BPR/TRN), payer and payee (N1*PR, N1*PE), every claim
(CLP, loop 2100) with its service lines (SVC, loop 2110), their adjustments (CAS, one `Adjustment` per reason
triplet) and the provider-level adjustments (PLB, one `ProviderAdjustment` per reason/amount pair).

Tokenizing and envelopes belong to `reader`; this module only interprets the segments of each transaction set.

Parsing is all-or-nothing for structure: a segment out of place (a CLP before the header, an SVC outside a claim, a
CAS or PLB that cannot be read, a missing BPR or TRN) raises X12Error naming the segment, and nothing is returned.

Balancing (per line SVC02 = SVC03 + line CAS; per claim CLP03 = CLP04 + claim CAS + line CAS; per set BPR02 =
sum CLP04 - sum PLB) is checked for every line, claim and set of the file. With `strict_balancing=True` every failure
is collected and one X12Error lists them all (positioned at the first); with `strict_balancing=False` they go to
`Remittance.warnings`, because masked sample files hide amounts (99999.99) and cannot balance. A required amount that
is empty (CLP03/CLP04, SVC02/SVC03) is a balancing failure too, and is taken as 0.

Defects that do not touch the money (an impossible date, an unknown code, a segment the 835 does not have, a
control-number mismatch in the envelope) are kept as `warnings` and the rest of the data is kept.

A claim is never identified by CLP01 alone: a reversal (CLP02 22) and its re-payment carry the same CLP01, so
claims and lines carry their `segment_position`, and a whole set carries `content_key` (the same ST..SE received
twice, in any envelope and with any delimiters, has the same key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from integrations.x12.codes import describe
from integrations.x12.reader import (
    Interchange,
    Segment,
    TransactionSet,
    X12Error,
    parse_date,
    transaction_sets,
)

__all__ = [
    "ADJUSTMENT_GROUPS",
    "CLAIM_STATUSES",
    "Adjustment",
    "ClaimPayment",
    "Party",
    "ProviderAdjustment",
    "Remittance",
    "ServicePayment",
    "content_key",
    "parse_835",
]

# CLP02 claim status codes (005010X221A1).
CLAIM_STATUSES: dict[str, str] = {
    "1": "Processed as primary",
    "2": "Processed as secondary",
    "3": "Processed as tertiary",
    "4": "Denied",
    "19": "Processed as primary, forwarded to additional payer(s)",
    "20": "Processed as secondary, forwarded to additional payer(s)",
    "21": "Processed as tertiary, forwarded to additional payer(s)",
    "22": "Reversal of previous payment",
    "23": "Not our claim, forwarded to additional payer(s)",
    "25": "Predetermination pricing only - no payment",
}

# PLB03-1 provider adjustment reason codes.
PROVIDER_ADJUSTMENT_REASONS: dict[str, str] = {
    "50": "Late charge",
    "51": "Interest penalty charge",
    "72": "Authorized return",
    "90": "Early payment allowance",
    "AH": "Origination fee",
    "AM": "Applied to borrower's account",
    "AP": "Acceleration of benefits",
    "B2": "Rebate",
    "B3": "Recovery allowance",
    "BD": "Bad debt adjustment",
    "BN": "Bonus",
    "C5": "Temporary allowance",
    "CR": "Capitation interest",
    "CS": "Adjustment",
    "CT": "Capitation payment",
    "CV": "Capital passthru",
    "CW": "Certified registered nurse anesthetist passthru",
    "DM": "Direct medical education passthru",
    "E3": "Withholding",
    "FB": "Forwarding balance",
    "FC": "Fund allocation",
    "GO": "Graduate medical education passthru",
    "HM": "Hemophilia clotting factor supplement",
    "IP": "Incentive premium payment",
    "IR": "Internal Revenue Service withholding",
    "IS": "Interim settlement",
    "J1": "Nonreimbursable",
    "L3": "Penalty",
    "L6": "Interest owed",
    "LE": "Levy",
    "LS": "Lump sum",
    "OA": "Organ acquisition passthru",
    "OB": "Offset for affiliated providers",
    "PI": "Periodic interim payment",
    "PL": "Payment final",
    "RA": "Retro-activity adjustment",
    "RE": "Return on equity",
    "SL": "Student loan repayment",
    "TL": "Third party liability",
    "WO": "Overpayment recovery",
    "WU": "Unspecified recovery",
}

# CAS01 claim adjustment group codes. CR is a 4010 group that real files still send (see the 4010 fixtures).
ADJUSTMENT_GROUPS: dict[str, str] = {
    "CO": "Contractual obligations",
    "CR": "Corrections and reversals",
    "OA": "Other adjustments",
    "PI": "Payor initiated reductions",
    "PR": "Patient responsibility",
}

_HANDLING_CODES = frozenset({"C", "D", "H", "I", "P", "U", "X"})
_PAYMENT_METHODS = frozenset({"ACH", "BOP", "CHK", "FWT", "NON"})
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
# Segments an 835 may carry that this parser reads for nothing (addresses, contacts, provider summaries...).
_IGNORED = frozenset({"NTE", "CUR", "N2", "N3", "N4", "PER", "RDM", "TS3", "TS2"})
_MAX_CAS_TRIPLETS = 6
_MAX_PLB_PAIRS = 6


# ---------------------------------------------------------------------------------------------------------------
# the result


@dataclass(frozen=True)
class Adjustment:
    """One CAS reason triplet. A positive amount reduces the payment; a negative one (reversals) increases it."""

    group: str  # CAS01: CO, CR, OA, PI, PR
    reason: str  # CARC code
    amount: Decimal
    quantity: Decimal | None
    segment_position: int  # of the CAS

    @property
    def group_text(self) -> str:
        return describe(ADJUSTMENT_GROUPS, self.group)


@dataclass(frozen=True)
class ProviderAdjustment:
    """One reason/amount pair of a PLB. A positive amount reduces the payment (BPR02 = sum CLP04 - sum PLB)."""

    provider_id: str  # PLB01
    fiscal_period_date: date | None  # PLB02
    reason: str  # first component of the composite, e.g. L6 interest, WO recoupment, FB forward balance, CS
    reference: str | None  # second component, e.g. the payer claim number a WO recoups
    amount: Decimal
    pair: int  # 1..6: which pair of the PLB
    segment_position: int  # of the PLB


@dataclass(frozen=True)
class Party:
    """An NM1 of a claim (patient, insured, corrected insured, crossover payer...)."""

    entity_code: str  # NM101: QC, IL, 74, 82, TT, PR, GB
    entity_type: str  # NM102: 1 person, 2 organisation
    name: str  # NM103: last or organisation name
    first_name: str
    middle_name: str
    suffix: str
    id_qualifier: str  # NM108: MI, MR, HN, C, PI, XX...
    identifier: str  # NM109


@dataclass(frozen=True)
class ServicePayment:
    """One SVC (loop 2110)."""

    procedure_qualifier: str  # SVC01-1: HC, AD, ER, IV, N4, NU, WK, ZZ
    procedure_code: str  # SVC01-2
    modifiers: list[str]  # SVC01-3..6
    charge: Decimal  # SVC02
    paid: Decimal  # SVC03
    revenue_code: str  # SVC04
    units: Decimal  # SVC05; 1 when absent
    # SVC06/07: what was billed, when the payer re-coded or bundled it (the procedure above is what was paid).
    original_procedure_qualifier: str
    original_procedure_code: str
    original_modifiers: list[str]
    original_units: Decimal | None
    service_date: date | None  # DTM*472
    service_period_start: date | None  # DTM*150
    service_period_end: date | None  # DTM*151
    adjustments: list[Adjustment]
    line_item_control_number: str | None  # REF*6R: the REF*6R we sent in the 837
    references: dict[str, list[str]]  # every REF of the line (6R included), qualifier -> values
    allowed: Decimal | None  # AMT*B6
    amounts: dict[str, Decimal]  # every AMT of the line
    quantities: dict[str, Decimal]  # QTY
    remark_codes: list[str]  # LQ*HE (RARC)
    segment_position: int  # of the SVC
    procedure_description: str = ""  # SVC01-7

    @property
    def procedure(self) -> str:
        """E.g. 'HC:99213:25:59'."""
        return ":".join([self.procedure_qualifier, self.procedure_code, *self.modifiers])

    @property
    def recoded(self) -> bool:
        return bool(self.original_procedure_code)

    @property
    def adjustment_total(self) -> Decimal:
        return sum((adj.amount for adj in self.adjustments), _ZERO)


@dataclass(frozen=True)
class ClaimPayment:
    """One CLP (loop 2100). CLP01 is not unique: a reversal and its re-payment share it."""

    patient_control_number: str  # CLP01: our CLM01
    status_code: str  # CLP02
    status_text: str
    total_charge: Decimal  # CLP03
    paid: Decimal  # CLP04
    patient_responsibility: Decimal  # CLP05; 0 when absent
    filing_indicator: str  # CLP06
    payer_claim_number: str  # CLP07
    facility_code: str  # CLP08
    frequency: str  # CLP09
    adjustments: list[Adjustment]  # claim-level CAS
    patient: Party | None  # NM1*QC
    insured: Party | None  # NM1*IL
    corrected_insured: Party | None  # NM1*74
    crossover_payer: Party | None  # NM1*TT
    references: dict[str, list[str]]  # REF qualifier -> values (1K, F8, EA, 1L, CE...)
    statement_from: date | None  # DTM*232
    statement_to: date | None  # DTM*233
    received_date: date | None  # DTM*050
    amounts: dict[str, Decimal]  # AMT qualifier -> amount (AU coverage amount, ...)
    lines: list[ServicePayment]
    segment_position: int  # of the CLP
    remark_codes: list[str] = field(default_factory=list)  # MIA05/20-23 and MOA03-07
    # NM1*PR: corrected priority payer, which some payers use to name the crossover payer.
    corrected_priority_payer: Party | None = None
    rendering_provider: Party | None = None  # NM1*82
    other_subscriber: Party | None = None  # NM1*GB
    dates: dict[str, date] = field(default_factory=dict)  # every DTM of the claim, qualifier -> date
    quantities: dict[str, Decimal] = field(default_factory=dict)  # QTY
    header_number: str | None = None  # LX01 of the group the claim is in

    @property
    def is_reversal(self) -> bool:
        return self.status_code == "22"

    @property
    def is_denied(self) -> bool:
        return self.status_code == "4"

    @property
    def adjustment_total(self) -> Decimal:
        """Claim-level plus line-level CAS amounts: CLP03 - CLP04 when the claim balances."""
        claim = sum((adj.amount for adj in self.adjustments), _ZERO)
        return claim + sum((line.adjustment_total for line in self.lines), _ZERO)


@dataclass(frozen=True)
class Remittance:
    """One ST*835: one payment (or notification) to one payee."""

    sender_id: str  # ISA06 ('' for ST-only data)
    receiver_id: str  # ISA08
    interchange_control_number: str  # ISA13
    control_number: str  # ST02
    handling_code: str  # BPR01: I payment with remittance, H notification only, C/D/P/U/X
    total_payment: Decimal  # BPR02; may be 0 or negative
    credit_debit: str  # BPR03: C or D
    payment_method: str  # BPR04: ACH, CHK, NON, FWT, BOP
    payment_date: date | None  # BPR16
    trace_number: str  # TRN02: check or EFT trace number
    payer_identifier: str  # TRN03
    payer_name: str
    payer_id: str  # REF*2U of the payer, else N104
    payee_name: str
    payee_npi: str | None  # N1*PE*..*XX
    payee_tax_id: str | None  # N1*PE*..*FI, else REF*TJ
    production_date: date | None  # DTM*405
    claims: list[ClaimPayment]
    provider_adjustments: list[ProviderAdjustment]
    segment_position: int  # of the ST
    warnings: list[str]
    content_key: str  # SHA-256 of the normalised ST..SE
    implementation_ref: str = ""  # ST03
    references: dict[str, list[str]] = field(default_factory=dict)  # header REF (EV receiver id, F2 version)
    payer_references: dict[str, list[str]] = field(default_factory=dict)
    payee_references: dict[str, list[str]] = field(default_factory=dict)

    @property
    def claims_paid(self) -> Decimal:
        return sum((claim.paid for claim in self.claims), _ZERO)

    @property
    def provider_adjustment_total(self) -> Decimal:
        return sum((adj.amount for adj in self.provider_adjustments), _ZERO)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def content_key(segments: Iterable[Segment]) -> str:
    """SHA-256 over segments as the reader split them, independent of the file's delimiters.

    Each element is split on the repetition and component separators and serialised as JSON, so the same set written
    with '*'/':' or '|'/'>' hashes the same; trailing empty elements and components are dropped (a trailing '*'
    carries nothing). Envelope segments outside ST..SE are not part of it, so re-sent sets keep their key.
    """
    canonical: list[list[list[list[str]]]] = []
    for seg in segments:
        d = seg.delimiters
        elements: list[list[list[str]]] = []
        for value in _trim(seg.elements):
            reps = value.split(d.repetition) if d.repetition else [value]
            elements.append([_trim(rep.split(d.component)) for rep in reps])
        canonical.append(elements)
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _trim(values: list[str]) -> list[str]:
    end = len(values)
    while end > 1 and not values[end - 1]:
        end -= 1
    return values[:end]


def _money(value: Decimal) -> str:
    # Cents for the usual amounts ('150.00'); more places are shown as sent rather than rounded away.
    return f"{value:.2f}" if value == value.quantize(_CENT) else f"{value:f}"


def _add_reference(refs: dict[str, list[str]], seg: Segment) -> None:
    qualifier = seg.el(1).strip()
    if qualifier:
        refs.setdefault(qualifier, []).append(seg.el(2).strip())


def _party(seg: Segment) -> Party:
    return Party(
        entity_code=seg.el(1).strip(),
        entity_type=seg.el(2).strip(),
        name=seg.el(3).strip(),
        first_name=seg.el(4).strip(),
        middle_name=seg.el(5).strip(),
        suffix=seg.el(7).strip(),
        id_qualifier=seg.el(8).strip(),
        identifier=seg.el(9).strip(),
    )


def _procedure(seg: Segment, n: int) -> tuple[str, str, list[str], str]:
    parts = [part.strip() for part in seg.components(n)]
    parts += [""] * (7 - len(parts))
    return parts[0], parts[1], [m for m in parts[2:6] if m], parts[6]


class _Failure:
    """A balancing failure: the segment to blame and the sentence naming it and its figures."""

    def __init__(self, seg: Segment, message: str) -> None:
        self.seg, self.message = seg, message


# ---------------------------------------------------------------------------------------------------------------
# builders (mutable while their loop is open)


@dataclass
class _Line:
    seg: Segment
    charge: Decimal
    paid: Decimal
    units: Decimal
    original_units: Decimal | None
    adjustments: list[Adjustment] = field(default_factory=list)
    references: dict[str, list[str]] = field(default_factory=dict)
    amounts: dict[str, Decimal] = field(default_factory=dict)
    quantities: dict[str, Decimal] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)
    remark_codes: list[str] = field(default_factory=list)

    def build(self) -> ServicePayment:
        seg = self.seg
        qualifier, code, modifiers, description = _procedure(seg, 1)
        original_qualifier, original_code, original_modifiers, _ = _procedure(seg, 6)
        line_ids = self.references.get("6R")
        return ServicePayment(
            procedure_qualifier=qualifier,
            procedure_code=code,
            modifiers=modifiers,
            charge=self.charge,
            paid=self.paid,
            revenue_code=seg.el(4).strip(),
            units=self.units,
            original_procedure_qualifier=original_qualifier,
            original_procedure_code=original_code,
            original_modifiers=original_modifiers,
            original_units=self.original_units,
            service_date=self.dates.get("472"),
            service_period_start=self.dates.get("150"),
            service_period_end=self.dates.get("151"),
            adjustments=self.adjustments,
            line_item_control_number=line_ids[0] if line_ids else None,
            references=self.references,
            allowed=self.amounts.get("B6"),
            amounts=self.amounts,
            quantities=self.quantities,
            remark_codes=self.remark_codes,
            segment_position=seg.position,
            procedure_description=description,
        )


@dataclass
class _Claim:
    seg: Segment
    charge: Decimal
    paid: Decimal
    patient_responsibility: Decimal
    header_number: str | None
    adjustments: list[Adjustment] = field(default_factory=list)
    parties: dict[str, Party] = field(default_factory=dict)
    references: dict[str, list[str]] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)
    amounts: dict[str, Decimal] = field(default_factory=dict)
    quantities: dict[str, Decimal] = field(default_factory=dict)
    remark_codes: list[str] = field(default_factory=list)
    lines: list[ServicePayment] = field(default_factory=list)
    line: _Line | None = None

    def build(self) -> ClaimPayment:
        seg, parties = self.seg, self.parties
        return ClaimPayment(
            patient_control_number=seg.el(1).strip(),
            status_code=seg.el(2).strip(),
            status_text=describe(CLAIM_STATUSES, seg.el(2)),
            total_charge=self.charge,
            paid=self.paid,
            patient_responsibility=self.patient_responsibility,
            filing_indicator=seg.el(6).strip(),
            payer_claim_number=seg.el(7).strip(),
            facility_code=seg.el(8).strip(),
            frequency=seg.el(9).strip(),
            adjustments=self.adjustments,
            patient=parties.get("QC"),
            insured=parties.get("IL"),
            corrected_insured=parties.get("74"),
            crossover_payer=parties.get("TT"),
            references=self.references,
            statement_from=self.dates.get("232"),
            statement_to=self.dates.get("233"),
            received_date=self.dates.get("050"),
            amounts=self.amounts,
            lines=self.lines,
            segment_position=seg.position,
            remark_codes=self.remark_codes,
            corrected_priority_payer=parties.get("PR"),
            rendering_provider=parties.get("82"),
            other_subscriber=parties.get("GB"),
            dates=self.dates,
            quantities=self.quantities,
            header_number=self.header_number,
        )


# ---------------------------------------------------------------------------------------------------------------
# one transaction set


class _RemitReader:
    def __init__(self, interchange: Interchange, ts: TransactionSet, warnings: list[str]) -> None:
        self.interchange, self.ts, self.warnings = interchange, ts, warnings
        self.failures: list[_Failure] = []
        self.bpr: Segment | None = None
        self.trn: Segment | None = None
        self.payer: Segment | None = None
        self.payee: Segment | None = None
        self.section = "header"  # header, payer, payee, lx, claim, line, summary
        self.production_date: date | None = None
        self.references: dict[str, list[str]] = {}
        self.payer_references: dict[str, list[str]] = {}
        self.payee_references: dict[str, list[str]] = {}
        self.header_number: str | None = None
        self.claim: _Claim | None = None
        self.claims: list[ClaimPayment] = []
        self.provider_adjustments: list[ProviderAdjustment] = []
        self._handlers = {
            "BPR": self._bpr,
            "TRN": self._trn,
            "N1": self._n1,
            "LX": self._lx,
            "CLP": self._clp,
            "SVC": self._svc,
            "CAS": self._cas,
            "NM1": self._nm1,
            "MIA": self._mia,
            "MOA": self._moa,
            "REF": self._ref,
            "DTM": self._dtm,
            "AMT": self._amt,
            "QTY": self._qty,
            "LQ": self._lq,
            "PLB": self._plb,
        }

    # -- small tools ---------------------------------------------------------------------------------------------

    def _warn(self, seg: Segment, message: str, element: int | None = None) -> None:
        self.warnings.append(str(X12Error.at(seg, message, element)))

    def _date(self, seg: Segment, n: int) -> date | None:
        value = seg.el(n).strip()
        if not value:
            return None
        try:
            return parse_date(value, seg, n)
        except X12Error as exc:  # an impossible date is reported, the rest of the segment is kept
            self.warnings.append(str(exc))
            return None

    def _required_amount(self, seg: Segment, n: int, what: str, owner: str) -> Decimal:
        value = seg.amount(n)
        if value is None:
            # Without the amount the entity cannot balance: it is reported with the balancing failures.
            self.failures.append(
                _Failure(seg, f"{owner} at segment {seg.position} ({seg.id}): {seg.id}{n:02d} ({what}) is empty")
            )
            return _ZERO
        return value

    # -- driver --------------------------------------------------------------------------------------------------

    def read(self) -> Remittance:
        ts = self.ts
        body = ts.body
        if not body or body[0].id != "BPR":
            raise X12Error.at(body[0] if body else ts.trailer, "835 has no BPR (financial information) after ST")
        for seg in body:
            self._segment(seg)
        self._close_claim()
        self._require_header(ts.trailer, "SE")
        return self._build()

    def _segment(self, seg: Segment) -> None:
        handler = self._handlers.get(seg.id)
        if handler is not None:
            handler(seg)
        elif seg.id not in _IGNORED:
            self._warn(seg, "segment not expected in an 835; ignored")

    def _require_header(self, seg: Segment, what: str) -> None:
        if self.trn is None:
            raise X12Error.at(seg, f"{what} before the 835 header is complete: no TRN (reassociation trace number)")
        if self.payer is None:
            raise X12Error.at(seg, f"{what} before the 835 header is complete: no payer identification (N1*PR)")
        if self.payee is None:
            raise X12Error.at(seg, f"{what} before the 835 header is complete: no payee identification (N1*PE)")

    def _close_line(self) -> None:
        claim = self.claim
        if claim is None or claim.line is None:
            return
        line = claim.line
        claim.line = None
        built = line.build()
        adjusted = built.adjustment_total
        if line.charge != line.paid + adjusted:
            self.failures.append(
                _Failure(
                    line.seg,
                    f"line {built.procedure} of claim {claim.seg.el(1).strip()} at segment {line.seg.position} (SVC): "
                    f"charge {_money(line.charge)} ≠ paid {_money(line.paid)} + adjustments {_money(adjusted)}",
                )
            )
        claim.lines.append(built)

    def _close_claim(self) -> None:
        self._close_line()
        claim = self.claim
        if claim is None:
            return
        self.claim = None
        built = claim.build()
        # Without SVC lines only the claim-level CAS count; adjustment_total sums both levels.
        adjusted = built.adjustment_total
        if claim.charge != claim.paid + adjusted:
            self.failures.append(
                _Failure(
                    claim.seg,
                    f"claim {built.patient_control_number} at segment {claim.seg.position} (CLP): "
                    f"charge {_money(claim.charge)} ≠ paid {_money(claim.paid)} + adjustments {_money(adjusted)}",
                )
            )
        self.claims.append(built)

    def _build(self) -> Remittance:
        ts, bpr, trn, payer, payee = self.ts, self.bpr, self.trn, self.payer, self.payee
        assert bpr is not None and trn is not None and payer is not None and payee is not None
        total = self._required_amount(bpr, 2, "total payment", f"transaction set {ts.control_number}")
        claims_paid = sum((claim.paid for claim in self.claims), _ZERO)
        provider_total = sum((adj.amount for adj in self.provider_adjustments), _ZERO)
        if total != claims_paid - provider_total:
            self.failures.append(
                _Failure(
                    bpr,
                    f"transaction set {ts.control_number} at segment {bpr.position} (BPR): "
                    f"total payment {_money(total)} ≠ claims paid {_money(claims_paid)} "
                    f"- provider adjustments {_money(provider_total)}",
                )
            )
        payer_ids = self.payer_references.get("2U")
        payee_qualifier, payee_id = payee.el(3).strip(), payee.el(4).strip()
        tax_ids = self.payee_references.get("TJ")
        interchange = self.interchange
        return Remittance(
            sender_id=interchange.sender_id,
            receiver_id=interchange.receiver_id,
            interchange_control_number=interchange.control_number,
            control_number=ts.control_number.strip(),
            handling_code=bpr.el(1).strip(),
            total_payment=total,
            credit_debit=bpr.el(3).strip(),
            payment_method=bpr.el(4).strip(),
            payment_date=self._date(bpr, 16),
            trace_number=trn.el(2).strip(),
            payer_identifier=trn.el(3).strip(),
            payer_name=payer.el(2).strip(),
            payer_id=payer_ids[0] if payer_ids else payer.el(4).strip(),
            payee_name=payee.el(2).strip(),
            payee_npi=payee_id if payee_qualifier == "XX" and payee_id else None,
            payee_tax_id=payee_id if payee_qualifier == "FI" and payee_id else (tax_ids[0] if tax_ids else None),
            production_date=self.production_date,
            claims=self.claims,
            provider_adjustments=self.provider_adjustments,
            segment_position=ts.header.position,
            warnings=self.warnings,
            content_key=content_key(ts.segments),
            implementation_ref=ts.implementation_ref.strip(),
            references=self.references,
            payer_references=self.payer_references,
            payee_references=self.payee_references,
        )

    # -- header --------------------------------------------------------------------------------------------------

    def _bpr(self, seg: Segment) -> None:
        if self.bpr is not None:
            raise X12Error.at(seg, f"second BPR in the transaction set (the first is at segment {self.bpr.position})")
        self.bpr = seg
        if not seg.el(2).strip():
            raise X12Error.at(seg, "BPR02 (total payment) is missing", 2)
        seg.amount(2)  # a non-numeric total is a structure error, raised here with its position
        if seg.el(1).strip() not in _HANDLING_CODES:
            self._warn(seg, f"unknown transaction handling code {seg.el(1)!r}", 1)
        if seg.el(4).strip() not in _PAYMENT_METHODS:
            self._warn(seg, f"unknown payment method {seg.el(4)!r} (ACH, BOP, CHK, FWT, NON)", 4)

    def _trn(self, seg: Segment) -> None:
        if self.section != "header":
            self._warn(seg, "TRN outside the 835 header; ignored")
            return
        if self.trn is not None:
            self._warn(seg, f"second TRN in the header (the first is at segment {self.trn.position}); ignored")
            return
        if not seg.el(2).strip():
            raise X12Error.at(seg, "TRN02 (check or EFT trace number) is missing", 2)
        self.trn = seg

    def _n1(self, seg: Segment) -> None:
        qualifier = seg.el(1).strip()
        if self.section not in ("header", "payer", "payee") or qualifier not in ("PR", "PE"):
            self._warn(seg, f"N1*{qualifier} not expected here; ignored")
            return
        if self.trn is None:
            raise X12Error.at(seg, "N1 before the TRN (reassociation trace number): the 835 header has no TRN")
        if qualifier == "PR":
            self.payer, self.section = seg, "payer"
        else:
            self.payee, self.section = seg, "payee"

    # -- claims and lines ----------------------------------------------------------------------------------------

    def _lx(self, seg: Segment) -> None:
        if self.section == "summary":
            raise X12Error.at(seg, "LX after PLB (provider adjustments close the transaction set)")
        self._require_header(seg, "LX")
        self._close_claim()
        self.header_number = seg.el(1).strip() or None
        self.section = "lx"

    def _clp(self, seg: Segment) -> None:
        if self.section == "summary":
            raise X12Error.at(seg, "CLP after PLB (provider adjustments close the transaction set)")
        self._require_header(seg, "CLP")
        self._close_claim()
        pcn = seg.el(1).strip()
        if not pcn:
            raise X12Error.at(seg, "CLP01 (patient control number) is missing", 1)
        if not seg.el(2).strip():
            raise X12Error.at(seg, "CLP02 (claim status) is missing", 2)
        if seg.el(2).strip() not in CLAIM_STATUSES:
            self._warn(seg, f"unknown claim status code {seg.el(2)!r}", 2)
        owner = f"claim {pcn}"
        self.claim = _Claim(
            seg=seg,
            charge=self._required_amount(seg, 3, "total charge", owner),
            paid=self._required_amount(seg, 4, "payment", owner),
            patient_responsibility=seg.amount(5) or _ZERO,
            header_number=self.header_number,
        )
        self.section = "claim"

    def _svc(self, seg: Segment) -> None:
        claim = self.claim
        if claim is None or self.section not in ("claim", "line"):
            raise X12Error.at(seg, "SVC outside a claim (no CLP before it)")
        self._close_line()
        qualifier, code, _, _ = _procedure(seg, 1)
        if not qualifier or not code:
            raise X12Error.at(seg, f"SVC01 (procedure) needs a qualifier and a code: {seg.el(1)!r}", 1)
        if seg.element_count > 7:
            self._warn(seg, f"SVC has {seg.element_count} elements, at most 7 are defined; the rest is ignored")
        owner = f"line {seg.el(1).strip()} of claim {claim.seg.el(1).strip()}"
        claim.line = _Line(
            seg=seg,
            charge=self._required_amount(seg, 2, "line charge", owner),
            paid=self._required_amount(seg, 3, "line payment", owner),
            units=seg.amount(5) if seg.el(5).strip() else Decimal(1),  # the TR3 default when SVC05 is absent
            original_units=seg.amount(7),
        )
        self.section = "line"

    def _cas(self, seg: Segment) -> None:
        claim = self.claim
        if claim is None or self.section not in ("claim", "line"):
            raise X12Error.at(seg, "CAS outside a claim (no CLP before it)")
        group = seg.el(1).strip()
        if not group:
            raise X12Error.at(seg, "CAS01 (adjustment group) is missing", 1)
        if group not in ADJUSTMENT_GROUPS:
            self._warn(seg, f"unknown claim adjustment group code {group!r}", 1)
        if seg.element_count > 1 + 3 * _MAX_CAS_TRIPLETS:
            raise X12Error.at(
                seg, f"CAS has {seg.element_count} elements: at most {_MAX_CAS_TRIPLETS} reason triplets fit in one CAS"
            )
        adjustments: list[Adjustment] = []
        for k in range(_MAX_CAS_TRIPLETS):
            r, a, q = 2 + 3 * k, 3 + 3 * k, 4 + 3 * k
            reason, amount, quantity = seg.el(r).strip(), seg.el(a).strip(), seg.el(q).strip()
            if not reason:
                if amount or quantity:
                    raise X12Error.at(seg, f"adjustment amount or quantity without a reason code (triplet {k + 1})", r)
                continue
            if not amount:
                raise X12Error.at(seg, f"adjustment reason {reason!r} has no amount (incomplete triplet {k + 1})", a)
            adjustments.append(
                Adjustment(
                    group=group,
                    reason=reason,
                    amount=seg.amount(a) or _ZERO,
                    quantity=seg.amount(q),
                    segment_position=seg.position,
                )
            )
        if not adjustments:
            raise X12Error.at(seg, "CAS has no adjustment (reason code and amount)", 2)
        target = claim.line.adjustments if claim.line is not None else claim.adjustments
        target.extend(adjustments)

    def _nm1(self, seg: Segment) -> None:
        claim = self.claim
        if claim is None or self.section != "claim":
            self._warn(seg, "NM1 outside the claim loop (2100); ignored")
            return
        entity = seg.el(1).strip()
        if entity not in ("QC", "IL", "74", "82", "TT", "PR", "GB"):
            self._warn(seg, f"unknown claim party NM1*{entity}; ignored", 1)
        elif entity in claim.parties:
            self._warn(seg, f"second NM1*{entity} in the claim; the first is kept")
        else:
            claim.parties[entity] = _party(seg)

    def _mia(self, seg: Segment) -> None:
        self._remarks(seg, (5, 20, 21, 22, 23))

    def _moa(self, seg: Segment) -> None:
        self._remarks(seg, (3, 4, 5, 6, 7))

    def _remarks(self, seg: Segment, elements: tuple[int, ...]) -> None:
        claim = self.claim
        if claim is None or self.section != "claim":
            self._warn(seg, f"{seg.id} outside the claim loop (2100); ignored")
            return
        claim.remark_codes.extend(code for n in elements if (code := seg.el(n).strip()))

    def _ref(self, seg: Segment) -> None:
        target = {
            "header": self.references,
            "payer": self.payer_references,
            "payee": self.payee_references,
        }.get(self.section)
        if target is None:
            target = self._loop_target(seg, "references")
        if target is not None:
            _add_reference(target, seg)

    def _loop_target(self, seg: Segment, attribute: str) -> dict | None:
        """The dict of the open line, else of the open claim, for REF/AMT/QTY/DTM; None (and a warning) elsewhere."""
        claim = self.claim
        if claim is None or self.section not in ("claim", "line"):
            self._warn(seg, f"{seg.id} outside a claim or service line; ignored")
            return None
        owner: _Claim | _Line = claim.line if claim.line is not None else claim
        return getattr(owner, attribute)

    def _dtm(self, seg: Segment) -> None:
        qualifier = seg.el(1).strip()
        if self.section in ("header", "payer", "payee"):
            if qualifier == "405":
                self.production_date = self._date(seg, 2)
            return
        target = self._loop_target(seg, "dates")
        value = self._date(seg, 2)
        if target is not None and value is not None:
            target[qualifier] = value

    def _amt(self, seg: Segment) -> None:
        target = self._loop_target(seg, "amounts")
        if target is None:
            return
        qualifier = seg.el(1).strip()
        if not seg.el(2).strip():
            raise X12Error.at(seg, "AMT02 (amount) is missing", 2)
        if qualifier in target:
            self._warn(seg, f"second AMT*{qualifier} in the same loop; the first is kept", 1)
            return
        target[qualifier] = seg.amount(2)

    def _qty(self, seg: Segment) -> None:
        target = self._loop_target(seg, "quantities")
        if target is None:
            return
        if not seg.el(2).strip():
            raise X12Error.at(seg, "QTY02 (quantity) is missing", 2)
        target.setdefault(seg.el(1).strip(), seg.amount(2))

    def _lq(self, seg: Segment) -> None:
        claim = self.claim
        if claim is None or claim.line is None or self.section != "line":
            self._warn(seg, "LQ outside a service line (2110); ignored")
            return
        # HE carries remittance advice remark codes; RX (NCPDP reject codes) does not belong in remark_codes.
        if seg.el(1).strip() == "HE" and seg.el(2).strip():
            claim.line.remark_codes.append(seg.el(2).strip())

    # -- summary -------------------------------------------------------------------------------------------------

    def _plb(self, seg: Segment) -> None:
        self._require_header(seg, "PLB")
        self._close_claim()
        self.section = "summary"
        if seg.element_count > 2 + 2 * _MAX_PLB_PAIRS:
            raise X12Error.at(
                seg, f"PLB has {seg.element_count} elements: at most {_MAX_PLB_PAIRS} adjustment pairs fit in one PLB"
            )
        provider_id = seg.el(1).strip()
        if not provider_id:
            self._warn(seg, "PLB01 (provider identifier) is missing", 1)
        fiscal_date = self._date(seg, 2)
        found = 0
        for k in range(_MAX_PLB_PAIRS):
            c, a = 3 + 2 * k, 4 + 2 * k
            composite, amount = seg.el(c).strip(), seg.el(a).strip()
            if not composite and not amount:
                continue
            if not amount:
                raise X12Error.at(seg, f"provider adjustment {composite!r} has no amount (pair {k + 1})", a)
            reason = seg.component(c, 1).strip()
            if not reason:
                raise X12Error.at(seg, f"provider adjustment amount without a reason code (pair {k + 1})", c)
            found += 1
            self.provider_adjustments.append(
                ProviderAdjustment(
                    provider_id=provider_id,
                    fiscal_period_date=fiscal_date,
                    reason=reason,
                    reference=seg.component(c, 2).strip() or None,
                    amount=seg.amount(a) or _ZERO,
                    pair=k + 1,
                    segment_position=seg.position,
                )
            )
        if not found:
            raise X12Error.at(seg, "PLB has no adjustment (reason code and amount)", 3)


# ---------------------------------------------------------------------------------------------------------------
# entry point


def _envelope_warnings(interchange: Interchange, ts: TransactionSet) -> list[str]:
    """The interchange's tolerated trailer defects that concern this set: its own SE, and the group/interchange's."""
    first, last = ts.header.position, ts.trailer.position
    own = []
    for warning in interchange.warnings:
        position = warning.segment_position
        is_set_trailer = warning.segment_id == "SE"
        if not is_set_trailer or position is None or first <= position <= last:
            own.append(str(warning))
    return own


def parse_835(data: bytes | str, *, strict_balancing: bool = True, check_counts: bool = True) -> list[Remittance]:
    """Every ST*835 in `data`, in file order; X12Error (and nothing returned) if any part is malformed.

    `strict_balancing=False` turns balancing failures into `Remittance.warnings`; `check_counts=False` tolerates
    wrong SE01/GE01/IEA01 counts (kept as warnings too). Control-number mismatches are always warnings: masked
    sample files and some payers alter them around intact content.
    """
    remittances: list[Remittance] = []
    failures: list[_Failure] = []
    for interchange, ts in transaction_sets(data, "835", check_counts=check_counts):
        reader = _RemitReader(interchange, ts, _envelope_warnings(interchange, ts))
        remittance = reader.read()
        # Lines are checked before the claim that holds them; report in file order instead.
        set_failures = sorted(reader.failures, key=lambda failure: failure.seg.position)
        if strict_balancing:
            failures.extend(set_failures)
        else:
            remittance.warnings.extend(failure.message for failure in set_failures)
        remittances.append(remittance)
    if failures:
        first = failures[0].seg
        listing = "; ".join(failure.message for failure in failures)
        raise X12Error.at(first, f"835 does not balance ({len(failures)} failure(s)): {listing}")
    if not remittances:
        raise X12Error("no 835 transaction set in the data")
    return remittances
