"""The claims pages through a browser-like client: charge entry, claim list and detail with their actions, the
rejection queue, the home page's queue cards, and who may see them. Real PostgreSQL, Redis and S3 (moto); CSRF on."""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta
from decimal import Decimal
from html import unescape

import pytest
from rq import Queue
from sqlalchemy import event, func, select

from billing.claim_status import transition
from billing.claims import create_claims
from billing.models import (
    Claim,
    ClaimAcknowledgement,
    ClaimStatusChange,
    Encounter,
    InboundFile,
    Submission,
    SubmissionClaim,
)
from billing.scrubber import scrub_claim
from integrations.storage import practice_key
from tenants.models import AuditEntry, Practice, User
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.portal.test_portal import csrf, csrf_from, portal_login, text


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


def _client(app, email: str):
    client = app.test_client()
    portal_login(client, email)
    return client


@pytest.fixture()
def biller(app, bp):
    return _client(app, bp.biller_email)


def user_id_of(services, email: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(User.id).where(User.email == email))


def make_claim(services, factory, bp, *, scrub: bool = True, lines=None, days_ago: int = 5) -> int:
    patient = insured_patient(services, bp, factory)
    encounter_id = visit(services, bp, patient, lines=lines, days_ago=days_ago)
    with services.db.tenant_session(bp.slug) as s:
        claim = create_claims(s, bp.access, encounter_id)[0]
        if scrub:
            scrub_claim(s, claim, user_id=bp.access.user_id)
        s.commit()
        return claim.id


def reject(services, bp, claim_id: int, reasons: list[str]) -> None:
    """A ready claim sent and rejected by the payer's 277CA (an acknowledgement row needs its inbound file)."""
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        transition(s, claim, "submitted", source="submission")
        inbound = InboundFile(kind="277ca", content_sha256=secrets.token_hex(32), storage_key="inbound/x.277")
        s.add(inbound)
        s.flush()
        s.add(ClaimAcknowledgement(claim_id=claim.id, inbound_file_id=inbound.id, accepted=False, reasons=reasons))
        transition(s, claim, "rejected", source="277ca", reason="rejected by the payer")
        s.commit()


def status_of(services, bp, claim_id: int) -> str:
    with services.db.tenant_session(bp.slug) as s:
        return s.scalar(select(Claim.status).where(Claim.id == claim_id))


def encounter_count(services, bp) -> int:
    with services.db.tenant_session(bp.slug) as s:
        return s.scalar(select(func.count()).select_from(Encounter))


def error_text(body: str, input_id: str) -> str:
    match = re.search(rf'<p class="field__error" id="{re.escape(input_id)}-error">([^<]*)</p>', body)
    assert match, f"no error beside {input_id}"
    return unescape(match.group(1))


def charge_form(bp, **overrides) -> dict:
    data = {
        "date_of_service": (date.today() - timedelta(days=3)).isoformat(),
        "place_of_service": "11",
        "rendering_provider_id": str(bp.provider_id),
        "diagnoses-0": "E11.9",
        "diagnoses-1": "I10",
        "lines-0-procedure_code": "99213",
        "lines-0-modifiers": "25",
        "lines-0-units": "1",
        "lines-0-pointers": "1,2",
        "lines-1-procedure_code": "36415",
        "lines-1-pointers": "1",
        "create_claim": "y",
    }
    return data | overrides


# --- charge entry ---------------------------------------------------------------------------------------------------


def test_charge_entry_starts_with_a_patient_search(services, factory, bp, biller):
    factory.patient(bp.slug, first_name="Searchable", last_name="Quintero")
    page = biller.get(f"/practices/{bp.slug}/charges/new")
    body = text(page)
    assert page.status_code == 200
    assert '<label class="field__label" for="q">Patient name or account number</label>' in body
    found = text(biller.get(f"/practices/{bp.slug}/charges/new?q=quinter"))
    assert "Quintero, Searchable" in found
    assert re.search(rf'href="/practices/{bp.slug}/charges/new\?patient_id=\d+"', found)
    assert "No patient matches" in text(biller.get(f"/practices/{bp.slug}/charges/new?q=nobody-like-this"))


def test_charge_entry_form_has_labelled_fields(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    response = biller.get(f"/practices/{bp.slug}/charges/new?patient_id={patient}")
    body = text(response)
    assert response.status_code == 200
    assert csrf_from(response)
    for input_id, label in (
        ("date_of_service", "Date of service"),
        ("place_of_service", "Place of service"),
        ("rendering_provider_id", "Rendering provider"),
        ("diagnoses-0", "Diagnosis 1"),
        ("diagnoses-11", "Diagnosis 12"),
    ):
        assert f'<label class="field__label" for="{input_id}">{label}</label>' in body, label
        assert f'id="{input_id}"' in body
    for name in ("procedure_code", "modifiers", "units", "pointers", "charge"):
        assert f'for="lines-5-{name}">Line 6 ' in body  # every service-line input has its (visually hidden) label
    assert f'value="{date.today().isoformat()}"' in body  # date of service defaults to today
    assert re.search(r'<option (selected )?value="11"( selected)?>11 – Office</option>', body)
    assert re.search(rf'<option (selected )?value="{bp.provider_id}"( selected)?>Reyes, Ana MD', body)
    assert re.search(r'<input[^>]*checked[^>]*id="create_claim"|<input[^>]*id="create_claim"[^>]*checked', body)
    assert '<label for="create_claim">Create the claim now</label>' in body
    assert "Acme Health Plan" in body  # the patient's coverage
    assert "<script" not in body and "style=" not in body


def test_charge_entry_needs_csrf(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    before = encounter_count(services, bp)
    response = biller.post(f"/practices/{bp.slug}/charges/new?patient_id={patient}", data=charge_form(bp))
    assert response.status_code == 400
    assert "Request not accepted" in text(response)
    assert encounter_count(services, bp) == before


def test_bad_codes_are_shown_beside_their_fields_and_nothing_is_saved(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    path = f"/practices/{bp.slug}/charges/new?patient_id={patient}"
    token = csrf(biller, path)
    before = encounter_count(services, bp)
    response = biller.post(
        path,
        data=charge_form(
            bp,
            csrf_token=token,
            **{"diagnoses-1": "XQ9.99", "lines-0-modifiers": "25, ZZZ", "lines-1-pointers": "1, 4"},
        ),
    )
    body = text(response)
    assert response.status_code == 422
    assert "The visit was not saved" in body
    assert "is not an ICD-10-CM code" in error_text(body, "diagnoses-1")
    assert "Not a modifier: 'ZZZ'" in error_text(body, "lines-0-modifiers")
    assert "Diagnosis 4 is empty" in error_text(body, "lines-1-pointers")
    assert re.search(r'<input[^>]*aria-describedby="diagnoses-1-error"[^>]*aria-invalid="true"', body) or re.search(
        r'<input[^>]*aria-invalid="true"[^>]*aria-describedby="diagnoses-1-error"', body
    )
    assert 'href="#lines-0-modifiers"' in body  # the summary links to the input
    assert 'value="XQ9.99"' in body and 'value="25, ZZZ"' in body  # what was typed is kept
    assert "Type 2 diabetes mellitus without complications" in body  # the valid code's description
    assert 'id="diagnoses-0-error"' not in body
    assert encounter_count(services, bp) == before


def test_pointers_follow_the_diagnosis_inputs_even_with_gaps(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    path = f"/practices/{bp.slug}/charges/new?patient_id={patient}"
    form = charge_form(bp, csrf_token=csrf(biller, path), **{"diagnoses-1": "", "diagnoses-3": "I10"})
    form |= {"lines-0-pointers": "1,4", "lines-1-pointers": "4"}
    response = biller.post(path, data=form)
    assert response.status_code == 302, text(response)
    claim_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        encounter = s.get(Encounter, claim.encounter_id)
        assert encounter.diagnoses == ["E11.9", "I10"]
        assert [line.diagnosis_pointers for line in encounter.lines] == [[1, 2], [2]]


def test_a_good_visit_creates_the_claim_and_shows_it_ready(services, factory, bp, biller):
    patient = insured_patient(services, bp, factory)
    path = f"/practices/{bp.slug}/charges/new?patient_id={patient}"
    before = encounter_count(services, bp)
    response = biller.post(path, data=charge_form(bp, csrf_token=csrf(biller, path)))
    assert response.status_code == 302, text(response)
    match = re.search(rf"/practices/{bp.slug}/claims/(\d+)$", response.headers["Location"])
    assert match
    claim_id = int(match.group(1))
    assert encounter_count(services, bp) == before + 1
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        assert claim.patient_id == patient and claim.status == "ready"
        assert claim.total_charge == Decimal("175.00")  # 150 + 25 from the fee schedule
    body = text(biller.get(response.headers["Location"]))
    assert f"Claim {claim_id} created" in body and "ready to submit" in body  # the flash message
    assert '<span class="status status--ready">Ready</span>' in body
    assert "$175.00" in body


def test_visit_without_coverage_is_refused_when_the_claim_is_wanted(services, factory, bp, biller):
    patient = factory.patient(bp.slug)["id"]  # no coverage
    path = f"/practices/{bp.slug}/charges/new?patient_id={patient}"
    before = encounter_count(services, bp)
    response = biller.post(path, data=charge_form(bp, csrf_token=csrf(biller, path)))
    assert response.status_code == 422
    assert "no primary coverage" in error_text(text(response), "create_claim")
    assert encounter_count(services, bp) == before
    without = charge_form(bp, csrf_token=csrf(biller, path))
    del without["create_claim"]
    saved = biller.post(path, data=without)
    assert saved.status_code == 302 and "patient_id=" in saved.headers["Location"]
    assert encounter_count(services, bp) == before + 1
    assert "Visit saved without a claim" in text(biller.get(saved.headers["Location"]))


# --- claim list -----------------------------------------------------------------------------------------------------


def tab_count(body: str, label: str) -> int:
    match = re.search(rf'>{re.escape(label)} <span class="tabs__count">([\d,]+)</span>', body)
    assert match, f"no tab {label}"
    return int(match.group(1).replace(",", ""))


def claim_ids_in(body: str, slug: str) -> list[int]:
    return [int(i) for i in re.findall(rf'<th scope="row"><a class="mono" href="/practices/{slug}/claims/(\d+)"', body)]


def test_claim_list_filters_by_status_with_counts(services, factory, bp, biller):
    ready = make_claim(services, factory, bp)
    draft = make_claim(services, factory, bp, scrub=False)
    with services.db.tenant_session(bp.slug) as s:
        counts = dict(s.execute(select(Claim.status, func.count()).group_by(Claim.status)).all())
    body = text(biller.get(f"/practices/{bp.slug}/claims"))
    assert tab_count(body, "All") == sum(counts.values())
    assert tab_count(body, "Ready") == counts["ready"]
    assert tab_count(body, "Draft") == counts["draft"]
    assert tab_count(body, "Rejected") == counts.get("rejected", 0)
    assert '<th scope="col">Claim #</th>' in body and "<caption" in body
    assert f'href="/practices/{bp.slug}/claims"' in body  # the nav link

    only_ready = text(biller.get(f"/practices/{bp.slug}/claims?status=ready"))
    ids = claim_ids_in(only_ready, bp.slug)
    assert ready in ids and draft not in ids
    assert 'aria-current="page">Ready <span' in only_ready
    assert only_ready.count('<span class="status status--ready">Ready</span>') == len(ids)
    only_draft = claim_ids_in(text(biller.get(f"/practices/{bp.slug}/claims?status=draft")), bp.slug)
    assert draft in only_draft and ready not in only_draft
    assert claim_ids_in(text(biller.get(f"/practices/{bp.slug}/claims?payer_id=999999999")), bp.slug) == []
    assert ready in claim_ids_in(text(biller.get(f"/practices/{bp.slug}/claims?payer_id={bp.payer_id}")), bp.slug)
    assert biller.get(f"/practices/{bp.slug}/claims?status=bogus&sort=x&page=abc").status_code == 200

    with services.db.shared_session() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.user_id == user_id_of(services, bp.biller_email), AuditEntry.object_type == "claim")
            .order_by(AuditEntry.id.desc())
        ).first()
    assert entry.action == "list"


def test_claim_list_sorts_by_total_and_date_on_the_server(services, factory, bp, biller):
    make_claim(services, factory, bp, lines=[{"procedure_code": "99214", "units": 3, "diagnosis_pointers": [1]}])
    make_claim(services, factory, bp, days_ago=40)
    with services.db.tenant_session(bp.slug) as s:
        by_total = list(s.scalars(select(Claim.id).order_by(Claim.total_charge.desc(), Claim.id.desc()).limit(25)))
        by_date = list(
            s.scalars(
                select(Claim.id)
                .join(Encounter, Encounter.id == Claim.encounter_id)
                .order_by(Encounter.date_of_service.asc(), Claim.id.asc())
                .limit(25)
            )
        )
    body = text(biller.get(f"/practices/{bp.slug}/claims?sort=-total"))
    assert claim_ids_in(body, bp.slug) == by_total
    assert 'aria-sort="descending"' in body
    assert claim_ids_in(text(biller.get(f"/practices/{bp.slug}/claims?sort=date")), bp.slug) == by_date


def test_claim_list_pages_and_queries_do_not_grow_with_rows(services, factory, bp, biller):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = services.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        biller.get(f"/practices/{bp.slug}/claims")
        first = len(statements)
        for _ in range(3):
            make_claim(services, factory, bp, scrub=False)
        statements.clear()
        body = text(biller.get(f"/practices/{bp.slug}/claims"))
        second = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert second == first
    assert len(claim_ids_in(body, bp.slug)) <= 25
    with services.db.tenant_session(bp.slug) as s:
        total = s.scalar(select(func.count()).select_from(Claim))
    while total <= 25:  # enough claims for a second page
        make_claim(services, factory, bp, scrub=False)
        total += 1
    first_page = text(biller.get(f"/practices/{bp.slug}/claims"))
    assert len(claim_ids_in(first_page, bp.slug)) == 25 and 'rel="next"' in first_page
    second_page = text(biller.get(f"/practices/{bp.slug}/claims?page=2"))
    assert len(claim_ids_in(second_page, bp.slug)) == total - 25 or total > 50
    assert not set(claim_ids_in(first_page, bp.slug)) & set(claim_ids_in(second_page, bp.slug))


# --- claim detail ---------------------------------------------------------------------------------------------------


def test_claim_detail_shows_lines_findings_history_and_files(services, factory, bp, biller):
    claim_id = make_claim(
        services,
        factory,
        bp,
        lines=[
            {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1, 2]},
            {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [2], "charge": "0"},
        ],
    )
    key = practice_key(bp.slug, "submissions", f"claim{claim_id}.837")
    services.storage.put(key, b"ISA*00*...~", content_type="application/edi-x12")
    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        line_ids = [cl.id for cl in claim.lines]
        submission = Submission(
            clearinghouse_name="sandbox",
            interchange_control_number=4200 + claim_id,
            group_control_number=1,
            filename=f"claim{claim_id}.837",
            storage_key=key,
            file_sha256="0" * 64,
            claim_count=1,
            total_charge=claim.total_charge,
        )
        s.add(submission)
        s.flush()
        s.add(SubmissionClaim(submission_id=submission.id, claim_id=claim_id, transaction_control_number="0001"))
        s.commit()
    body = text(biller.get(f"/practices/{bp.slug}/claims/{claim_id}"))
    assert '<span class="status status--scrubbed">Scrub errors</span>' in body
    for line_id in line_ids:
        assert f'<td class="mono">{line_id}</td>' in body  # line item control numbers
    assert "99213" in body and '<span class="mono">25</span>' in body
    assert '1 → <span class="mono">E11.9</span>, 2 → <span class="mono">I10</span>' in body
    assert '<span class="severity severity--error">Error</span>' in body
    assert "lines[2].charge" in body and "charge must be positive" in body
    assert "Created as Draft" in body and "Draft → Scrub errors" in body and "<td>Scrubber</td>" in body
    assert "<td>Biller</td>" in body  # who: the user's full name from shared.users
    assert f"Interchange {4200 + claim_id:09d}" in body
    assert re.search(rf'<a href="[^"]*{re.escape(key)}[^"]*">Interchange', unescape(body))
    assert f'action="/practices/{bp.slug}/claims/{claim_id}/scrub"' in body
    assert "/submit" not in body  # not ready: no Submit button
    assert biller.get(f"/practices/{bp.slug}/claims/999999999").status_code == 404
    with services.db.shared_session() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "claim", AuditEntry.object_id == str(claim_id))
        ).all()
    assert "read" in [e.action for e in entry]


def test_scrub_again_records_a_new_run(services, factory, bp, biller):
    claim_id = make_claim(services, factory, bp, scrub=False)
    page = biller.get(f"/practices/{bp.slug}/claims/{claim_id}")
    assert "The claim has not been scrubbed yet." in text(page)
    response = biller.post(f"/practices/{bp.slug}/claims/{claim_id}/scrub", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert status_of(services, bp, claim_id) == "ready"
    assert "ready to submit" in text(biller.get(response.headers["Location"]))


def test_reopen_moves_a_rejected_claim_to_draft_and_records_who(services, factory, bp, biller):
    claim_id = make_claim(services, factory, bp)
    reject(services, bp, claim_id, ["Subscriber and subscriber id not found", "Missing referring provider"])
    page = biller.get(f"/practices/{bp.slug}/claims/{claim_id}")
    body = text(page)
    assert f"Reopen claim {claim_id} for correction" in body
    assert "Subscriber and subscriber id not found" in body and "Rejected" in body
    assert biller.post(f"/practices/{bp.slug}/claims/{claim_id}/reopen").status_code == 400  # no CSRF token
    assert status_of(services, bp, claim_id) == "rejected"

    response = biller.post(
        f"/practices/{bp.slug}/claims/{claim_id}/reopen",
        data={"csrf_token": csrf_from(page), "reason": "member id corrected"},
    )
    assert response.status_code == 302
    assert status_of(services, bp, claim_id) == "draft"
    with services.db.tenant_session(bp.slug) as s:
        change = s.scalars(
            select(ClaimStatusChange)
            .where(ClaimStatusChange.claim_id == claim_id)
            .order_by(ClaimStatusChange.id.desc())
        ).first()
    assert (change.from_status, change.to_status) == ("rejected", "draft")
    assert change.user_id == user_id_of(services, bp.biller_email)
    assert change.source == "user" and change.reason == "member id corrected"
    after = text(biller.get(response.headers["Location"]))
    assert "reopened for correction" in after and "Rejected → Draft" in after
    again = biller.post(f"/practices/{bp.slug}/claims/{claim_id}/reopen", data={"csrf_token": csrf_from(page)})
    assert again.status_code == 302 and status_of(services, bp, claim_id) == "draft"
    assert "only a rejected claim can be reopened" in text(biller.get(again.headers["Location"]))


def test_submit_puts_exactly_one_job_on_the_submission_queue(services, factory, bp, biller):
    claim_id = make_claim(services, factory, bp)
    assert status_of(services, bp, claim_id) == "ready"
    queue = Queue("submission", connection=services.redis)
    before = set(queue.job_ids)
    page = biller.get(f"/practices/{bp.slug}/claims/{claim_id}")
    assert f"Submit claim {claim_id} to Acme Health Plan" in text(page)
    new: set[str] = set()
    try:
        response = biller.post(f"/practices/{bp.slug}/claims/{claim_id}/submit", data={"csrf_token": csrf_from(page)})
        assert response.status_code == 302
        new = set(queue.job_ids) - before
        assert len(new) == 1
        job = queue.fetch_job(next(iter(new)))
        assert job.func_name == "jobs.submission.submit_claims"
        assert job.args == (bp.slug, [claim_id], user_id_of(services, bp.biller_email))
        assert job.meta["kind"] == "submission"
        assert f"queued for submission (job {job.id})" in text(biller.get(response.headers["Location"]))

        twice = biller.post(f"/practices/{bp.slug}/claims/{claim_id}/submit", data={"csrf_token": csrf_from(page)})
        assert twice.status_code == 302
        assert set(queue.job_ids) - before == new  # a second click does not queue another
        assert "already queued" in text(biller.get(twice.headers["Location"]))

        draft = make_claim(services, factory, bp, scrub=False)
        refused = biller.post(f"/practices/{bp.slug}/claims/{draft}/submit", data={"csrf_token": csrf_from(page)})
        assert refused.status_code == 302 and set(queue.job_ids) - before == new
        assert "only a ready claim can be submitted" in text(biller.get(refused.headers["Location"]))
    finally:
        for job_id in new:
            job = queue.fetch_job(job_id)
            if job is not None:
                job.delete()
    assert status_of(services, bp, claim_id) == "ready"  # the job (not the page) marks it submitted


# --- rejection queue and home ---------------------------------------------------------------------------------------


def test_rejection_queue_lists_rejected_claims_oldest_first_with_reasons(services, factory, bp, biller):
    older = make_claim(services, factory, bp)
    reject(services, bp, older, ["Invalid diagnosis code pointer"])
    newer = make_claim(services, factory, bp)
    reject(services, bp, newer, ["Patient date of birth does not match"])
    body = text(biller.get(f"/practices/{bp.slug}/rejections"))
    assert "Invalid diagnosis code pointer" in body and "Patient date of birth does not match" in body
    ids = claim_ids_in(body, bp.slug)
    assert older in ids and newer in ids and ids.index(older) < ids.index(newer)
    assert "Acme Health Plan" in body and "<caption" in body
    with services.db.tenant_session(bp.slug) as s:
        rejected = set(s.scalars(select(Claim.id).where(Claim.status == "rejected")))
    assert set(ids) <= rejected


def test_home_queue_cards_link_with_real_counts(services, factory, bp, biller):
    make_claim(services, factory, bp, lines=[{"procedure_code": "36415", "units": 1, "charge": "0"}])
    with services.db.tenant_session(bp.slug) as s:
        counts = dict(s.execute(select(Claim.status, func.count()).group_by(Claim.status)).all())
    body = text(biller.get("/home"))
    scrub = re.search(
        rf'<a href="/practices/{bp.slug}/claims\?status=scrubbed">Scrub errors</a>.*?class="stat__value">(\d+)<',
        body,
        re.S,
    )
    rejections = re.search(
        rf'<a href="/practices/{bp.slug}/rejections">Rejections</a>.*?class="stat__value">(\d+)<', body, re.S
    )
    assert scrub and int(scrub.group(1)) == counts.get("scrubbed", 0) >= 1
    assert rejections and int(rejections.group(1)) == counts.get("rejected", 0)


# --- who may see what -----------------------------------------------------------------------------------------------


def pages_of(bp, claim_id: int, patient_id: int) -> list[str]:
    return [
        f"/practices/{bp.slug}/claims",
        f"/practices/{bp.slug}/claims?status=ready",
        f"/practices/{bp.slug}/claims/{claim_id}",
        f"/practices/{bp.slug}/rejections",
        f"/practices/{bp.slug}/charges/new",
        f"/practices/{bp.slug}/charges/new?patient_id={patient_id}",
    ]


def actions_of(bp, claim_id: int) -> list[str]:
    return [f"/practices/{bp.slug}/claims/{claim_id}/{action}" for action in ("scrub", "reopen", "submit")] + [
        f"/practices/{bp.slug}/charges/new?patient_id=1"
    ]


def test_another_company_gets_404_everywhere(app, services, factory, bp):
    claim_id = make_claim(services, factory, bp)
    with services.db.tenant_session(bp.slug) as s:
        patient_id = s.scalar(select(Claim.patient_id).where(Claim.id == claim_id))
    outsider = _client(app, factory.user("biller", company=factory.company()))
    for path in pages_of(bp, claim_id, patient_id):
        response = outsider.get(path)
        assert response.status_code == 404, path
        assert "Page not found" in text(response)
    token = csrf(outsider, "/home")
    for path in actions_of(bp, claim_id):
        assert outsider.post(path, data={"csrf_token": token}).status_code == 404, path
    assert status_of(services, bp, claim_id) == "ready"


def test_a_doctor_of_the_practice_is_not_allowed(app, services, factory, bp):
    claim_id = make_claim(services, factory, bp)
    with services.db.shared_session() as s:
        practice = s.scalar(select(Practice).where(Practice.slug == bp.slug))
    doctor = _client(app, factory.user("doctor", practice=practice))
    with services.db.tenant_session(bp.slug) as s:
        patient_id = s.scalar(select(Claim.patient_id).where(Claim.id == claim_id))
    for path in pages_of(bp, claim_id, patient_id):
        response = doctor.get(path)
        assert response.status_code == 403, path
        assert "Not allowed" in text(response)
    token = csrf(doctor, "/home")
    for path in actions_of(bp, claim_id):
        assert doctor.post(path, data={"csrf_token": token}).status_code == 403, path
    assert status_of(services, bp, claim_id) == "ready"
    assert f"/practices/{bp.slug}/claims" not in text(doctor.get("/home"))


def test_a_suspended_practice_shows_claims_without_actions(services, factory, bp, biller):
    claim_id = make_claim(services, factory, bp)
    with services.db.shared_session() as s:
        practice = s.scalar(select(Practice).where(Practice.slug == bp.slug))
        practice.status = "suspended"
        s.commit()
    try:
        page = biller.get(f"/practices/{bp.slug}/claims/{claim_id}")
        assert page.status_code == 200
        body = text(page)
        assert "Submit claim" not in body and "Scrub claim" not in body
        assert "Enter charges" not in text(biller.get(f"/practices/{bp.slug}/claims"))
        response = biller.post(f"/practices/{bp.slug}/claims/{claim_id}/submit", data={"csrf_token": csrf_from(page)})
        assert response.status_code == 403
    finally:
        with services.db.shared_session() as s:
            s.scalar(select(Practice).where(Practice.slug == bp.slug)).status = "active"
            s.commit()
    assert status_of(services, bp, claim_id) == "ready"
