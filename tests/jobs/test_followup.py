"""Claim follow-up: the daily job function, run directly (and once by a real RQ worker), lists exactly the claims
submitted more than the payer's follow-up days ago (default 30, per payer enrolment) with no 277CA and no 835; running
it again adds nothing; an item resolves itself when a response arrives; one a biller closed stays closed. The
scheduled fan-out enqueues one job per practice under a deterministic id."""

from __future__ import annotations

import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

import jobs.followup as followup_job
from billing import claims as claim_service
from billing import followup, submissions
from billing.claim_status import transition
from billing.models import Claim, ClaimAcknowledgement, FollowUpItem, InboundFile
from jobs.runtime import Runtime
from jobs.schedule import SCHEDULE
from medbill.errors import Conflict, Invalid
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import PROJECT_ROOT


@pytest.fixture()
def job_runtime(monkeypatch, settings, services):
    rt = Runtime(settings=settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    monkeypatch.setattr(followup_job, "runtime", lambda: rt)
    return rt


@pytest.fixture(scope="module")
def submitted(services, factory):
    """Five claims sent to the clearinghouse: (bp, claim ids)."""
    bp = billing_practice(services, factory)
    ids = []
    with services.db.tenant_session(bp.slug) as s:
        for _ in range(5):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
                transition(s, claim, "ready", source="test")
                ids.append(claim.id)
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
    return bp, ids


def _age(s, claim_id: int, days: int) -> None:
    s.execute(update(Claim).where(Claim.id == claim_id).values(submitted_at=datetime.now(UTC) - timedelta(days=days)))


def _acknowledge(s, claim_id: int) -> None:
    inbound = InboundFile(kind="277", content_sha256=secrets.token_hex(32), storage_key="test/277")
    s.add(inbound)
    s.flush()
    s.add(ClaimAcknowledgement(claim_id=claim_id, inbound_file_id=inbound.id, accepted=True, payer_claim_number="X1"))


def _open(s) -> list[int]:
    return sorted(s.scalars(select(FollowUpItem.claim_id).where(FollowUpItem.status == "open")))


def test_job_lists_exactly_the_stale_claims_once(services, submitted, job_runtime):
    bp, (stale, fresh, answered, late_rule, closed_by_biller) = submitted
    with services.db.tenant_session(bp.slug) as s:
        _age(s, stale, 40)
        _age(s, fresh, 10)
        _age(s, answered, 40)
        _acknowledge(s, answered)
        _age(s, late_rule, 40)
        _age(s, closed_by_biller, 31)
        s.commit()

    report = followup_job.followup_practice(bp.slug)
    assert report["added"] == 3 and report["open"] == 3
    with services.db.tenant_session(bp.slug) as s:
        assert _open(s) == sorted([stale, late_rule, closed_by_biller])
        assert {i.days for i in s.scalars(select(FollowUpItem))} == {followup.DEFAULT_DAYS}
    again = followup_job.followup_practice(bp.slug)
    assert (again["added"], again["resolved"], again["open"]) == (0, 0, 3)

    # A response resolves the item; a biller's close keeps it closed while the claim stays unanswered.
    with services.db.tenant_session(bp.slug) as s:
        _acknowledge(s, stale)
        item_id = s.scalar(select(FollowUpItem.id).where(FollowUpItem.claim_id == closed_by_biller))
        with pytest.raises(Invalid):
            followup.close(s, bp.access, item_id, " ")
        followup.close(s, bp.access, item_id, "Called the payer: claim on file, in process")
        s.commit()
        with pytest.raises(Conflict):
            followup.close(s, bp.access, item_id, "again")
    report = followup_job.followup_practice(bp.slug)
    assert (report["added"], report["resolved"], report["open"]) == (0, 1, 1)
    with services.db.tenant_session(bp.slug) as s:
        assert _open(s) == [late_rule]
        resolutions = dict(s.execute(select(FollowUpItem.claim_id, FollowUpItem.resolution)).all())
        assert resolutions == {stale: "response", late_rule: None, closed_by_biller: "closed"}
        items, total = followup.list_items(s)
        assert total == 1 and items[0]["claim_id"] == late_rule and items[0]["days_out"] >= 40


def test_follow_up_days_per_payer(services, factory):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        patient = insured_patient(services, bp, factory)
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        _age(s, claim.id, 40)
        followup.set_days(s, bp.access, bp.payer_id, 50)
        with pytest.raises(Invalid):
            followup.set_days(s, bp.access, bp.payer_id, 0)
        assert followup.run(s)["added"] == 0
        followup.set_days(s, bp.access, bp.payer_id, 35)
        assert followup.run(s)["added"] == 1 and followup.days_for(s, bp.payer_id) == 35
        assert s.scalar(select(FollowUpItem.days).where(FollowUpItem.claim_id == claim.id)) == 35
        s.rollback()


def test_schedule_fans_out_daily_with_deterministic_ids(services, submitted, job_runtime):
    entry = next(e for e in SCHEDULE if e.name == "claim-follow-up")
    assert entry.func == "jobs.followup.followup_all_practices" and entry.cron.split()[2:] == ["*", "*", "*"]
    bp, _ids = submitted
    slugs = followup_job.followup_all_practices()
    assert bp.slug in slugs
    queue = job_runtime.dispatcher.queue("default")
    job_id = f"followup-{bp.slug}-{datetime.now(UTC):%Y%m%d}"
    job = queue.fetch_job(job_id)
    assert job is not None and job.args == (bp.slug,)
    for slug in slugs:
        queued = queue.fetch_job(f"followup-{slug}-{datetime.now(UTC):%Y%m%d}")
        if queued is not None:
            queued.delete()


def test_a_real_worker_runs_the_follow_up_job(services, factory, env):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        patient = insured_patient(services, bp, factory)
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        _age(s, claim.id, 31)
        s.commit()
    job = services.dispatcher.enqueue_now("default", "jobs.followup.followup_practice", bp.slug)
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", "default"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished" and job.return_value()["added"] == 1
    with services.db.tenant_session(bp.slug) as s:
        assert _open(s) == [claim.id]
