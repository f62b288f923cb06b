"""835 posting: the sandbox's real 835 for our submitted claims posts every claim to the cent, exactly once (the same
file, or the same set in another envelope, changes nothing); a reversal takes the payment back and the corrected
claim posts anew; an unknown claim is an exception while the rest posts; PLB pairs are recorded; an unbalanced 835 is
refused whole."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import claims as claim_service
from billing import ledger, submissions
from billing.claim_status import transition
from billing.edi_intake import ALL_KINDS, intake
from billing.models import (
    Claim,
    ClaimStatusChange,
    Deposit,
    InboundFile,
    LedgerEntry,
    ProviderAdjustmentEntry,
    RemittanceClaim,
)
from integrations.sandbox import SandboxConfig, process_inbox_once
from integrations.x12.remit835 import ClaimPayment, parse_835
from medbill.errors import Invalid
from tests.billing.factories import billing_practice, insured_patient, visit

BIG_VISIT = [
    {"procedure_code": "99214", "units": 1, "diagnosis_pointers": [1, 2]},
    {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2]},
    {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
    {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1]},
]


@pytest.fixture(scope="module")
def remitted(services, factory, tmp_path_factory):
    """A practice whose claims went to the sandbox, were accepted (999 + 277CA applied) and remitted (835 on disk)."""
    bp = billing_practice(services, factory)
    claim_ids = []
    with services.db.tenant_session(bp.slug) as s:
        for n in range(4):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(
                s, bp.access, visit(services, bp, patient, lines=BIG_VISIT if n % 2 else None)
            ):
                transition(s, claim, "ready", source="test")
                claim_ids.append(claim.id)
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
    root = tmp_path_factory.mktemp("sandbox-835")
    inbox = root / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=root))
    outbox = root / "acct" / "outbox"
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")):
        intake(services.db, path.read_bytes(), storage_key=f"test/{path.name}", slugs=[bp.slug])
    (era,) = sorted(outbox.glob("*.835"))
    return bp, claim_ids, era.read_text()


def _intake(services, bp, text: str):
    return intake(services.db, text.encode(), storage_key="test/era", slugs=[bp.slug], kinds=ALL_KINDS)


def _counts(services, bp) -> tuple[int, ...]:
    with services.db.tenant_session(bp.slug) as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model))
            for model in (LedgerEntry, Deposit, RemittanceClaim, InboundFile, ClaimStatusChange)
        )


def _pr(adjustments) -> Decimal:
    return sum((a.amount for a in adjustments if a.group == "PR"), Decimal(0))


def _assert_posted_as_remitted(s, clp: ClaimPayment) -> None:
    claim = s.get(Claim, int(clp.patient_control_number))
    every = [*clp.adjustments, *(a for svc in clp.lines for a in svc.adjustments)]
    balance = ledger.claim_balance(s, claim.id)
    assert balance.charges == claim.total_charge == clp.total_charge
    assert balance.payments == clp.paid
    assert balance.adjustments == sum((a.amount for a in every if a.group != "PR"), Decimal(0))
    assert balance.patient == _pr(every) == clp.patient_responsibility
    assert balance.insurance == Decimal("0.00")
    for svc in clp.lines:
        line = ledger.line_balance(s, int(svc.line_item_control_number))
        assert line.charges == svc.charge and line.payments == svc.paid
        assert line.patient == _pr(svc.adjustments)
        assert line.insurance == svc.charge - svc.paid - svc.adjustment_total == Decimal("0.00")
    expected = "denied" if clp.is_denied else "paid"
    assert claim.status == expected, (claim.status, clp)
    assert claim.payer_claim_number == clp.payer_claim_number


# --- hand-made sets from the sandbox's: split into header / claim blocks / PLB, rebuilt with new figures -----------


def _split(text: str):
    segs = [seg.strip() for seg in text.split("~") if seg.strip()]
    st = next(i for i, seg in enumerate(segs) if seg.startswith("ST*"))
    se = next(i for i, seg in enumerate(segs) if seg.startswith("SE*"))
    body = segs[st:se]
    first_clp = next(i for i, seg in enumerate(body) if seg.startswith("CLP*"))
    blocks: list[list[str]] = []
    plb: list[str] = []
    for seg in body[first_clp:]:
        if seg.startswith("CLP*"):
            blocks.append([seg])
        elif seg.startswith("PLB*"):
            plb.append(seg)
        else:
            blocks[-1].append(seg)
    return segs[:st], body[:first_clp], blocks, plb, segs[se + 1 :]


def _set_element(seg: str, n: int, value: str) -> str:
    parts = seg.split("*")
    parts[n] = value
    return "*".join(parts)


def _build(text: str, blocks: list[list[str]], *, st02: str, trace: str, plb: list[str] = ()) -> str:
    head, header, _blocks, _plb, tail = _split(text)
    paid = sum((Decimal(block[0].split("*")[4]) for block in blocks), Decimal(0))
    total = paid - sum((Decimal(seg.split("*")[4]) for seg in plb), Decimal(0))
    new_header = []
    for seg in header:
        if seg.startswith("ST*"):
            seg = _set_element(seg, 2, st02)
        elif seg.startswith("BPR*"):
            seg = _set_element(seg, 2, f"{total:.2f}")
        elif seg.startswith("TRN*"):
            seg = _set_element(seg, 2, trace)
        new_header.append(seg)
    body = new_header + [seg for block in blocks for seg in block] + list(plb)
    segs = head + body + [f"SE*{len(body) + 1}*{st02}"] + tail
    return "~\n".join(segs) + "~\n"


def _negate(value: str) -> str:
    amount = -Decimal(value)
    return f"{amount:.2f}" if amount else value


def _reversal_of(block: list[str]) -> list[str]:
    out = []
    for seg in block:
        parts = seg.split("*")
        if parts[0] == "CLP":
            parts[2] = "22"
            parts[3:6] = [_negate(v) if v else v for v in parts[3:6]]
        elif parts[0] == "SVC":
            parts[2:4] = [_negate(v) for v in parts[2:4]]
        elif parts[0] == "CAS":
            for k in range(3, len(parts), 3):
                parts[k] = _negate(parts[k]) if parts[k] else parts[k]
        elif parts[0] == "AMT":
            parts[2] = _negate(parts[2])
        out.append("*".join(parts))
    return out


# --- the tests --------------------------------------------------------------------------------------------------------


def test_every_claim_of_the_sandbox_835_posts_to_the_cent(services, remitted):
    bp, claim_ids, text = remitted
    (remittance,) = parse_835(text)
    assert sorted(int(c.patient_control_number) for c in remittance.claims) == sorted(claim_ids)
    report = _intake(services, bp, text)
    assert report.unmatched == [] and report.duplicates == []
    (applied,) = report.applied
    assert applied["practice"] == bp.slug and applied["exceptions"] == []
    assert applied["claims_posted"] == len(claim_ids)
    assert Decimal(applied["total_paid"]) == remittance.claims_paid
    with services.db.tenant_session(bp.slug) as s:
        deposit = s.get(Deposit, applied["deposit_id"])
        assert deposit.amount == remittance.total_payment and deposit.trace_number == remittance.trace_number
        assert deposit.payee_npi == remittance.payee_npi and deposit.payment_method == remittance.payment_method
        outcomes = s.scalars(select(RemittanceClaim.outcome).where(RemittanceClaim.deposit_id == deposit.id)).all()
        assert outcomes == ["posted"] * len(claim_ids)
        for clp in remittance.claims:
            _assert_posted_as_remitted(s, clp)
            last = s.scalar(
                select(ClaimStatusChange)
                .where(ClaimStatusChange.claim_id == int(clp.patient_control_number))
                .order_by(ClaimStatusChange.id.desc())
                .limit(1)
            )
            assert last.source == "835" and clp.payer_claim_number in last.reason
        # Each CAS kept its group and reason; PR deductible/coinsurance/copay moved to the patient.
        kinds = set(s.execute(select(LedgerEntry.kind, LedgerEntry.group_code, LedgerEntry.reason_code)).all())
        assert ("contractual_adjustment", "CO", "45") in kinds
        assert ("patient_responsibility", "PR", "1") in kinds
        assert any(kind == "insurance_payment" for kind, _g, _r in kinds)


def test_the_same_835_again_changes_nothing(services, remitted):
    bp, _claim_ids, text = remitted
    before = _counts(services, bp)
    report = _intake(services, bp, text)
    assert report.applied == [] and len(report.duplicates) == 1
    # The same set inside another interchange (another ISA13) is the same set.
    isa = text.split("~", 1)[0]
    other = text.replace(isa, isa[:90] + "000000777" + isa[99:], 1)
    assert other != text
    other = other.replace("IEA*1*" + isa[90:99], "IEA*1*000000777")
    report = _intake(services, bp, other)
    assert report.applied == [] and len(report.duplicates) == 1
    assert _counts(services, bp) == before


def test_a_reversal_takes_the_payment_back(services, remitted):
    bp, _claim_ids, text = remitted
    _head, _header, blocks, _plb, _tail = _split(text)
    paid_block = next(b for b in blocks if Decimal(b[0].split("*")[4]) > 0)
    claim_id = int(paid_block[0].split("*")[1])
    reversal = _build(text, [_reversal_of(paid_block)], st02="7001", trace="REV0000001")
    report = _intake(services, bp, reversal)
    (applied,) = report.applied
    assert applied["reversals"] == 1 and applied["claims_posted"] == 0 and applied["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        balance = ledger.claim_balance(s, claim_id)
        assert balance.payments == 0 and balance.adjustments == 0 and balance.patient == 0
        assert balance.insurance == balance.charges == claim.total_charge
        assert claim.status == "accepted"
        outcome = s.scalar(select(RemittanceClaim.outcome).where(RemittanceClaim.deposit_id == applied["deposit_id"]))
        assert outcome == "reversal"
    # Re-sending the reversal takes nothing more back.
    assert _intake(services, bp, reversal).duplicates


def test_an_unknown_claim_is_an_exception_and_the_rest_posts(services, remitted):
    """The corrected claim (re-payment after the reversal above) posts; the claim we never sent does not."""
    bp, _claim_ids, text = remitted
    _head, _header, blocks, _plb, _tail = _split(text)
    repaid = next(b for b in blocks if Decimal(b[0].split("*")[4]) > 0)
    unknown = [_set_element(repaid[0], 1, "999999999"), *repaid[1:]]
    report = _intake(services, bp, _build(text, [unknown, repaid], st02="7002", trace="REPAY00001"))
    (applied,) = report.applied
    assert applied["claims_posted"] == 1
    (exception,) = applied["exceptions"]
    assert exception["patient_control_number"] == "999999999" and "no claim" in exception["reason"]
    (remittance,) = parse_835(text)
    clp = next(c for c in remittance.claims if c.patient_control_number == repaid[0].split("*")[1])
    with services.db.tenant_session(bp.slug) as s:
        _assert_posted_as_remitted(s, clp)
        rows = s.execute(
            select(RemittanceClaim.outcome, RemittanceClaim.exception_reason)
            .where(RemittanceClaim.deposit_id == applied["deposit_id"])
            .order_by(RemittanceClaim.segment_position)
        ).all()
        assert [r.outcome for r in rows] == ["exception", "posted"] and "999999999" in rows[0].exception_reason


def test_provider_level_adjustments_are_recorded(services, remitted):
    bp, _claim_ids, text = remitted
    _head, _header, blocks, _plb, _tail = _split(text)
    payer_claim_number = blocks[1][0].split("*")[7]
    claim_id = int(blocks[1][0].split("*")[1])
    plb = [f"PLB*1234567893*20261231*L6:{payer_claim_number}*-4.25", "PLB*1234567893*20261231*WO:NOTOURS*10.00"]
    # A set of PLB only: 4.25 interest paid, 10.00 recouped -> BPR02 = -5.75.
    report = _intake(services, bp, _build(text, [], st02="7003", trace="PLB0000001", plb=plb))
    (applied,) = report.applied
    assert applied["provider_adjustments"] == 2 and applied["claims_posted"] == 0
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Deposit, applied["deposit_id"]).amount == Decimal("-5.75")
        rows = s.execute(
            select(ProviderAdjustmentEntry.reason_code, ProviderAdjustmentEntry.reference,
                   ProviderAdjustmentEntry.amount, ProviderAdjustmentEntry.claim_id)
            .where(ProviderAdjustmentEntry.deposit_id == applied["deposit_id"])
            .order_by(ProviderAdjustmentEntry.id)
        ).all()  # fmt: skip
        assert rows == [
            ("L6", payer_claim_number, Decimal("-4.25"), claim_id),
            ("WO", "NOTOURS", Decimal("10.00"), None),
        ]


def test_an_unbalanced_835_is_refused_and_nothing_posts(services, remitted):
    bp, _claim_ids, text = remitted
    _head, _header, blocks, _plb, _tail = _split(text)
    block = blocks[0]
    clp = block[0].split("*")
    broken = [_set_element(block[0], 4, f"{Decimal(clp[4]) + Decimal('1.00'):.2f}"), *block[1:]]
    before = _counts(services, bp)
    with pytest.raises(Invalid) as caught:
        _intake(services, bp, _build(text, [broken, *blocks[1:]], st02="7004", trace="BAD0000001"))
    assert "does not balance" in caught.value.message and "segment" in caught.value.message
    assert _counts(services, bp) == before


def test_a_claim_line_that_matches_nothing_posts_nothing_of_its_claim(services, remitted):
    bp, claim_ids, text = remitted
    _head, _header, blocks, _plb, _tail = _split(text)
    block = blocks[2]
    # Another code, and a REF*6R that names no line of the claim: no match by id nor by code.
    mangled = [_set_element(seg, 1, "HC:99499") if seg.startswith("SVC*") else seg for seg in block]
    mangled = [_set_element(seg, 2, "1") if seg.startswith("REF*6R") else seg for seg in mangled]
    claim_id = int(block[0].split("*")[1])
    with services.db.tenant_session(bp.slug) as s:
        before = ledger.claim_balance(s, claim_id)
    report = _intake(services, bp, _build(text, [mangled], st02="7005", trace="NOMATCH001"))
    (applied,) = report.applied
    (exception,) = applied["exceptions"]
    assert "matches no line" in exception["reason"]
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.claim_balance(s, claim_id) == before
