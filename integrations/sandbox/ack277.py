"""The 277CA claim acknowledgment (005010X214): which claims of an accepted 837 made it into the payer's system.

Owns:
- the front-end claim edits a clearinghouse/payer applies before adjudication (``claim_edits``): unknown member id
  (A7:33:IL), birth date in the future (A7:158:IL or QC), NPI check digit of the billing (A7:562:85) or rendering
  (A7:562:82) provider, date of service in the future (A7:187, claim and line), each configurable per payer;
- ``npi_valid``: the NPI Luhn check (prefix 80840 + first 9 digits);
- ``build_277ca``: HL 20 payer -> HL 21 submitter -> HL 19 billing provider -> HL PT claim, with TRN*2 = CLM01,
  STC, REF*1K (payer claim number, accepted claims only), REF*D9 (clearinghouse trace), DTP*472, and 2220D
  SVC/STC/REF*FJ/DTP loops for the lines at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from .config import PayerBehaviour
from .edi import Interchange, X12Out, envelope
from .model837 import Batch, Claim, Line, Party
from .state import SandboxState

__all__ = ["ClaimAck", "ClaimStatus", "TxnAck", "build_277ca", "claim_edits", "npi_valid"]


def npi_valid(npi: str) -> bool:
    """10 digits whose last is the Luhn check digit of '80840' + the first nine (the NPI standard)."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    total = 0
    # Walk right to left over the prefixed payload; the check digit's neighbour is doubled first.
    for i, ch in enumerate(reversed("80840" + npi[:9])):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


@dataclass
class ClaimStatus:
    category: str
    code: str
    entity: str
    message: str
    line: Line | None = None

    def composite(self) -> tuple[str, ...]:
        return (self.category, self.code, self.entity)


@dataclass
class ClaimAck:
    claim: Claim
    statuses: list[ClaimStatus] = field(default_factory=list)  # empty: accepted
    payer_claim_number: str = ""
    trace: str = ""  # REF*D9

    @property
    def accepted(self) -> bool:
        return not self.statuses


@dataclass
class TxnAck:
    interchange: Interchange
    batch: Batch
    claims: list[ClaimAck]


def claim_edits(claim: Claim, behaviour: PayerBehaviour, today: date) -> list[ClaimStatus]:
    """The reasons this claim is rejected before adjudication (empty list: accepted)."""
    out: list[ClaimStatus] = []
    if behaviour.member_unknown(claim.member_id):
        out.append(ClaimStatus("A7", "33", "IL", f"SUBSCRIBER ID {claim.member_id} NOT FOUND"))
    sub_dob = claim.subscriber.birth_date
    if sub_dob and sub_dob > today:
        out.append(ClaimStatus("A7", "158", "IL", f"SUBSCRIBER DATE OF BIRTH {claim.subscriber.birth_date_text}"))
    pat_dob = claim.patient.birth_date
    if claim.is_dependent and pat_dob and pat_dob > today:
        out.append(ClaimStatus("A7", "158", "QC", f"PATIENT DATE OF BIRTH {claim.patient.birth_date_text}"))
    if behaviour.check_npi:
        if _bad_npi(claim.billing):
            out.append(ClaimStatus("A7", "562", "85", f"BILLING PROVIDER NPI {claim.billing.id} INVALID"))
        if claim.rendering is not None and _bad_npi(claim.rendering):
            out.append(ClaimStatus("A7", "562", "82", f"RENDERING PROVIDER NPI {claim.rendering.id} INVALID"))
    line_faults: list[ClaimStatus] = []
    for ln in claim.lines:
        if behaviour.check_npi and ln.rendering is not None and _bad_npi(ln.rendering):
            line_faults.append(ClaimStatus("A7", "562", "82", f"LINE {ln.number} RENDERING NPI INVALID", ln))
        if behaviour.reject_future_dates and any(d and d > today for d in (ln.date_from, ln.date_to)):
            line_faults.append(ClaimStatus("A7", "187", "", f"LINE {ln.number} DATE OF SERVICE IN THE FUTURE", ln))
    if line_faults:
        # The claim is what gets rejected; say why at claim level too, then detail the lines.
        seen = {(s.category, s.code, s.entity) for s in out}
        for fault in line_faults:
            key = (fault.category, fault.code, fault.entity)
            if key not in seen:
                seen.add(key)
                out.append(ClaimStatus(*key, fault.message))
        out.extend(line_faults)
    return out


def _bad_npi(party: Party) -> bool:
    return party.id_qualifier == "XX" and not npi_valid(party.id)


def _amount(claim: Claim) -> Decimal:
    if claim.charge is not None:
        return claim.charge
    return sum((ln.charge for ln in claim.lines if ln.charge is not None), Decimal("0"))


def _name(body: X12Out, entity: str, party: Party, qualifier: str, ident: str) -> None:
    person = party.entity_type == "1"
    body.seg(
        "NM1",
        entity,
        "1" if person else "2",
        party.last or "UNKNOWN",
        party.first if person else "",
        party.middle if person else "",
        "",
        "",
        qualifier,
        ident,
    )


def _dates(claim: Claim, fallback: date) -> tuple[str, str]:
    start, end = claim.service_dates
    start = start or fallback
    end = end or start
    if start == end:
        return "D8", start.strftime("%Y%m%d")
    return "RD8", f"{start:%Y%m%d}-{end:%Y%m%d}"


def _status_segments(body: X12Out, statuses: list[ClaimStatus], today: str, amount: Decimal) -> None:
    # Up to three statuses per STC (STC01, STC10, STC11); more go in further STC segments.
    for i in range(0, len(statuses), 3):
        chunk = statuses[i : i + 3]
        extra = [s.composite() for s in chunk[1:]]
        message = "; ".join(s.message for s in chunk)[:264]
        body.seg("STC", chunk[0].composite(), today, "U", amount, "", "", "", "", "", *(extra + [""] * 2)[:2], message)


def _counts(body: X12Out, acks: list[ClaimAck], accepted_qty: str, rejected_qty: str) -> None:
    accepted = [a for a in acks if a.accepted]
    rejected = [a for a in acks if not a.accepted]
    if accepted:
        body.seg("QTY", accepted_qty, str(len(accepted)))
    if rejected:
        body.seg("QTY", rejected_qty, str(len(rejected)))
    if accepted:
        body.seg("AMT", "YU", sum((_amount(a.claim) for a in accepted), Decimal("0")))
    if rejected:
        body.seg("AMT", "YY", sum((_amount(a.claim) for a in rejected), Decimal("0")))


def _transaction(txn: TxnAck, *, now: datetime, received: date, batch_trace: str) -> X12Out:
    today = now.strftime("%Y%m%d")
    body = X12Out()
    body.seg("BHT", "0085", "08", batch_trace, today, now.strftime("%H%M%S"), "TH")
    by_payer: dict[tuple[str, str], list[ClaimAck]] = {}
    for ack in txn.claims:
        by_payer.setdefault((ack.claim.payer.id, ack.claim.payer.last), []).append(ack)
    hl = 0
    for (payer_id, payer_name), acks in by_payer.items():
        hl += 1
        payer_hl = hl
        body.seg("HL", str(payer_hl), "", "20", "1")
        body.seg("NM1", "PR", "2", payer_name or "UNKNOWN PAYER", "", "", "", "", "PI", payer_id or "UNKNOWN")
        body.seg("TRN", "1", batch_trace)
        body.seg("DTP", "050", "D8", received.strftime("%Y%m%d"))
        body.seg("DTP", "009", "D8", today)
        hl += 1
        receiver_hl = hl
        body.seg("HL", str(receiver_hl), str(payer_hl), "21", "1")
        sub = txn.batch.submitter
        _name(body, "41", sub, "46", sub.id or "UNKNOWN")
        body.seg("TRN", "2", txn.batch.bht03 or txn.batch.control_number)
        total = sum((_amount(a.claim) for a in acks), Decimal("0"))
        body.seg("STC", ("A1", "19", "PR"), today, "WQ", total)
        _counts(body, acks, "90", "AA")
        by_provider: dict[tuple[str, str], list[ClaimAck]] = {}
        for ack in acks:
            by_provider.setdefault((ack.claim.billing.id, ack.claim.billing.last), []).append(ack)
        for provider_acks in by_provider.values():
            hl += 1
            provider_hl = hl
            billing = provider_acks[0].claim.billing
            body.seg("HL", str(provider_hl), str(receiver_hl), "19", "1")
            qualifier = "XX" if billing.id_qualifier == "XX" else "FI"
            _name(body, "85", billing, qualifier, billing.id or billing.tax_id or "UNKNOWN")
            body.seg("TRN", "1", billing.tax_id or billing.id or "0")
            provider_total = sum((_amount(a.claim) for a in provider_acks), Decimal("0"))
            body.seg("STC", ("A1", "19", "85"), "", "WQ", provider_total)
            _counts(body, provider_acks, "QA", "QC")
            for ack in provider_acks:
                hl += 1
                _patient(body, ack, hl, provider_hl, today, received)
    return body


def _patient(body: X12Out, ack: ClaimAck, hl: int, parent: int, today: str, received: date) -> None:
    claim = ack.claim
    body.seg("HL", str(hl), str(parent), "PT")
    patient = claim.patient
    body.seg(
        "NM1", "QC", "1", patient.last or "UNKNOWN", patient.first, patient.middle, "", "", "MI",
        claim.member_id or "UNKNOWN",
    )  # fmt: skip
    body.seg("TRN", "2", claim.pcn)
    amount = _amount(claim)
    claim_level = [s for s in ack.statuses if s.line is None]
    if ack.accepted:
        body.seg("STC", ("A2", "20"), today, "WQ", amount)
        body.seg("REF", "1K", ack.payer_claim_number)
    else:
        _status_segments(body, claim_level, today, amount)
    body.seg("REF", "D9", ack.trace)
    body.seg("DTP", "472", *_dates(claim, received))
    line_statuses: dict[int, list[ClaimStatus]] = {}
    for status in ack.statuses:
        if status.line is not None:
            line_statuses.setdefault(id(status.line), []).append(status)
    for ln in claim.lines:
        statuses = line_statuses.get(id(ln))
        if not statuses:
            continue
        body.seg(
            "SVC", (ln.qualifier or "HC", ln.code, *ln.modifiers), ln.charge or Decimal("0"), "", "", "", "", ln.units
        )
        extra = [s.composite() for s in statuses[1:3]]
        body.seg("STC", statuses[0].composite(), today, "U", "", "", "", "", "", "", *(extra + [""] * 2)[:2])
        if ln.control_number:
            body.seg("REF", "FJ", ln.control_number)
        if ln.date_from:
            body.seg("DTP", "472", "D8", ln.date_from.strftime("%Y%m%d"))


def build_277ca(txns: list[TxnAck], *, state: SandboxState, now: datetime, received: date, fallback_id: str) -> str:
    """One interchange per received interchange that had accepted 837 sets; one 277CA set per accepted 837 set."""
    by_interchange: dict[int, list[TxnAck]] = {}
    for txn in txns:
        by_interchange.setdefault(id(txn.interchange), []).append(txn)
    out = []
    for group in by_interchange.values():
        ic = group[0].interchange
        gs = ic.groups[0].gs
        control = state.next("control_number")
        sets = []
        for n, txn in enumerate(group, start=1):
            trace = f"{control:09d}{n:04d}"
            sets.append(("277", _transaction(txn, now=now, received=received, batch_trace=trace)))
        out.append(
            envelope(
                sender_qualifier=ic.isa_value(7),
                sender_id=ic.isa_value(8) or fallback_id,
                receiver_qualifier=ic.isa_value(5),
                receiver_id=ic.isa_value(6),
                gs_sender=gs.get(3) or fallback_id,
                gs_receiver=gs.get(2),
                functional_id="HN",
                version="005010X214",
                control_number=control,
                when=now,
                usage=ic.isa_value(15),
                transactions=sets,
            )
        )
    return "".join(out)
