"""POST /api/v1/edi: a company-level upload of a 277CA is routed to the practice by its billing NPI and applied;
foreign companies and malformed files are refused."""

from __future__ import annotations

import io

from sqlalchemy import select

from billing import claims as claim_service
from billing import submissions
from billing.claim_status import transition
from billing.models import Claim
from integrations.sandbox import SandboxConfig, process_inbox_once
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import login
from tests.faults.support import burst


def _answered(services, factory, tmp_path):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
        claim_id = claim.id
    inbox = tmp_path / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=tmp_path))
    return bp, claim_id, tmp_path / "acct" / "outbox"


def _post(client, headers, data: bytes, query: str = ""):
    return client.post(
        "/api/v1/edi" + query,
        headers=headers,
        data={"file": (io.BytesIO(data), "answer.x12")},
        content_type="multipart/form-data",
    )


def _intake(client, headers, data: bytes, env) -> dict:
    """An upload answered 202, read by the intake job in a real worker, its outcome polled."""
    response = _post(client, headers, data)
    assert response.status_code == 202, response.get_json()
    burst(env, "default")
    return client.get(response.headers["Location"], headers=headers).get_json()


def test_upload_routes_and_applies_once(client, services, factory, tmp_path, world, env):
    bp, claim_id, outbox = _answered(services, factory, tmp_path)
    headers = login(client, bp.biller_email)
    for path in sorted(outbox.glob("*.999")) + sorted(outbox.glob("*.277ca")):
        body = _intake(client, headers, path.read_bytes(), env)
        assert body["status"] == "done", body
        assert [entry["practice"] for entry in body["applied"]] == [bp.slug] and body["unmatched"] == []
        assert services.storage.get(body["storage_key"]) == path.read_bytes()
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(Claim.status).where(Claim.id == claim_id)) == "accepted"
    again = _intake(client, headers, next(outbox.glob("*.277ca")).read_bytes(), env)
    assert again["applied"] == [] and again["duplicates"]

    # Another company's biller: the file names no practice of theirs, so it is held for the operator, not put in
    # their unmatched queue (from which they could assign it and read it).
    other = login(client, world.users["biller_y"])
    foreign = _intake(client, other, next(outbox.glob("*.277ca")).read_bytes(), env)
    assert foreign["applied"] == [] and foreign["unmatched"] == [] and foreign["quarantined"]
    assert client.get("/api/v1/edi/unmatched", headers=other).get_json() == []
    assert _post(client, other, b"ISA", f"?company={bp.company_slug}").status_code == 404


def test_bad_uploads(client, world, env):
    headers = login(client, world.users["biller_x"])
    body = _intake(client, headers, b"ISA*00*garbage", env)
    assert body["status"] == "refused" and "file" in body["errors"] and body["error"]
    doctor = login(client, world.users["doctor_a"])
    assert _post(client, doctor, b"ISA").status_code == 403
    assert client.post("/api/v1/edi", headers=headers).get_json()["errors"] == {"file": ["required"]}
