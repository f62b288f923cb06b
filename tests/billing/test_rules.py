"""The billing rules (billing.rules): each predicate's edge cases, its SQL expression agreeing with it on the database,
the "owed now" rule read the same by statements, collections and the patient account (a visit mixing a credit and an
open insurance balance), and a generated demo history where each claim's status, the denial work queue and the
report's denial count agree with the rules, and statements and collections pick from the same "owed now" figures."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import func, literal, select

from billing import claims as claim_service
from billing import collections, denials, ledger, patient_payments, reports, rules, statements
from billing import remittance_reads as remittance_api
from billing.models import Claim, ClaimLine, DenialItem, Deposit, LedgerEntry, RemittanceClaim, ServiceLine
from medbill.demo import PRACTICES, generate_patients
from medbill.demo_billing import SPECIALTIES, seed_billing
from medbill.demo_history import generate_history
from tests.billing.factories import billing_practice, insured_patient, visit

# --- the predicates -------------------------------------------------------------------------------------------------

CLAIM_CASES = [
    # (CLP02, charge, paid, patient responsibility) -> denied
    (("4", D("100.00"), D("0"), D("0")), True),  # the payer says denied
    (("4", D("100.00"), D("0"), D("20.00")), True),  # denied, with the patient's share named: still the payer's word
    (("1", D("100.00"), D("0"), D("0")), True),  # nothing paid, nothing to the patient (CO, PI or OA took it all)
    (("1", D("100.00"), D("0"), D("30.00")), False),  # all to the deductible: the patient owes it, not a denial
    (("1", D("100.00"), D("0.01"), D("0")), False),  # paid something
    (("1", D("0"), D("0"), D("0")), False),  # a zero charge has nothing to deny
    (("2", D("40.00"), D("0"), D("0")), True),  # a secondary that pays nothing on a balance is a denial too
    (("22", D("-100.00"), D("-60.00"), D("0")), False),  # a reversal
]


@pytest.mark.parametrize(("args", "expected"), CLAIM_CASES)
def test_claim_denied(args, expected):
    assert rules.claim_denied(*args) is expected


def test_claim_denied_sql_agrees_with_python(services, factory):
    """The same cases through PostgreSQL: the SQL expression the report counts with says what the predicate says."""
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        for (status, charge, paid, pr), expected in CLAIM_CASES:
            got = s.scalar(select(rules.claim_denied_sql(literal(status), literal(charge), literal(paid), literal(pr))))
            assert got is expected, (status, charge, paid, pr)


LINE_CASES = [
    # (paid, groups of its coded adjustments, claim denied) -> denied
    ((D("0"), {"CO"}, False), True),  # CO-50 not medically necessary, nothing paid
    ((D("0"), {"PI"}, False), True),  # zero-paid, adjusted only with PI: a denial (was `paid` in posting)
    ((D("0"), {"OA"}, False), True),  # zero-paid, adjusted only with OA: a denial
    ((D("0"), {"CO", "PR"}, False), False),  # part went to the patient: adjudicated, not denied
    ((D("0"), {"PR"}, False), False),  # all to the deductible
    ((D("0"), set(), False), False),  # no coded adjustment: nothing says why, not a denial of this line
    ((D("12.00"), {"CO"}, False), False),  # paid something: an underpayment maybe, not a denial
    ((D("12.00"), {"CO"}, True), True),  # the claim is denied: every line is
    ((D("0"), {"CR"}, False), False),  # a correction only
]


@pytest.mark.parametrize(("args", "expected"), LINE_CASES)
def test_line_denied(args, expected):
    paid, groups, claim_denied = args
    assert rules.line_denied(paid, groups, claim_denied=claim_denied) is expected


def test_line_denied_sql_agrees_with_python(services, factory):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        for (paid, groups, claim_denied), expected in LINE_CASES:
            count = len(groups & set(rules.DENIAL_GROUPS))
            expr = rules.line_denied_sql(
                literal(paid), literal(count), literal(rules.PATIENT_GROUP in groups), literal(claim_denied)
            )
            assert s.scalar(select(expr)) is expected, (paid, groups, claim_denied)


def test_claim_status_after():
    # every adjudication of the claim in the remittance denied -> denied
    assert rules.claim_status_after([True], D("100.00")) == "denied"
    assert rules.claim_status_after([True, True], D("0")) == "denied"
    # a claim with some lines (or some of its CLPs) denied is not denied: it is paid or partially paid by what is left
    assert rules.claim_status_after([False, True], D("25.00")) == "partially_paid"
    assert rules.claim_status_after([False], D("0")) == "paid"
    assert rules.claim_status_after([False], D("0.01")) == "partially_paid"


def test_pending_and_owed_now():
    assert rules.service_pending(D("0.01")) and not rules.service_pending(D("0")) and not rules.service_pending(D("-5"))
    assert not rules.visit_pending([])
    assert not rules.visit_pending([D("0"), D("-10.00")])  # a credit is not pending
    # a credit on one service does not offset another's open insurance balance
    assert rules.visit_pending([D("-30.00"), D("20.00")])
    assert rules.visit_owed_now([(D("-30.00"), D("20.00")), (D("20.00"), D("0"))]) == D("0")
    assert rules.visit_owed_now([(D("0"), D("20.00")), (D("-5.00"), D("5.00"))]) == D("25.00")
    assert rules.visit_owed_now([(D("0"), D("-10.00"))]) == D("-10.00")  # a patient credit nets on its visit


def test_entry_kinds_partition_the_ledger():
    """Every ledger kind is exactly one of: charge, payment, adjustment, refund, transfer (or the reversal kind)."""
    groups = [("charge",), rules.PAYMENT_KINDS, rules.ADJUSTMENT_KINDS, rules.REFUND_KINDS, rules.TRANSFER_KINDS]
    named = [kind for group in groups for kind in group]
    assert len(named) == len(set(named))
    assert set(ledger.all_kinds()) - {"reversal"} == set(named)
    assert rules.is_payment("insurance_payment") and rules.is_payment("patient_payment")
    assert rules.is_adjustment("write_off") and not rules.is_adjustment("patient_responsibility")
    assert rules.is_refund("refund") and not rules.is_payment("refund")
    assert ledger.PAYMENT_KINDS == rules.PAYMENT_KINDS and ledger.ADJUSTMENT_KINDS == rules.ADJUSTMENT_KINDS


# --- owed now through the database ----------------------------------------------------------------------------------


def _visit_with(services, bp, patient_id: int, parts: list[tuple[str, str, str]], *, days_ago: int = 60) -> None:
    """A billed visit whose lines get (contractual adjustment, insurance payment, patient responsibility) posted."""
    with services.db.tenant_session(bp.slug) as s:
        # the practice's fee schedule: 99213 $150, 36415 $25
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient_id, days_ago=days_ago))
        assert [line.charge for line in claim.lines] == [D("150.00"), D("25.00")]
        for line, (co, paid, pr) in zip(claim.lines, parts, strict=True):
            ledger.post(s, line, "charge", line.charge, source_type="test")
            if D(co):
                ledger.post(s, line, "contractual_adjustment", D(co), source_type="test", group_code="CO")
            if D(paid):
                ledger.post(s, line, "insurance_payment", D(paid), source_type="test")
            if D(pr):
                ledger.post(s, line, "patient_responsibility", D(pr), source_type="test", group_code="PR")
        s.commit()


def _owed_now_everywhere(session, patient_id: int) -> dict[str, D]:
    due = statements.due_balances(session)
    by_statements = session.scalar(select(due.c.due).where(due.c.patient_id == patient_id))
    by_collections, _oldest = collections.patient_due(session, patient_id)
    by_account = patient_payments.account(session, patient_id).patient_due
    return {
        "statements": D(by_statements or 0),
        "collections": by_collections,
        "account": by_account,
    }


def test_statements_collections_and_account_owe_the_same_on_a_mixed_visit(services, factory):
    """A visit where the payer overpaid one service (insurance part -30) and still owes on the other (+20): the
    visit is pending with insurance (domain.md: a credit balance is a liability, not negative A/R), so nothing is owed
    now — statements used to say so, collections netted the two and billed the 20 of PR."""
    bp = billing_practice(services, factory)
    mixed, clean = insured_patient(services, bp, factory), insured_patient(services, bp, factory)
    # 150 - 60 CO - 100 paid - 20 PR = -30 ; 25 - 5 CO = +20
    _visit_with(services, bp, mixed, [("60.00", "100.00", "20.00"), ("5.00", "0", "0")])
    # 150 - 60 - 70 - 20 = 0 ; 25 - 10 - 10 - 5 = 0: insurance done, the patient owes 25
    _visit_with(services, bp, clean, [("60.00", "70.00", "20.00"), ("10.00", "10.00", "5.00")])
    with services.db.tenant_session(bp.slug) as s:
        assert _owed_now_everywhere(s, mixed) == {"statements": D("0"), "collections": D("0"), "account": D("0")}
        assert patient_payments.account(s, mixed).patient_pending == D("20.00")
        assert collections.balances_by_service_date(s, [mixed]) == {}
        assert _owed_now_everywhere(s, clean) == {
            "statements": D("25.00"),
            "collections": D("25.00"),
            "account": D("25.00"),
        }


# --- the generated demo history -------------------------------------------------------------------------------------

MONTHS = 6
TODAY = date.today()


@pytest.fixture(scope="module")
def history(services, factory):
    from billing.models import Patient

    company = factory.company()
    # A fixed slug: the history's draws are seeded by the slug, so every run generates the same visits (a random
    # slug once drew a history with no wholly denied claim). Each run has its own database, so the name is free.
    practice = factory.practice(company.slug, "rules_history")
    agency = factory.agency([practice.slug])
    spec = PRACTICES[0]
    with services.db.tenant_session(practice.slug) as s:
        s.add_all(Patient(**values) for values in generate_patients(spec, seed=7, count=14))
        s.commit()
    assert seed_billing(services.db, practice.slug, "Rules Practice", index=11, specialty=spec.slug)
    report = generate_history(
        services.db, services.storage, practice.slug, specialty=SPECIALTIES[spec.slug], months=MONTHS,
        visits_per_month=8, agency_id=agency.id, today=TODAY,
    )  # fmt: skip
    assert report is not None
    return practice.slug


def _latest_posted(session) -> dict[int, RemittanceClaim]:
    """Each claim's latest remittance claim that posted or reversed, kept when it posted (what the queue reads)."""
    latest: dict[int, RemittanceClaim] = {}
    for rc in session.scalars(
        select(RemittanceClaim)
        .where(RemittanceClaim.claim_id.is_not(None), RemittanceClaim.outcome.in_(("posted", "reversal")))
        .order_by(RemittanceClaim.id)
    ):
        latest[rc.claim_id] = rc
    return {cid: rc for cid, rc in latest.items() if rc.outcome == "posted"}


def _python_denied_lines(session, latest: dict[int, RemittanceClaim]) -> set[int]:
    """The denied claim lines by the Python predicates, from the ledger entries each latest remittance posted."""
    out: set[int] = set()
    statuses = dict(session.execute(select(Claim.id, Claim.status).where(Claim.id.in_(list(latest)))).all())
    for claim_id, rc in latest.items():
        if statuses[claim_id] not in ("denied", "paid", "partially_paid"):
            continue  # worked since (corrected, voided...): no longer in the queue
        paid: dict[int, D] = defaultdict(lambda: D("0"))
        groups: dict[int, set[str]] = defaultdict(set)
        entries = session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.claim_id == claim_id,
                LedgerEntry.source_id == f"deposit:{rc.deposit_id}",
                LedgerEntry.kind != "reversal",
            )
        ).all()
        for e in entries:
            if e.kind == "insurance_payment":
                paid[e.claim_line_id] += e.amount
            if e.group_code in rules.DENIAL_GROUPS and e.reason_code:
                groups[e.claim_line_id].add(e.group_code)
            elif e.group_code == rules.PATIENT_GROUP:
                groups[e.claim_line_id].add(e.group_code)
        line_ids = session.scalars(select(ClaimLine.id).where(ClaimLine.claim_id == claim_id)).all()
        for line_id in line_ids:
            if rules.line_denied(paid[line_id], groups[line_id], claim_denied=statuses[claim_id] == "denied"):
                out.add(line_id)
    return out


def test_demo_claim_status_queue_and_report_agree(services, history):
    with services.db.tenant_session(history) as s:
        latest = _latest_posted(s)
        assert latest, "the generated history posted remittances"
        claims = {c.id: c for c in s.scalars(select(Claim).where(Claim.id.in_(list(latest))))}

        # 1. each claim's status follows the claim rule on its latest adjudication (while it has not been worked)
        for claim_id, rc in latest.items():
            is_denied = rules.claim_denied(rc.status_code, rc.charge, rc.paid, rc.patient_responsibility)
            if claims[claim_id].status in ("denied", "paid", "partially_paid"):
                assert (claims[claim_id].status == "denied") is is_denied, (claim_id, rc.status_code, rc.paid)
        every_posted = s.scalars(select(RemittanceClaim).where(RemittanceClaim.outcome == "posted")).all()
        assert any(
            rules.claim_denied(rc.status_code, rc.charge, rc.paid, rc.patient_responsibility) for rc in every_posted
        ), "the generated history has denials"

        # 2. the work queue (the API's list and the derived work items) holds exactly the lines the rules deny
        expected_lines = _python_denied_lines(s, latest)
        assert expected_lines
        assert remittance_api.count_denials(s) == len(expected_lines)
        denials.sync(s)
        s.flush()
        items = s.execute(
            select(DenialItem.claim_line_id, DenialItem.remittance_claim_id).where(DenialItem.kind == "denial")
        ).all()
        latest_rc_ids = {rc.id for rc in latest.values()}
        from_latest = {line for line, rc_id in items if rc_id in latest_rc_ids}
        assert expected_lines <= from_latest

        # 3. the report's denial count is the claim rule over every CLP posted in its months
        months = reports.months_back(TODAY - timedelta(days=1), MONTHS + 1)
        summary = reports.monthly_summary(s, months[-1], months=MONTHS + 1)
        first = months[0]
        rows = s.execute(
            select(RemittanceClaim)
            .join(Deposit, Deposit.id == RemittanceClaim.deposit_id)
            .where(
                RemittanceClaim.outcome == "posted",
                RemittanceClaim.status_code.in_(reports.ADJUDICATED_STATUSES),
                Deposit.payment_date >= first,
                Deposit.payment_date < reports.next_month(months[-1]),
            )
        ).scalars()
        rcs = list(rows)
        by_rule = sum(rules.claim_denied(r.status_code, r.charge, r.paid, r.patient_responsibility) for r in rcs)
        assert sum(m.claims_denied for m in summary.months) == by_rule > 0
        assert sum(m.claims_adjudicated for m in summary.months) == len(rcs)


def test_demo_statements_and_collections_pick_from_the_same_owed_now(services, history):
    with services.db.tenant_session(history) as s:
        # per visit, the rule in Python over each service's parts
        parts = s.execute(
            select(
                LedgerEntry.patient_id,
                ServiceLine.encounter_id,
                func.sum(LedgerEntry.insurance_delta),
                func.sum(LedgerEntry.patient_delta),
            )
            .join(ServiceLine, ServiceLine.id == LedgerEntry.service_line_id)
            .group_by(LedgerEntry.patient_id, ServiceLine.encounter_id, ServiceLine.id)
        ).all()
        visits: dict[tuple[int, int], list[tuple[D, D]]] = defaultdict(list)
        for patient_id, encounter_id, ins, pat in parts:
            visits[(patient_id, encounter_id)].append((D(ins), D(pat)))
        expected: dict[int, D] = defaultdict(lambda: D("0"))
        for (patient_id, _encounter), services_parts in visits.items():
            expected[patient_id] += rules.visit_owed_now(services_parts)
        assert any(v > 0 for v in expected.values()), "the history leaves patients owing"
        for patient_id in {pid for pid, _ in visits}:
            assert _owed_now_everywhere(s, patient_id) == {
                "statements": expected[patient_id],
                "collections": expected[patient_id],
                "account": expected[patient_id],
            }, patient_id
