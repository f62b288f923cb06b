"""Patient billing pages: the home card and the patient list lead to the pages; a biller posts a payment (oldest
first, the rest as credit) and a refund, creates and cancels a plan, starts the cycle's statement run once (the
second start says nothing was started), sees its statements and downloads the PDF; bad input is refused with nothing
written; a doctor cannot see accounts and an agency user sees only placed accounts."""

from __future__ import annotations

import re
import threading
from html import unescape

import pytest
from sqlalchemy import select

from billing import ledger, statements
from billing.models import PaymentPlan, StatementRun
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_patient_payments import owed_visit
from tests.portal.test_portal import portal_login


def text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def _token(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def _form_token(response, form: str) -> str:
    """The one-time token of the page's payment or refund form."""
    html = response.get_data(as_text=True)
    return re.search(rf'<input[^>]*id="{form}-form-token"[^>]*value="([^"]+)"', html).group(1)


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


@pytest.fixture()
def biller(app, bp):
    client = app.test_client()
    portal_login(client, bp.biller_email)
    page = client.get("/home")
    client.post("/practice", data={"practice": bp.slug, "csrf_token": _token(page)})
    return client


def test_home_and_patient_list_link_to_patient_billing(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=30)
    home = biller.get("/home")
    assert f"/practices/{bp.slug}/patient-billing" in home.get_data(as_text=True)
    assert re.search(r"\d+ patients? to bill this cycle", text(home))
    listing = biller.get(f"/practices/{bp.slug}/patients")
    assert f"/practices/{bp.slug}/patients/{patient}/account" in listing.get_data(as_text=True)


def test_payment_refund_and_plan_through_the_account_page(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    lines = owed_visit(services, bp, patient, days_ago=60)
    url = f"/practices/{bp.slug}/patients/{patient}/account"
    page = biller.get(url)
    assert page.status_code == 200 and "Patient owes now $25.00" in text(page)
    r = biller.post(f"/practices/{bp.slug}/patients/{patient}/payments", data={
        "csrf_token": _token(page), "form_token": _form_token(page, "payment"), "amount": "30.00", "method": "check",
        "reference": "5521", "received_on": "2026-11-20"}, follow_redirects=True)  # fmt: skip
    assert "Payment of $30.00 posted: $25.00 applied, $5.00 kept as credit" in text(r)
    assert "Credit $5.00" in text(r)
    with services.db.tenant_session(bp.slug) as s:
        assert [ledger.line_balance(s, i).patient for i in lines] == [0, 0]
    refunds = f"/practices/{bp.slug}/patients/{patient}/refunds"
    bad = biller.post(
        refunds, data={"csrf_token": _token(r), "form_token": _form_token(r, "refund"), "amount": "9.00",
                       "method": "check"}, follow_redirects=True,
    )  # fmt: skip
    assert "Nothing was posted: only 5.00 is refundable" in text(bad)
    r = biller.post(refunds, data={"csrf_token": _token(r), "form_token": _form_token(bad, "refund"), "amount": "5.00",
                                   "method": "check"}, follow_redirects=True)  # fmt: skip
    assert "Refund of $5.00 recorded" in text(r) and "Credit $0.00" in text(r)
    invalid = biller.post(f"/practices/{bp.slug}/patients/{patient}/payment-plans", data={
        "csrf_token": _token(r), "total": "", "installment_amount": "10", "frequency": "monthly",
        "start_date": "2026-12-01"})  # fmt: skip
    assert invalid.status_code == 422 and "Enter the total." in text(invalid)
    r = biller.post(f"/practices/{bp.slug}/patients/{patient}/payment-plans", data={
        "csrf_token": _token(r), "total": "50.00", "installment_amount": "20.00", "frequency": "biweekly",
        "start_date": "2026-12-01"}, follow_redirects=True)  # fmt: skip
    assert "Payment plan created: 3 installments" in text(r)
    with services.db.tenant_session(bp.slug) as s:
        plan = s.scalar(select(PaymentPlan).where(PaymentPlan.patient_id == patient))
    r = biller.post(f"/practices/{bp.slug}/payment-plans/{plan.id}/cancel",
                    data={"csrf_token": _token(r), "reason": "changed mind"}, follow_redirects=True)  # fmt: skip
    assert "Payment plan cancelled" in text(r) and "Cancelled plan" in text(r)


def _payments_of(services, slug: str, patient: int) -> list:
    from billing.models import PatientPayment

    with services.db.tenant_session(slug) as s:
        rows = s.scalars(select(PatientPayment).where(PatientPayment.patient_id == patient).order_by(PatientPayment.id))
        return [(p.kind, str(p.amount), p.reference) for p in rows]


def _signed_in_biller(app, bp):
    client = app.test_client()
    portal_login(client, bp.biller_email)
    client.post("/practice", data={"practice": bp.slug, "csrf_token": _token(client.get("/home"))})
    return client


def test_one_payment_form_posts_once_however_often_it_is_sent(app, services, factory, bp):
    """Two tabs (two sessions of the biller) send the same rendered form at the same moment, then the form is sent
    again after Back: one payment. A form without its one-time token is refused."""
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=40)
    url = f"/practices/{bp.slug}/patients/{patient}/account"
    pay_url = f"/practices/{bp.slug}/patients/{patient}/payments"
    tabs = [_signed_in_biller(app, bp) for _ in range(2)]
    pages = [tab.get(url) for tab in tabs]
    form_token = _form_token(pages[0], "payment")
    data = {"form_token": form_token, "amount": "12.00", "method": "cash", "received_on": "2026-11-20"}
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def send(tab, page) -> None:
        barrier.wait()
        codes.append(tab.post(pay_url, data=data | {"csrf_token": _token(page)}).status_code)

    threads = [threading.Thread(target=send, args=(tab, page)) for tab, page in zip(tabs, pages, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert codes == [302, 302]
    assert _payments_of(services, bp.slug, patient) == [("payment", "12.00", "")]
    again = tabs[0].post(pay_url, data=data | {"csrf_token": _token(pages[0])}, follow_redirects=True)
    assert "This form was already submitted" in text(again) and "nothing more was posted" in text(again)
    stale = tabs[0].post(pay_url, data=data | {"csrf_token": _token(pages[0]), "form_token": ""})
    assert stale.status_code == 422 and "This form is out of date" in text(stale)
    assert len(_payments_of(services, bp.slug, patient)) == 1


def test_the_same_check_twice_on_one_day_needs_a_confirmation(app, services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=40)
    url = f"/practices/{bp.slug}/patients/{patient}/account"
    pay_url = f"/practices/{bp.slug}/patients/{patient}/payments"
    check = {"amount": "10.00", "method": "check", "reference": "7781", "received_on": "2026-11-21"}
    page = biller.get(url)
    biller.post(pay_url, data=check | {"csrf_token": _token(page), "form_token": _form_token(page, "payment")})
    page = biller.get(url)  # a new form: another biller enters the same check
    form = check | {"csrf_token": _token(page), "form_token": _form_token(page, "payment")}
    refused = biller.post(pay_url, data=form)
    assert refused.status_code == 409
    assert "check 7781 for 10.00 received on 2026-11-21 is already posted" in text(refused)
    assert 'value="7781"' in refused.get_data(as_text=True) and "second check with the same number" in text(refused)
    assert _payments_of(services, bp.slug, patient) == [("payment", "10.00", "7781")]
    # Another day's or another amount's check is not a duplicate; a confirmed second check posts.
    confirmed = biller.post(pay_url, data=form | {"confirm_duplicate": "y"}, follow_redirects=True)
    assert "Payment of $10.00 posted" in text(confirmed)
    assert _payments_of(services, bp.slug, patient) == [("payment", "10.00", "7781")] * 2


def test_statement_run_from_the_portal(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    owed_visit(services, bp, patient, days_ago=70, owes=("33.00", "0.00"))
    overview = biller.get(f"/practices/{bp.slug}/patient-billing")
    assert overview.status_code == 200 and "Start this cycle's statement run" in text(overview)
    r = biller.post(f"/practices/{bp.slug}/statement-runs", data={"csrf_token": _token(overview)})
    assert r.status_code == 302
    # The worker's part, done here in-process: the run page then lists the statements with their PDFs.
    with services.db.tenant_session(bp.slug) as s:
        run = s.scalar(select(StatementRun).order_by(StatementRun.id.desc()))
        statements.execute_run(s, run.id, practice_slug=bp.slug, storage=services.storage)
        s.commit()
    page = biller.get(r.headers["Location"])
    assert "Statement run started" in text(page) and "done" in text(page)
    assert "$33.00" in text(page) and "Download the print batch file (CSV)" in text(page)
    pdf_link = re.search(r'href="(/practices/[^"]+/statements/\d+/pdf)"', page.get_data(as_text=True)).group(1)
    download = biller.get(pdf_link)
    assert download.status_code == 302
    again = biller.post(f"/practices/{bp.slug}/statement-runs", data={"csrf_token": _token(page)},
                        follow_redirects=True)  # fmt: skip
    assert "already has a statement run: nothing was started" in text(again)
    account = biller.get(f"/practices/{bp.slug}/patients/{patient}/account")
    assert "60-day notice" in text(account)  # 70 days old


def test_settings_form(bp, biller):
    page = biller.get(f"/practices/{bp.slug}/patient-billing/settings")
    assert page.status_code == 200
    form = {"csrf_token": _token(page), "cycle_days": "28", "minimum_balance": "7.50", "scheduled_runs": "no",
            "payment_instructions": "Call 555-0100.", "message_90": "Last call.", "plan_reminder_days": "3",
            "plan_break_days": "2"}  # fmt: skip
    bad = biller.post(f"/practices/{bp.slug}/patient-billing/settings", data=form)
    assert bad.status_code == 422 and "must be later than the reminder" in text(bad)
    ok = biller.post(f"/practices/{bp.slug}/patient-billing/settings", data=form | {"plan_break_days": "20"},
                     follow_redirects=True)  # fmt: skip
    assert "Patient billing settings saved" in text(ok) and "cycle of 28 days" in text(ok)


def test_who_sees_what(app, services, world):
    a = world.practices["A"]
    doctor = app.test_client()
    portal_login(doctor, world.users["doctor_a"])
    agency = app.test_client()
    portal_login(agency, world.users["agency"])
    placed = world.placed_patient_id
    other = next(p["id"] for p in world.patients["A"] if p["id"] != placed)
    assert doctor.get(f"/practices/{a}/patients/{placed}/account").status_code == 403
    assert agency.get(f"/practices/{a}/patients/{placed}/account").status_code == 200
    assert agency.get(f"/practices/{a}/patients/{other}/account").status_code == 404
    assert agency.get(f"/practices/{a}/patient-billing").status_code == 404
