"""835 intake through the `posting` queue, in a real worker: an upload routes each set and queues one posting job per
practice and set (the same file twice queues once and posts once); one file paying two practices of a company queues
two jobs and each practice gets its own; a set that names no practice waits in the unmatched queue until a user assigns
it, and is then posted into that practice."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from billing.edi_intake import release_quarantined
from billing.models import BillingIdentity, Deposit, RemittanceClaim
from integrations.x12.remit835 import parse_835
from tenants.models import BillingCompany
from tests.billing.factories import billing_practice, npi
from tests.billing.test_underpayments import submit_and_answer
from tests.conftest import PROJECT_ROOT, login

LINES = [
    {"procedure_code": "99213", "modifiers": ["25"], "units": 1, "diagnosis_pointers": [1, 2]},
    {"procedure_code": "36415", "units": 1, "diagnosis_pointers": [1]},
]


def _burst(env, queue: str = "posting") -> None:
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", queue],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]


def _upload(client, headers, text: str, query: str = "", env=None):
    """Upload: answered 202 at once (nothing parsed in the request); the intake job runs in a real worker on
    `default`; the outcome is read where the answer says to poll."""
    response = client.post(
        "/api/v1/edi" + query,
        headers=headers,
        data={"file": (io.BytesIO(text.encode()), "era.835")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert response.headers["Location"] == accepted["location"] and accepted["status"] == "queued"
    assert client.get(accepted["location"], headers=headers).get_json()["status"] == "queued"
    _burst(env, "default")
    outcome = client.get(accepted["location"], headers=headers).get_json()
    assert outcome["status"] == "done", outcome
    return outcome


def _posted(services, slug: str) -> tuple[int, list[int]]:
    """(deposits, claim ids posted) of a practice."""
    with services.db.tenant_session(slug) as s:
        deposits = s.scalar(select(func.count()).select_from(Deposit))
        claims = s.scalars(select(RemittanceClaim.claim_id).where(RemittanceClaim.outcome == "posted")).all()
        return deposits, sorted(claims)


def _job(client, headers, job_id: str) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()


@pytest.fixture()
def company_with_two(services, factory):
    first = billing_practice(services, factory)
    with services.db.shared_session() as s:
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == first.company_slug))
        s.expunge(company)
    second = billing_practice(services, factory, company=company)
    return first, second


def test_the_same_835_uploaded_twice_queues_one_job_and_posts_once(client, services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    claim_ids, text = submit_and_answer(services, bp, factory, tmp_path, visits=2, lines=LINES)
    headers = login(client, bp.biller_email)

    first = _upload(client, headers, text, env=env)
    assert first["applied"] == [] and first["unmatched"] == [] and first["duplicates"] == []
    (queued,) = first["queued"]
    (remittance,) = parse_835(text)
    assert queued["practice"] == bp.slug and queued["content_key"] == remittance.content_key
    assert queued["job_id"] == f"post-{bp.slug}-{remittance.content_key[:16]}" and not queued["already_queued"]
    assert services.storage.get(first["storage_key"]) == text.encode()
    assert _job(client, headers, queued["job_id"])["status"] == "queued"
    assert _posted(services, bp.slug) == (0, [])  # nothing posted inline

    second = _upload(client, headers, text, env=env)
    (again,) = second["queued"]
    assert again["job_id"] == queued["job_id"] and again["already_queued"]
    assert len(services.dispatcher.queue("posting").get_job_ids()) == 1

    _burst(env)
    job = _job(client, headers, queued["job_id"])
    assert job["status"] == "finished", job
    assert job["result"]["status"] == "posted" and job["result"]["claims_posted"] == len(claim_ids)
    assert _posted(services, bp.slug) == (1, sorted(claim_ids))

    # Once posted, the same file again is a duplicate: nothing queued.
    third = _upload(client, headers, text, env=env)
    assert third["queued"] == [] and [d["practice"] for d in third["duplicates"]] == [bp.slug]
    # And the job delivered again (a retry) posts nothing more.
    services.dispatcher.enqueue_now(
        "posting", "jobs.posting.post_remittance_set", bp.slug, first["storage_key"], remittance.content_key
    )
    _burst(env)
    assert _posted(services, bp.slug) == (1, sorted(claim_ids))


def test_one_file_for_two_practices_queues_a_job_for_each(client, services, factory, env, tmp_path, company_with_two):
    first, second = company_with_two
    ids_first, text_first = submit_and_answer(services, first, factory, tmp_path / "one", visits=2, lines=LINES)
    ids_second, text_second = submit_and_answer(services, second, factory, tmp_path / "two", visits=1, lines=LINES)
    both = text_first + text_second  # two interchanges in one file, one payee NPI each

    body = _upload(client, login(client, first.biller_email), both, env=env)
    assert body["unmatched"] == [] and body["duplicates"] == []
    assert sorted(q["practice"] for q in body["queued"]) == sorted([first.slug, second.slug])
    assert len({q["job_id"] for q in body["queued"]}) == 2

    _burst(env)
    assert _posted(services, first.slug) == (1, sorted(ids_first))
    assert _posted(services, second.slug) == (1, sorted(ids_second))


def test_an_unmatched_835_waits_in_the_queue_until_assigned(client, services, factory, env, tmp_path, world):
    bp = billing_practice(services, factory)
    claim_ids, text = submit_and_answer(services, bp, factory, tmp_path, visits=1, lines=LINES)
    # The practice's billing NPI changed since the claims went out: the 835's payee NPI names no practice now.
    with services.db.tenant_session(bp.slug) as s:
        s.get(BillingIdentity, 1).group_npi = npi()
        s.commit()
    headers = login(client, bp.biller_email)

    body = _upload(client, headers, text, env=env)
    assert body["queued"] == [] and body["applied"] == [] and body["unmatched"] == []
    # A payee NPI that is no practice's of the company: held for the operator, who knows it is this company's.
    (held,) = body["quarantined"]
    assert "payee NPI" in held["reason"]
    assert client.get("/api/v1/edi/unmatched", headers=headers).get_json() == []
    released = release_quarantined(
        services.db, services.storage, held["quarantine_id"], bp.company_slug, dispatcher=services.dispatcher
    )
    (unmatched,) = released["unmatched"]
    assert "no practice with billing NPI" in unmatched["reason"]
    unmatched_id = unmatched["unmatched_id"]

    listed = client.get("/api/v1/edi/unmatched", headers=headers).get_json()
    (row,) = listed
    assert row["id"] == unmatched_id and row["kind"] == "835" and row["assigned_practice"] is None
    assert row["payee_npi"] == parse_835(text)[0].payee_npi and row["storage_key"].startswith("quarantine/")

    # Another company's biller neither sees it nor can assign it; a practice of another company is refused.
    other = login(client, world.users["biller_y"])
    assert all(r["id"] != unmatched_id for r in client.get("/api/v1/edi/unmatched", headers=other).get_json())
    assert client.get(f"/api/v1/edi/unmatched?company={bp.company_slug}", headers=other).status_code == 404
    url = f"/api/v1/edi/unmatched/{unmatched_id}/assign"
    assert client.post(url, headers=other, json={"practice": world.practices["C"]}).status_code == 404
    assert client.post(url, headers=headers, json={"practice": world.practices["A"]}).status_code == 404
    assert client.get("/api/v1/edi/unmatched", headers=login(client, world.users["doctor_a"])).status_code == 403

    assigned = client.post(url, headers=headers, json={"practice": bp.slug})
    assert assigned.status_code == 200, assigned.get_json()
    result = assigned.get_json()
    assert result["status"] == "queued" and result["practice"] == bp.slug and result["job_id"].startswith("post-")
    assert client.post(url, headers=headers, json={"practice": bp.slug}).status_code == 409
    assert client.get("/api/v1/edi/unmatched", headers=headers).get_json() == []
    history = client.get("/api/v1/edi/unmatched?include_assigned=true", headers=headers).get_json()
    assert history[0]["assigned_practice"] == bp.slug and history[0]["job_id"] == result["job_id"]

    _burst(env)
    assert _job(client, headers, result["job_id"])["result"]["status"] == "posted"
    assert _posted(services, bp.slug) == (1, sorted(claim_ids))


def test_an_unmatched_277ca_is_applied_when_assigned(client, services, factory, tmp_path, env):
    bp = billing_practice(services, factory)
    claim_ids, _text = submit_and_answer(services, bp, factory, tmp_path, visits=1, lines=LINES)
    (ack,) = sorted((tmp_path / "acct" / "outbox").glob("*.277ca"))
    with services.db.tenant_session(bp.slug) as s:
        s.get(BillingIdentity, 1).group_npi = npi()
        s.commit()
    headers = login(client, bp.biller_email)
    body = _upload(client, headers, ack.read_text(), env=env)
    (held,) = body["quarantined"]
    released = release_quarantined(services.db, services.storage, held["quarantine_id"], bp.company_slug)
    (unmatched,) = released["unmatched"]
    assert unmatched["kind"] == "277CA" and unmatched["patient_control_number"] == str(claim_ids[0])
    result = client.post(
        f"/api/v1/edi/unmatched/{unmatched['unmatched_id']}/assign", headers=headers, json={"practice": bp.slug}
    ).get_json()
    assert result["status"] == "applied" and result["result"]["accepted"] == 1, result
    assert client.get("/api/v1/edi/unmatched", headers=headers).get_json() == []
