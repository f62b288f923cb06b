"""Posting on the accounts of services: a service is charged once (at submission), a primary's and a secondary's 835
for the same services post to the same accounts and the balances agree to the cent with a hand computation; a
corrected claim's posting does not charge again; forwarded, split, two-ERA and reversed claims (CLP02 19-22)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing import claims as claim_service
from billing import ledger, setup, submissions
from billing.claim_status import transition
from billing.models import Claim, ClaimLine, Coverage, LedgerEntry, RemittanceClaim, Underpayment
from billing.posting import post_remittance, record_inbound
from integrations.x12.remit835 import parse_835
from tests.billing.factories import added_coverage, billing_practice, insured_patient, shared_payer, visit
from tests.support.pyx12check import pyx12_errors

D = Decimal


# --- a small 835 writer: the figures are the test's, everything else is boilerplate ----------------------------------


@dataclass
class Svc:
    line_id: int
    code: str
    charge: str
    paid: str
    cas: list[tuple[str, str, str]] = field(default_factory=list)  # (group, reason, amount)
    modifiers: tuple[str, ...] = ()


@dataclass
class Clp:
    claim_id: int
    status: str
    lines: list[Svc]
    crossover: str | None = None  # NM1*TT name

    def charge(self) -> Decimal:
        return sum((D(s.charge) for s in self.lines), D(0))

    def paid(self) -> Decimal:
        return sum((D(s.paid) for s in self.lines), D(0))

    def pr(self) -> Decimal:
        return sum((D(a) for s in self.lines for g, _r, a in s.cas if g == "PR"), D(0))


def era(clps: list[Clp], *, trace: str, dos: date, payer: str = "PAYER1") -> str:
    body = []
    for c in clps:
        body.append(f"CLP*{c.claim_id}*{c.status}*{c.charge()}*{c.paid()}*{c.pr() or ''}*12*PCN{c.claim_id}*11")
        body.append(f"NM1*QC*1*DOE*JANE****MI*M{c.claim_id}")
        if c.crossover:
            body.append(f"NM1*TT*2*{c.crossover}*****PI*CROSS01")
        for s in c.lines:
            code = ":".join(["HC", s.code, *s.modifiers])
            body += [f"SVC*{code}*{s.charge}*{s.paid}**1", f"DTM*472*{dos:%Y%m%d}"]
            body += [f"CAS*{g}*{r}*{a}" for g, r, a in s.cas]
            body.append(f"REF*6R*{s.line_id}")
    total = sum((c.paid() for c in clps), D(0))
    segments = [
        "ST*835*0001",
        f"BPR*I*{total}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*{dos:%Y%m%d}",
        f"TRN*1*{trace}*1512345678", f"DTM*405*{dos:%Y%m%d}", f"N1*PR*{payer} HEALTH", "N3*1 PAYER WAY",
        "N4*COLUMBUS*OH*43215", f"REF*2U*{payer}", "N1*PE*TEST CLINIC*XX*1234567893", "LX*1", *body,
    ]  # fmt: skip
    segments.append(f"SE*{len(segments) + 1}*0001")
    isa = (
        f"ISA*00*          *00*          *ZZ*{'PAYER':<15}*ZZ*{'CLINIC':<15}*{dos:%y%m%d}*1200*^*00501*000000001*0*P*:"
    )
    gs = f"GS*HP*PAYER*CLINIC*{dos:%Y%m%d}*1200*1*X*005010X221A1"
    return "~\n".join([isa, gs, *segments, "GE*1*1", "IEA*1*000000001"]) + "~\n"


def post(services, bp, text: str) -> dict:
    (remittance,) = parse_835(text)
    with services.db.tenant_session(bp.slug) as s:
        inbound = record_inbound(s, remittance, "test/era")
        assert inbound is not None
        summary = post_remittance(s, remittance, inbound_id=inbound, deposit_storage_key="test/era")
        s.commit()
    return summary


def submit(services, bp, *claim_ids: int) -> None:
    with services.db.tenant_session(bp.slug) as s:
        for claim_id in claim_ids:
            claim = s.get(Claim, claim_id)
            if claim.status == "draft":
                transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None, claim_ids=list(claim_ids))
        assert prepared is not None and not prepared.skipped, prepared and prepared.skipped
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()


@dataclass
class Visit:
    claim_id: int
    line_ids: list[int]  # 99213-25 (150.00), 36415 (25.00)
    dos: date


def new_visit(services, bp, patient) -> Visit:
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        s.commit()
        v = Visit(claim.id, [cl.id for cl in claim.lines], claim.lines[0].service_line.date_of_service)
    submit(services, bp, v.claim_id)
    return v


def charges(s, claim_id: int) -> int:
    services_ = select(ClaimLine.service_line_id).where(ClaimLine.claim_id == claim_id)
    return s.scalar(
        select(func.count()).where(LedgerEntry.service_line_id.in_(services_), LedgerEntry.kind == "charge")
    )


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


def _primary_era(v: Visit, trace: str, status: str = "1", crossover: str | None = None) -> str:
    return era(
        [
            Clp(
                v.claim_id,
                status,
                [
                    Svc(
                        v.line_ids[0],
                        "99213",
                        "150.00",
                        "60.00",
                        [("CO", "45", "55.00"), ("PR", "1", "20.00"), ("PR", "2", "15.00")],
                        ("25",),
                    ),
                    Svc(v.line_ids[1], "36415", "25.00", "16.00", [("CO", "45", "5.00"), ("PR", "2", "4.00")]),
                ],
                crossover=crossover,
            )  # fmt: skip
        ],
        trace=trace,
        dos=v.dos,
    )


# --- the tests --------------------------------------------------------------------------------------------------------


def test_charges_post_once_at_submission(services, bp, factory):
    v = new_visit(services, bp, insured_patient(services, bp, factory))
    with services.db.tenant_session(bp.slug) as s:
        balance = ledger.claim_balance(s, v.claim_id)
        assert (balance.charges, balance.insurance, balance.patient) == (D("175.00"), D("175.00"), D("0.00"))
        assert charges(s, v.claim_id) == 2


def test_primary_then_secondary_agree_to_the_cent(services, bp, factory):
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Second Health Plan", member_id="SEC778899")
    v = new_visit(services, bp, patient)
    summary = post(services, bp, _primary_era(v, "PRI0000001"))
    (secondary_id,) = summary["secondary_claims"]
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, v.claim_id).status == "paid"
        # The primary's PR (35.00 + 4.00) went to the patient, then back to insurance: the secondary is billed for it.
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.charges, b.payments, b.adjustments) == (D("175.00"), D("76.00"), D("60.00"))
        assert (b.insurance, b.patient) == (D("39.00"), D("0.00"))
        assert ledger.claim_balance(s, secondary_id) == b  # the same accounts
        secondary = s.get(Claim, secondary_id)
        sec_lines = {cl.service_line_id: cl.id for cl in secondary.lines}
        prim_lines = [s.get(ClaimLine, i) for i in v.line_ids]
        assert secondary.status == "ready"
    submit(services, bp, secondary_id)  # charges nothing again
    sec = [sec_lines[line.service_line_id] for line in prim_lines]
    # The secondary repeats the primary's CO-45 and reports the primary's payment as OA-23; it pays 28.00 + PR 7.00
    # of the 35.00 pending on line 1, and 3.00 of the 4.00 on line 2 with its own CO-45 (6.00, of which 1.00 is left).
    text = era(
        [
            Clp(
                secondary_id,
                "2",
                [
                    Svc(
                        sec[0],
                        "99213",
                        "150.00",
                        "28.00",
                        [("CO", "45", "55.00"), ("OA", "23", "60.00"), ("PR", "2", "7.00")],
                        ("25",),
                    ),
                    Svc(sec[1], "36415", "25.00", "3.00", [("CO", "45", "6.00"), ("OA", "23", "16.00")]),
                ],
            )  # fmt: skip
        ],
        trace="SEC0000001",
        dos=v.dos,
        payer="PAYER2",
    )
    summary = post(services, bp, text)
    assert summary["claims_posted"] == 1 and summary["exceptions"] == [] and summary["secondary_claims"] == []
    with services.db.tenant_session(bp.slug) as s:
        line1 = ledger.line_balance(s, v.line_ids[0])
        line2 = ledger.line_balance(s, v.line_ids[1])
        assert (line1.charges, line1.payments, line1.adjustments) == (D("150.00"), D("88.00"), D("55.00"))
        assert (line1.insurance, line1.patient) == (D("0.00"), D("7.00"))
        assert (line2.charges, line2.payments, line2.adjustments) == (D("25.00"), D("19.00"), D("6.00"))
        assert (line2.insurance, line2.patient) == (D("0.00"), D("0.00"))
        assert ledger.line_balance(s, sec[0]) == line1
        pb = ledger.patient_balance(s, patient)
        assert (pb.charges, pb.payments, pb.adjustments, pb.insurance, pb.patient) == (
            D("175.00"), D("107.00"), D("61.00"), D("0.00"), D("7.00"),
        )  # fmt: skip
        assert charges(s, v.claim_id) == 2  # one per service, although two claims billed them
        assert s.get(Claim, secondary_id).status == "paid" and s.get(Claim, v.claim_id).status == "paid"
        # The trail: what the secondary caused is on the secondary claim and its lines.
        trail = ledger.posted_by_claim(s, secondary_id)
        assert (trail.charges, trail.payments, trail.adjustments) == (D("0.00"), D("31.00"), D("1.00"))
        # transfers +39.00 insurance / -39.00 patient, paid -31.00, CO -1.00, PR -7.00 insurance / +7.00 patient
        assert (trail.insurance, trail.patient) == (D("0.00"), D("-32.00"))
        assert set(s.scalars(select(LedgerEntry.claim_line_id).where(LedgerEntry.claim_id == secondary_id))) == set(sec)
        # No underpayment for a secondary's remainder payment.
        assert not s.scalar(select(func.count()).where(Underpayment.claim_id == secondary_id))
        pr = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "transfer_to_secondary",
                                                 LedgerEntry.claim_id == secondary_id)).all()  # fmt: skip
        assert sorted(e.amount for e in pr) == [D("4.00"), D("35.00")]


def test_a_corrected_claim_does_not_charge_again(services, bp, factory):
    v = new_visit(services, bp, insured_patient(services, bp, factory))
    post(services, bp, _primary_era(v, "ORIG000001"))
    with services.db.tenant_session(bp.slug) as s:
        replacement = claim_service.create_correction(s, bp.access, v.claim_id, "7", "wrong modifier")
        s.commit()
        replacement_id = replacement.id
        new_lines = [cl.id for cl in replacement.lines]
    submit(services, bp, replacement_id)
    with services.db.tenant_session(bp.slug) as s:
        assert charges(s, v.claim_id) == 2 and ledger.claim_balance(s, replacement_id).charges == D("175.00")
    # The payer takes the original back and pays the replacement: 70.00 instead of 60.00 on line 1.
    rev = _reversed_clp(v)
    repaid = Clp(replacement_id, "1", [
        Svc(new_lines[0], "99213", "150.00", "70.00", [("CO", "45", "55.00"), ("PR", "2", "25.00")], ("25",)),
        Svc(new_lines[1], "36415", "25.00", "16.00", [("CO", "45", "5.00"), ("PR", "2", "4.00")]),
    ])  # fmt: skip
    summary = post(services, bp, era([rev, repaid], trace="CORR000001", dos=v.dos))
    assert summary["reversals"] == 1 and summary["claims_posted"] == 1 and summary["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, replacement_id)
        assert (b.charges, b.payments, b.adjustments, b.insurance, b.patient) == (
            D("175.00"), D("86.00"), D("60.00"), D("0.00"), D("29.00"),
        )  # fmt: skip
        assert charges(s, v.claim_id) == 2
        assert s.get(Claim, v.claim_id).status == "accepted"


def _reversed_clp(v: Visit) -> Clp:
    return Clp(v.claim_id, "22", [
        Svc(v.line_ids[0], "99213", "-150.00", "-60.00",
            [("CO", "45", "-55.00"), ("PR", "1", "-20.00"), ("PR", "2", "-15.00")], ("25",)),
        Svc(v.line_ids[1], "36415", "-25.00", "-16.00", [("CO", "45", "-5.00"), ("PR", "2", "-4.00")]),
    ])  # fmt: skip


def test_a_reversal_must_mirror_what_was_posted_and_resolves_underpayments(services, bp, factory):
    v = new_visit(services, bp, insured_patient(services, bp, factory))
    short = era(
        [
            Clp(
                v.claim_id,
                "1",
                [
                    # Allowed 95.00 by contract; paid 50.00 + PR 20.00 = 70.00: an underpayment.
                    Svc(
                        v.line_ids[0],
                        "99213",
                        "150.00",
                        "50.00",
                        [("CO", "45", "80.00"), ("PR", "2", "20.00")],
                        ("25",),
                    ),
                    Svc(v.line_ids[1], "36415", "25.00", "16.00", [("CO", "45", "5.00"), ("PR", "2", "4.00")]),
                ],
            )  # fmt: skip
        ],
        trace="SHORT00001",
        dos=v.dos,
    )
    assert post(services, bp, short)["underpayments"] == 1
    with services.db.tenant_session(bp.slug) as s:
        before = ledger.claim_balance(s, v.claim_id)
    # A reversal whose amounts are not the posting's mirror: an exception, nothing taken back.
    wrong = _reversed_clp(v)
    summary = post(services, bp, era([wrong], trace="REVBAD0001", dos=v.dos))
    (exception,) = summary["exceptions"]
    assert summary["reversals"] == 0 and "does not mirror" in exception["reason"] and "-60.00" in exception["reason"]
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.claim_balance(s, v.claim_id) == before
        assert s.scalar(select(Underpayment.status).where(Underpayment.claim_id == v.claim_id)) == "open"
    good = Clp(v.claim_id, "22", [
        Svc(v.line_ids[0], "99213", "-150.00", "-50.00", [("CO", "45", "-80.00"), ("PR", "2", "-20.00")], ("25",)),
        Svc(v.line_ids[1], "36415", "-25.00", "-16.00", [("CO", "45", "-5.00"), ("PR", "2", "-4.00")]),
    ])  # fmt: skip
    summary = post(services, bp, era([good], trace="REVGOOD001", dos=v.dos))
    assert summary["reversals"] == 1 and summary["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (0, 0, D("175.00"), 0)
        row = s.scalar(select(Underpayment).where(Underpayment.claim_id == v.claim_id))
        assert row.status == "resolved" and "reversed" in row.note


def test_a_forwarded_claim_records_the_crossover_and_builds_no_secondary(services, bp, factory):
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Medigap Plan", member_id="GAP112233")
    v = new_visit(services, bp, patient)
    summary = post(services, bp, _primary_era(v, "FWD0000001", status="19", crossover="MEDIGAP PLAN"))
    assert summary["secondary_claims"] == [] and summary["claims_posted"] == 1
    assert summary["crossovers"] == [{"claim_id": v.claim_id, "payer": "MEDIGAP PLAN", "payer_id": "CROSS01"}]
    assert any("MEDIGAP PLAN" in note and "no secondary claim" in note for note in summary["notes"])
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, v.claim_id)
        assert claim.crossover_payer_name == "MEDIGAP PLAN" and claim.status == "paid"
        assert s.scalar(select(func.count()).where(Claim.encounter_id == claim.encounter_id)) == 1
        # The patient's 39.00 waits for the crossover payer: not billed to the patient.
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.insurance, b.patient) == (D("39.00"), D("0.00"))
        coverage_count = s.scalar(select(func.count()).where(Coverage.patient_id == patient))
        assert coverage_count == 2
    # The crossover payer's own 835 names our claim (processed as secondary): it pays, and the patient owes the rest.
    text = era(
        [
            Clp(
                v.claim_id,
                "2",
                [
                    Svc(
                        v.line_ids[0],
                        "99213",
                        "150.00",
                        "30.00",
                        [("CO", "45", "55.00"), ("OA", "23", "60.00"), ("PR", "2", "5.00")],
                        ("25",),
                    ),
                    Svc(v.line_ids[1], "36415", "25.00", "4.00", [("CO", "45", "5.00"), ("OA", "23", "16.00")]),
                ],
            )  # fmt: skip
        ],
        trace="GAP0000001",
        dos=v.dos,
        payer="GAP",
    )
    summary = post(services, bp, text)
    assert summary["claims_posted"] == 1 and summary["secondary_claims"] == [] and summary["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (D("110.00"), D("60.00"), 0, D("5.00"))
        assert s.get(Claim, v.claim_id).status == "paid"


def test_a_split_claim_posts_both_parts_and_matches_each_line_once(services, bp, factory):
    v = new_visit(services, bp, insured_patient(services, bp, factory))
    one = Clp(v.claim_id, "1", [
        Svc(v.line_ids[0], "99213", "150.00", "60.00", [("CO", "45", "55.00"), ("PR", "2", "35.00")], ("25",)),
    ])  # fmt: skip
    two = Clp(v.claim_id, "1", [Svc(v.line_ids[1], "36415", "25.00", "20.00", [("CO", "45", "5.00")])])
    summary = post(services, bp, era([one, two], trace="SPLIT00001", dos=v.dos))
    assert summary["claims_posted"] == 2 and summary["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (D("80.00"), D("60.00"), 0, D("35.00"))
        assert s.get(Claim, v.claim_id).status == "paid"
        outcomes = s.scalars(select(RemittanceClaim.outcome).where(RemittanceClaim.claim_id == v.claim_id)).all()
        assert outcomes == ["posted", "posted"]
    # A split whose second part names a line the first part already took: that part is an exception.
    w = new_visit(services, bp, insured_patient(services, bp, factory))
    first = Clp(w.claim_id, "1", [Svc(w.line_ids[1], "36415", "25.00", "20.00", [("CO", "45", "5.00")])])
    again = Clp(w.claim_id, "1", [Svc(w.line_ids[1], "36415", "25.00", "20.00", [("CO", "45", "5.00")])])
    summary = post(services, bp, era([first, again], trace="SPLIT00002", dos=w.dos))
    assert summary["claims_posted"] == 1
    (exception,) = summary["exceptions"]
    assert "already posted by the claim at segment" in exception["reason"]
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, w.claim_id)
        assert (b.payments, b.insurance) == (D("20.00"), D("150.00"))
        assert s.get(Claim, w.claim_id).status == "partially_paid"


def test_a_claim_paid_on_two_eras_posts_the_rest_without_duplicates(services, bp, factory):
    v = new_visit(services, bp, insured_patient(services, bp, factory))
    line1 = Svc(v.line_ids[0], "99213", "150.00", "60.00", [("CO", "45", "55.00"), ("PR", "2", "35.00")], ("25",))
    line2 = Svc(v.line_ids[1], "36415", "25.00", "20.00", [("CO", "45", "5.00")])
    post(services, bp, era([Clp(v.claim_id, "1", [line1])], trace="ERA1000001", dos=v.dos))
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, v.claim_id).status == "partially_paid"
    # The second ERA repeats line 1 as it was and pays line 2: line 1 is not posted again.
    summary = post(services, bp, era([Clp(v.claim_id, "1", [line1, line2])], trace="ERA2000001", dos=v.dos))
    assert summary["claims_posted"] == 1 and summary["duplicates"] == 0 and summary["exceptions"] == []
    assert any("not posted again" in note for note in summary["notes"])
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (D("80.00"), D("60.00"), 0, D("35.00"))
        assert s.get(Claim, v.claim_id).status == "paid"
    # A third ERA with both lines as posted: a duplicate; with line 1 adjudicated differently: an exception.
    summary = post(services, bp, era([Clp(v.claim_id, "1", [line1, line2])], trace="ERA3000001", dos=v.dos))
    assert summary["duplicates"] == 1 and summary["claims_posted"] == 0
    changed = Svc(v.line_ids[0], "99213", "150.00", "65.00", [("CO", "45", "55.00"), ("PR", "2", "30.00")], ("25",))
    summary = post(services, bp, era([Clp(v.claim_id, "1", [changed])], trace="ERA4000001", dos=v.dos))
    (exception,) = summary["exceptions"]
    assert "already adjudicated" in exception["reason"] and "reversal" in exception["reason"]
    with services.db.tenant_session(bp.slug) as s:
        assert ledger.claim_balance(s, v.claim_id).payments == D("80.00")


def test_a_secondary_denial_returns_the_share_to_the_patient(services, bp, factory):
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Denying Plan", member_id="DEN445566")
    v = new_visit(services, bp, patient)
    (secondary_id,) = post(services, bp, _primary_era(v, "PRI0000009"))["secondary_claims"]
    with services.db.tenant_session(bp.slug) as s:
        sec = {cl.service_line_id: cl.id for cl in s.get(Claim, secondary_id).lines}
        sec_lines = [sec[s.get(ClaimLine, i).service_line_id] for i in v.line_ids]
    submit(services, bp, secondary_id)
    # Not covered by the secondary (CO-109 on the whole charge): nothing paid, the 39.00 is the patient's again.
    denial = Clp(secondary_id, "4", [
        Svc(sec_lines[0], "99213", "150.00", "0", [("CO", "109", "150.00")], ("25",)),
        Svc(sec_lines[1], "36415", "25.00", "0", [("CO", "109", "25.00")]),
    ])  # fmt: skip
    summary = post(services, bp, era([denial], trace="DEN0000001", dos=v.dos, payer="PAYER3"))
    assert summary["claims_posted"] == 1 and summary["exceptions"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.charges, b.payments, b.adjustments) == (D("175.00"), D("76.00"), D("60.00"))
        assert (b.insurance, b.patient) == (D("0.00"), D("39.00"))
        assert s.get(Claim, secondary_id).status == "denied"


def test_reversing_the_primary_brings_the_secondary_transfer_back_in_line(services, bp, factory):
    patient = insured_patient(services, bp, factory)
    added_coverage(services, bp, patient, payer_name="Following Plan", member_id="FOL998877")
    v = new_visit(services, bp, patient)
    (secondary_id,) = post(services, bp, _primary_era(v, "PRI0000010"))["secondary_claims"]
    summary = post(services, bp, era([_reversed_clp(v)], trace="REVPRI0001", dos=v.dos))
    assert summary["reversals"] == 1 and summary["secondary_claims"] == []
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)  # back to the bare charge: nothing for the patient, all with insurance
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (0, 0, D("175.00"), 0)
        transfers = s.scalars(
            select(LedgerEntry.amount)
            .where(LedgerEntry.claim_id == secondary_id, LedgerEntry.kind == "transfer_to_secondary")
            .order_by(LedgerEntry.id)
        ).all()
        assert sum(transfers) == 0 and len(transfers) == 4
    # The payer adjudicates again with another patient share: the secondary is billed for the new one.
    readjudicated = Clp(v.claim_id, "1", [
        Svc(v.line_ids[0], "99213", "150.00", "70.00", [("CO", "45", "55.00"), ("PR", "2", "25.00")], ("25",)),
        Svc(v.line_ids[1], "36415", "25.00", "20.00", [("CO", "45", "5.00")]),
    ])  # fmt: skip
    summary = post(services, bp, era([readjudicated], trace="PRI0000011", dos=v.dos))
    assert summary["claims_posted"] == 1 and summary["secondary_claims"] == []  # the secondary exists already
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (D("90.00"), D("60.00"), D("25.00"), 0)
        assert s.get(Claim, v.claim_id).status == "paid"


def test_a_tertiary_is_billed_what_the_secondary_left_to_the_patient(services, bp, factory, tmp_path):
    from billing.secondary import prior_payers

    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        for priority, name in ((2, "Second Tier Plan"), (3, "Third Tier Plan")):
            payer = shared_payer(services, name=name)
            setup.enroll_payer(s, bp.access, payer.id, {})
            setup.add_coverage(
                s, bp.access, patient,
                {"payer_id": payer.id, "priority": priority, "member_id": f"TIER{priority}0001",
                 "relationship_code": "18", "effective_date": date(2020, 1, 1)},
            )  # fmt: skip
        s.commit()
    v = new_visit(services, bp, patient)
    (secondary_id,) = post(services, bp, _primary_era(v, "PRI0000020"))["secondary_claims"]
    with services.db.tenant_session(bp.slug) as s:
        sec = {cl.service_line_id: cl.id for cl in s.get(Claim, secondary_id).lines}
        sec_lines = [sec[s.get(ClaimLine, i).service_line_id] for i in v.line_ids]
    submit(services, bp, secondary_id)
    text = era(
        [
            Clp(
                secondary_id,
                "2",
                [
                    Svc(
                        sec_lines[0],
                        "99213",
                        "150.00",
                        "28.00",
                        [("CO", "45", "55.00"), ("OA", "23", "60.00"), ("PR", "2", "7.00")],
                        ("25",),
                    ),
                    Svc(sec_lines[1], "36415", "25.00", "4.00", [("CO", "45", "5.00"), ("OA", "23", "16.00")]),
                ],
            )  # fmt: skip
        ],
        trace="SEC0000020",
        dos=v.dos,
        payer="PAYER2",
    )
    (tertiary_id,) = post(services, bp, text)["secondary_claims"]
    with services.db.tenant_session(bp.slug) as s:
        b = ledger.claim_balance(s, v.claim_id)
        # 175 - 76 - 60 (primary) - 32 (secondary) = 7.00, the secondary's PR, now billed to the tertiary.
        assert (b.payments, b.adjustments, b.insurance, b.patient) == (D("108.00"), D("60.00"), D("7.00"), 0)
        assert s.get(Claim, secondary_id).status == "paid"
        tertiary = s.get(Claim, tertiary_id)
        assert tertiary.status == "ready"  # scrubbed clean, prior payers' adjudications included
        payers = prior_payers(s, tertiary)
        assert [p.other_payer.responsibility for p in payers] == ["P", "S"]
        assert all(p.problems == [] for p in payers), [p.problems for p in payers]
        # The secondary's line 1 as the tertiary's 837 reports it: paid 28.00, PR 7.00, the rest the prior payer's.
        line1 = payers[1].lines[s.get(ClaimLine, v.line_ids[0]).service_line_id]
        assert line1.paid == D("28.00") and sorted(line1.adjustments) == [
            ("OA", "23", D("115.00")), ("PR", "2", D("7.00")),
        ]  # fmt: skip
    # The tertiary's 837, with both prior payers' loops (2320/2330 twice, 2430 per line and payer), is valid X12.
    with services.db.tenant_session(bp.slug) as s:
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None, claim_ids=[tertiary_id])
        s.rollback()
    assert prepared is not None and prepared.submission.claim_count == 1
    path = tmp_path / "tertiary.837"
    path.write_text(prepared.text)
    assert pyx12_errors(path) == []
    assert prepared.text.count("SBR*P") == 1 and prepared.text.count("SBR*S") == 1 and "SBR*T" in prepared.text
