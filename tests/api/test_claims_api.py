"""Claims API over HTTP: charge entry → claims → scrub → ready, list filters without N+1 queries, claim detail
(history, findings, acknowledgements, files), line moves, corrections, manual status changes, submissions queued only
after commit, the rejection work queue, audit of every read, and tenant isolation."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import event, select

from billing import claims as claim_service
from billing.models import (
    Claim,
    ClaimAcknowledgement,
    ClaimStatusChange,
    InboundFile,
    Submission,
    SubmissionClaim,
)
from integrations.storage import practice_key
from tenants.models import AuditEntry, Practice
from tenants.registry import get_practice
from tests.billing.factories import billing_practice, insured_patient, shared_payer, visit
from tests.conftest import login


@pytest.fixture(scope="module")
def bp(services, factory):
    return billing_practice(services, factory)


@pytest.fixture()
def headers(client, bp):
    return login(client, bp.biller_email)


def _base(bp) -> str:
    return f"/api/v1/practices/{bp.slug}"


def _day(days_ago: int) -> str:
    return (date.today() - timedelta(days=days_ago)).isoformat()


def _encounter(bp, patient_id: int, *, days_ago: int = 5, lines=None) -> dict:
    return {
        "patient_id": patient_id,
        "date_of_service": _day(days_ago),
        "place_of_service": "11",
        "rendering_provider_id": bp.provider_id,
        "diagnoses": ["E11.9", "I10"],
        "note": "follow-up",
        "lines": lines
        or [
            {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1, 2]},
            {"procedure_code": "36415", "diagnosis_pointers": [1]},
        ],
    }


def _claims_for(services, bp, patient_id: int, *, split: str = "none", **visit_kw) -> list[int]:
    encounter_id = visit(services, bp, patient_id, **visit_kw)
    with services.db.tenant_session(bp.slug) as s:
        ids = [c.id for c in claim_service.create_claims(s, bp.access, encounter_id, split)]
        s.commit()
    return ids


def _audit_actions(services, slug: str) -> set[tuple[str, str | None, str]]:
    with services.db.shared_session() as s:
        practice_id = s.scalar(select(Practice.id).where(Practice.slug == slug))
        rows = s.execute(
            select(AuditEntry.object_type, AuditEntry.object_id, AuditEntry.action).where(
                AuditEntry.practice_id == practice_id
            )
        )
        return {tuple(r) for r in rows}


def _reject(services, slug: str, claim_id: int, reasons: list[str], *, rejected_at: datetime | None = None) -> None:
    """What a 277CA would do: the claim rejected with the payer's reasons (rows written directly)."""
    at = rejected_at or datetime.now(UTC)
    with services.db.tenant_session(slug) as s:
        claim = s.get(Claim, claim_id)
        s.add(
            ClaimStatusChange(
                claim_id=claim.id,
                from_status=claim.status,
                to_status="rejected",
                source="277ca",
                reason="; ".join(reasons),
                at=at,
            )
        )
        claim.status = "rejected"
        inbound = InboundFile(
            kind="277CA",
            content_sha256=hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
            storage_key=f"inbound/{secrets.token_hex(4)}.x12",
        )
        s.add(inbound)
        s.flush()
        s.add(
            ClaimAcknowledgement(claim_id=claim.id, inbound_file_id=inbound.id, accepted=False, reasons=reasons, at=at)
        )
        s.commit()


def test_encounter_to_ready_claim_over_http(client, services, factory, bp, headers):
    patient_id = insured_patient(services, bp, factory)
    created = client.post(f"{_base(bp)}/encounters", headers=headers, json=_encounter(bp, patient_id))
    assert created.status_code == 201, created.get_json()
    encounter = created.get_json()
    assert [(line["procedure_code"], line["charge"], line["units"]) for line in encounter["lines"]] == [
        ("99213", "150.00", "1.000"),
        ("36415", "25.00", "1.000"),
    ]
    assert encounter["diagnoses"] == ["E11.9", "I10"] and encounter["claim_ids"] == []

    built = client.post(f"{_base(bp)}/encounters/{encounter['id']}/claims", headers=headers, json={})
    assert built.status_code == 201, built.get_json()
    [claim] = built.get_json()
    assert claim["status"] == "draft" and claim["total_charge"] == "175.00" and claim["payer"]["id"] == bp.payer_id
    assert claim["patient_control_number"] == str(claim["id"])
    assert [line["line_item_control_number"] for line in claim["lines"]] == [str(line["id"]) for line in claim["lines"]]
    again = client.post(f"{_base(bp)}/encounters/{encounter['id']}/claims", headers=headers, json={})
    assert again.status_code == 409

    scrubbed = client.post(f"{_base(bp)}/claims/{claim['id']}/scrub", headers=headers)
    assert scrubbed.status_code == 200, scrubbed.get_json()
    assert scrubbed.get_json() == {"claim_id": claim["id"], "status": "ready", "findings": []}

    detail = client.get(f"{_base(bp)}/claims/{claim['id']}", headers=headers)
    assert detail.status_code == 200
    body = detail.get_json()
    assert body["status"] == "ready" and body["frequency_code"] == "1" and body["payer_claim_number"] is None
    assert body["payer"]["name"] == "Acme Health Plan" and body["patient"]["id"] == patient_id
    assert [(h["from"], h["to"], h["source"]) for h in body["history"]] == [
        (None, "draft", "user"),
        ("draft", "ready", "scrubber"),
    ]
    assert all(h["user_id"] is not None and h["at"] for h in body["history"])
    assert body["findings"] == [] and body["acknowledgements"] == [] and body["files"] == []
    line = body["lines"][0]
    assert (line["procedure_code"], line["modifiers"], line["units"], line["charge"]) == (
        "99213",
        ["25"],
        "1.000",
        "150.00",
    )
    assert line["diagnosis_pointers"] == [1, 2] and line["date_of_service"] == _day(5)

    read_back = client.get(f"{_base(bp)}/encounters/{encounter['id']}", headers=headers).get_json()
    assert read_back["claim_ids"] == [claim["id"]]
    actions = _audit_actions(services, bp.slug)
    assert ("encounter", str(encounter["id"]), "read") in actions
    assert ("claim", str(claim["id"]), "read") in actions
    assert ("encounter", str(encounter["id"]), "create") in actions


def test_charge_entry_errors_come_back_by_field(client, services, factory, bp, headers):
    patient_id = insured_patient(services, bp, factory)
    body = _encounter(bp, patient_id, lines=[{"procedure_code": "9921", "modifiers": ["2"], "diagnosis_pointers": [3]}])
    response = client.post(f"{_base(bp)}/encounters", headers=headers, json=body)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert {"lines[0].procedure_code", "lines[0].modifiers", "lines[0].diagnosis_pointers"} <= set(errors)
    missing = client.post(f"{_base(bp)}/encounters", headers=headers, json={"patient_id": patient_id})
    assert missing.status_code == 422 and {"date_of_service", "lines"} <= set(missing.get_json()["errors"])
    assert client.get(f"{_base(bp)}/encounters/999999999", headers=headers).status_code == 404


def test_scrub_findings_show_in_the_detail(client, services, factory, bp, headers):
    stranger = shared_payer(services, name="Not Enrolled Plan")
    patient_id = insured_patient(services, bp, factory, payer_id=stranger.id)
    [claim_id] = _claims_for(services, bp, patient_id)
    scrubbed = client.post(f"{_base(bp)}/claims/{claim_id}/scrub", headers=headers).get_json()
    assert scrubbed["status"] == "scrubbed"
    assert {(f["rule"], f["severity"], f["field"]) for f in scrubbed["findings"]} == {
        ("payer_enrolled", "error", "payer")
    }
    detail = client.get(f"{_base(bp)}/claims/{claim_id}", headers=headers).get_json()
    assert [f["rule"] for f in detail["findings"]] == ["payer_enrolled"]
    assert detail["history"][-1]["to"] == "scrubbed" and "1 error" in detail["history"][-1]["reason"]


def test_batch_scrub_counts_by_status(client, services, factory):
    bp2 = billing_practice(services, factory)
    headers = login(client, bp2.biller_email)
    clean = [_claims_for(services, bp2, insured_patient(services, bp2, factory))[0] for _ in range(2)]
    stranger = shared_payer(services)
    dirty = _claims_for(services, bp2, insured_patient(services, bp2, factory, payer_id=stranger.id))[0]
    chosen = client.post(f"{_base(bp2)}/claims/scrub", headers=headers, json={"claim_ids": [clean[0]]})
    assert chosen.status_code == 200 and chosen.get_json() == {"total": 1, "counts": {"ready": 1}, "skipped": []}
    everything = client.post(f"{_base(bp2)}/claims/scrub", headers=headers, json={})
    assert everything.get_json() == {"total": 2, "counts": {"ready": 1, "scrubbed": 1}, "skipped": []}
    with services.db.tenant_session(bp2.slug) as s:
        assert {s.get(Claim, i).status for i in clean} == {"ready"} and s.get(Claim, dirty).status == "scrubbed"
    unknown = client.post(f"{_base(bp2)}/claims/scrub", headers=headers, json={"claim_ids": [999999999]})
    assert unknown.status_code == 404


def test_list_filters(client, services, factory):
    bp2 = billing_practice(services, factory)
    headers = login(client, bp2.biller_email)
    other = shared_payer(services, name="Other Plan")
    recent = _claims_for(services, bp2, insured_patient(services, bp2, factory), days_ago=5)[0]
    older_patient = insured_patient(services, bp2, factory)
    older = _claims_for(services, bp2, older_patient, days_ago=40)[0]
    elsewhere = _claims_for(services, bp2, insured_patient(services, bp2, factory, payer_id=other.id), days_ago=20)[0]
    client.post(f"{_base(bp2)}/claims/{recent}/scrub", headers=headers)

    def ids(**query) -> list[int]:
        response = client.get(f"{_base(bp2)}/claims", headers=headers, query_string=query)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["meta"]["total"] == len(body["items"])
        return [c["id"] for c in body["items"]]

    assert ids() == [elsewhere, older, recent]  # newest first
    assert ids(status="ready") == [recent]
    assert ids(status="draft") == [elsewhere, older]
    assert ids(payer_id=other.id) == [elsewhere]
    assert ids(payer_id=bp2.payer_id) == [older, recent]
    assert ids(date_from=_day(25)) == [elsewhere, recent]
    assert ids(date_from=_day(45), date_to=_day(30)) == [older]
    assert ids(patient_id=older_patient) == [older]
    assert ids(rendering_provider_id=bp2.provider_id, status="ready") == [recent]
    page = client.get(f"{_base(bp2)}/claims?per_page=2&page=2", headers=headers).get_json()
    assert [c["id"] for c in page["items"]] == [recent] and page["meta"] == {"page": 2, "per_page": 2, "total": 3}
    item = client.get(f"{_base(bp2)}/claims?status=ready", headers=headers).get_json()["items"][0]
    assert item["total_charge"] == "175.00" and item["line_count"] == 2 and item["date_of_service"] == _day(5)
    assert item["payer"]["id"] == bp2.payer_id and item["patient"]["last_name"] == "Lee"
    assert client.get(f"{_base(bp2)}/claims?status=nonsense", headers=headers).status_code == 422
    assert client.get(f"{_base(bp2)}/claims?date_from=yesterday", headers=headers).status_code == 422
    assert ("claim", None, "list") in _audit_actions(services, bp2.slug)


def test_listing_claims_does_not_query_per_claim(client, services, factory):
    bp2 = billing_practice(services, factory)
    headers = login(client, bp2.biller_email)
    five_lines = [
        {"procedure_code": "99213", "units": 1, "diagnosis_pointers": [1], "date_of_service": _day(10 + n)}
        for n in range(5)
    ]
    engine = services.db.engine
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def measure() -> tuple[int, int]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            response = client.get(f"{_base(bp2)}/claims?per_page=100", headers=headers)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert response.status_code == 200
        return len(statements), len(response.get_json()["items"])

    _claims_for(services, bp2, insured_patient(services, bp2, factory), split="date_of_service", lines=five_lines)
    client.get(f"{_base(bp2)}/claims", headers=headers)  # warm-up
    few, listed = measure()
    assert listed == 5
    for _ in range(4):
        patient = insured_patient(services, bp2, factory)
        _claims_for(services, bp2, patient, split="date_of_service", lines=five_lines)
    many, listed = measure()
    assert listed == 25
    assert few == many, statements


def test_move_line_between_claims(client, services, factory, bp, headers):
    patient_id = insured_patient(services, bp, factory)
    lines = [
        {"procedure_code": "99213", "units": 1, "diagnosis_pointers": [1]},
        {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
        {"procedure_code": "93000", "units": 1, "diagnosis_pointers": [2], "date_of_service": _day(4)},
    ]
    first, second = _claims_for(services, bp, patient_id, split="date_of_service", lines=lines)
    source = client.get(f"{_base(bp)}/claims/{first}", headers=headers).get_json()
    assert len(source["lines"]) == 2
    client.post(f"{_base(bp)}/claims/{second}/scrub", headers=headers)
    moving = source["lines"][1]["id"]

    moved = client.post(f"{_base(bp)}/claims/lines/{moving}/move", headers=headers, json={"to_claim_id": second})
    assert moved.status_code == 200, moved.get_json()
    body = moved.get_json()
    assert body["source"]["id"] == first and body["target"]["id"] == second
    assert [line["procedure_code"] for line in body["source"]["lines"]] == ["99213"]
    assert body["source"]["total_charge"] == "150.00"
    assert sorted(line["procedure_code"] for line in body["target"]["lines"]) == ["36415", "93000"]
    assert [line["line_number"] for line in body["target"]["lines"]] == [1, 2]
    assert body["target"]["status"] == "draft" and body["target"]["total_charge"] == "105.00"

    last = body["source"]["lines"][0]["id"]
    emptied = client.post(f"{_base(bp)}/claims/lines/{last}/move", headers=headers, json={"to_claim_id": second})
    assert emptied.status_code == 409
    assert (
        client.post(
            f"{_base(bp)}/claims/lines/999999999/move", headers=headers, json={"to_claim_id": second}
        ).status_code
        == 404
    )
    assert client.post(f"{_base(bp)}/claims/lines/{last}/move", headers=headers, json={}).status_code == 422


def test_correction_needs_a_payer_claim_number(client, services, factory, bp, headers):
    [claim_id] = _claims_for(services, bp, insured_patient(services, bp, factory))
    refused = client.post(
        f"{_base(bp)}/claims/{claim_id}/corrections",
        headers=headers,
        json={"frequency_code": "7", "reason": "wrong units"},
    )
    assert refused.status_code == 409
    assert "payer_claim_number" in refused.get_json()["errors"]
    bad = client.post(
        f"{_base(bp)}/claims/{claim_id}/corrections", headers=headers, json={"frequency_code": "1", "reason": "x"}
    )
    assert bad.status_code == 422

    with services.db.tenant_session(bp.slug) as s:
        claim = s.get(Claim, claim_id)
        claim.status, claim.payer_claim_number = "accepted", "PCN-778"
        s.commit()
    replacement = client.post(
        f"{_base(bp)}/claims/{claim_id}/corrections",
        headers=headers,
        json={"frequency_code": "7", "reason": "wrong units"},
    )
    assert replacement.status_code == 201, replacement.get_json()
    out = replacement.get_json()
    assert out["frequency_code"] == "7" and out["original_claim_id"] == claim_id
    assert out["payer_claim_number"] == "PCN-778" and out["status"] == "draft" and len(out["lines"]) == 2


def test_manual_status_changes(client, services, factory, bp, headers):
    [claim_id] = _claims_for(services, bp, insured_patient(services, bp, factory))
    _reject(services, bp.slug, claim_id, ["Subscriber not found"])
    reopened = client.post(
        f"{_base(bp)}/claims/{claim_id}/status", headers=headers, json={"to": "draft", "reason": "fixing the member id"}
    )
    assert reopened.status_code == 200, reopened.get_json()
    assert reopened.get_json()["status"] == "draft"
    history = client.get(f"{_base(bp)}/claims/{claim_id}", headers=headers).get_json()["history"]
    assert (history[-1]["from"], history[-1]["to"], history[-1]["source"]) == ("rejected", "draft", "user")
    assert history[-1]["reason"] == "fixing the member id" and history[-1]["user_id"] is not None

    assert (
        client.post(
            f"{_base(bp)}/claims/{claim_id}/status", headers=headers, json={"to": "paid", "reason": "x"}
        ).status_code
        == 422
    )
    closed = client.post(
        f"{_base(bp)}/claims/{claim_id}/status", headers=headers, json={"to": "closed", "reason": "dup"}
    )
    assert closed.status_code == 200 and closed.get_json()["status"] == "closed"
    again = client.post(f"{_base(bp)}/claims/{claim_id}/status", headers=headers, json={"to": "draft", "reason": "x"})
    assert again.status_code == 409
    assert client.post(f"{_base(bp)}/claims/{claim_id}/scrub", headers=headers).status_code == 409


def test_rejection_queue(client, services, factory):
    bp2 = billing_practice(services, factory)
    headers = login(client, bp2.biller_email)
    newer_patient = insured_patient(services, bp2, factory)
    newer = _claims_for(services, bp2, newer_patient)[0]
    older = _claims_for(services, bp2, insured_patient(services, bp2, factory))[0]
    _claims_for(services, bp2, insured_patient(services, bp2, factory))  # stays draft: not in the queue
    now = datetime.now(UTC)
    _reject(services, bp2.slug, newer, ["Subscriber ID invalid", "Check the date of birth"], rejected_at=now)
    _reject(services, bp2.slug, older, ["Entity not eligible"], rejected_at=now - timedelta(days=2))

    response = client.get(f"{_base(bp2)}/rejections", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [i["claim_id"] for i in body["items"]] == [older, newer] and body["meta"]["total"] == 2
    item = body["items"][1]
    assert item["reasons"] == ["Subscriber ID invalid", "Check the date of birth"]
    assert item["patient"]["id"] == newer_patient and item["patient"]["last_name"] == "Lee"
    assert item["payer"]["id"] == bp2.payer_id and item["total_charge"] == "175.00"
    assert item["rejected_at"] and item["acknowledged_at"]

    detail = client.get(f"{_base(bp2)}/claims/{newer}", headers=headers).get_json()
    assert detail["acknowledgements"][0]["accepted"] is False
    assert detail["acknowledgements"][0]["reasons"] == ["Subscriber ID invalid", "Check the date of birth"]
    assert ("claim", None, "list") in _audit_actions(services, bp2.slug)


def _queued(services) -> set[str]:
    return set(Queue("submission", connection=services.redis).job_ids)


def test_submission_is_queued_after_commit_only(client, services, factory, bp, headers):
    [claim_id] = _claims_for(services, bp, insured_patient(services, bp, factory))
    before = _queued(services)
    refused = client.post(f"{_base(bp)}/submissions", headers=headers, json={"claim_ids": "all"})
    assert refused.status_code == 422
    unknown = client.post(f"{_base(bp)}/submissions", headers=headers, json={"claim_ids": [claim_id, 999999999]})
    assert unknown.status_code == 422 and "claim_ids" in unknown.get_json()["errors"]
    assert _queued(services) == before

    accepted = client.post(f"{_base(bp)}/submissions", headers=headers, json={})
    assert accepted.status_code == 202, accepted.get_json()
    job_id = accepted.get_json()["job_id"]
    chosen = client.post(f"{_base(bp)}/submissions", headers=headers, json={"claim_ids": [claim_id]})
    assert chosen.status_code == 202
    chosen_id = chosen.get_json()["job_id"]
    try:
        assert _queued(services) - before == {job_id, chosen_id}
        job = Job.fetch(job_id, connection=services.redis)
        assert job.func_name == "jobs.submission.submit_claims"
        assert job.args[:2] == (bp.slug, None)
        assert job.meta["kind"] == "submission" and job.meta["practice"] == bp.slug
        assert job.meta["user_id"] == job.args[2]
        assert Job.fetch(chosen_id, connection=services.redis).args[1] == [claim_id]
    finally:
        for jid in (job_id, chosen_id):
            Job.fetch(jid, connection=services.redis).delete()
    assert _queued(services) == before


def test_submissions_list_and_detail_with_download_links(client, services, factory, bp, headers):
    [claim_id] = _claims_for(services, bp, insured_patient(services, bp, factory))
    filename = f"837P_{secrets.token_hex(4)}.x12"
    key = practice_key(bp.slug, "submissions", filename)
    services.storage.put(key, b"ISA*00*~", content_type="application/edi-x12")
    with services.db.tenant_session(bp.slug) as s:
        icn = int(secrets.randbelow(10**8)) + 1
        sub = Submission(
            clearinghouse_name="sandbox",
            interchange_control_number=icn,
            group_control_number=icn,
            filename=filename,
            storage_key=key,
            file_sha256="0" * 64,
            status="transmitted",
            claim_count=1,
            total_charge=Decimal("175.00"),
            ack_detail={"999": "accepted"},
            transmitted_at=datetime.now(UTC),
        )
        s.add(sub)
        s.flush()
        s.add(SubmissionClaim(submission_id=sub.id, claim_id=claim_id, transaction_control_number="000000001"))
        s.get(Claim, claim_id).status = "submitted"
        s.commit()
        sub_id = sub.id

    listed = client.get(f"{_base(bp)}/submissions", headers=headers).get_json()
    assert listed["items"][0]["id"] == sub_id and listed["items"][0]["total_charge"] == "175.00"
    detail = client.get(f"{_base(bp)}/submissions/{sub_id}", headers=headers)
    assert detail.status_code == 200
    body = detail.get_json()
    assert body["claims"] == [{"claim_id": claim_id, "status": "submitted", "transaction_control_number": "000000001"}]
    assert body["ack_detail"] == {"999": "accepted"} and body["download_url"].startswith("http")
    files = client.get(f"{_base(bp)}/claims/{claim_id}", headers=headers).get_json()["files"]
    assert [(f["id"], f["filename"], f["interchange_control_number"]) for f in files] == [(sub_id, filename, icn)]
    assert files[0]["download_url"].startswith("http") and filename in files[0]["download_url"]
    assert client.get(f"{_base(bp)}/submissions/999999999", headers=headers).status_code == 404


def _claim_endpoints(base: str, encounter_id: int, claim_id: int, line_id: int, patient_id: int, provider_id: int):
    encounter = {
        "patient_id": patient_id,
        "date_of_service": _day(3),
        "place_of_service": "11",
        "rendering_provider_id": provider_id,
        "diagnoses": ["I10"],
        "lines": [{"procedure_code": "99213", "diagnosis_pointers": [1]}],
    }
    return [
        ("POST", f"{base}/encounters", encounter),
        ("GET", f"{base}/encounters/{encounter_id}", None),
        ("POST", f"{base}/encounters/{encounter_id}/claims", {"split": "none"}),
        ("GET", f"{base}/claims", None),
        ("GET", f"{base}/claims?status=draft", None),
        ("GET", f"{base}/claims/{claim_id}", None),
        ("POST", f"{base}/claims/{claim_id}/scrub", None),
        ("POST", f"{base}/claims/scrub", {}),
        ("POST", f"{base}/claims/lines/{line_id}/move", {"to_claim_id": claim_id}),
        ("POST", f"{base}/claims/{claim_id}/corrections", {"frequency_code": "8", "reason": "x"}),
        ("POST", f"{base}/claims/{claim_id}/status", {"to": "closed", "reason": "x"}),
        ("POST", f"{base}/submissions", {}),
        ("GET", f"{base}/submissions", None),
        ("GET", f"{base}/submissions/1", None),
        ("GET", f"{base}/rejections", None),
    ]


def test_other_tenants_get_404_and_roles_without_claims_rights_403(client, services, factory, world, bp):
    patient_id = insured_patient(services, bp, factory)
    encounter_id = visit(services, bp, patient_id)
    with services.db.tenant_session(bp.slug) as s:
        [claim] = claim_service.create_claims(s, bp.access, encounter_id)
        s.commit()
        claim_id, line_id = claim.id, claim.lines[0].id
    endpoints = _claim_endpoints(_base(bp), encounter_id, claim_id, line_id, patient_id, bp.provider_id)
    before = _queued(services)

    for role in ("biller_y", "admin_x", "agency"):
        headers = login(client, world.users[role])
        for method, url, body in endpoints:
            response = client.open(url, method=method, headers=headers, json=body)
            assert response.status_code == 404, (role, method, url, response.status_code)
            assert response.get_json()["code"] == "not_found"
            assert "Lee" not in response.get_data(as_text=True)

    with services.db.shared_session() as s:
        practice = get_practice(s, bp.slug)
    doctor = login(client, factory.user("doctor", practice=practice))
    collector = login(client, factory.user("agency", agency=factory.agency([bp.slug])))
    for headers in (doctor, collector):
        for method, url, body in endpoints:
            response = client.open(url, method=method, headers=headers, json=body)
            assert response.status_code == 403, (method, url, response.status_code)
            assert "Lee" not in response.get_data(as_text=True)

    assert _queued(services) == before
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, claim_id).status == "draft"
        assert len(s.get(Claim, claim_id).lines) == 2
