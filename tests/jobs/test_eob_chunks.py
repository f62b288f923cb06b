"""A large payment's EOBs render in chunks on the `eob` queue (one job per chunk of MEDBILL_EOB_CHUNK_CLAIMS claims
and one for the payment's EOB, each with a timeout sized to its claims); a retried chunk renders and adds nothing;
while the chunks wait, another practice's 835 posts first (workers serve `posting` before `eob`)."""

from __future__ import annotations

import dataclasses

import pytest
from rq.job import Job
from sqlalchemy import select

import jobs.eob
from billing.documents import eob_key
from billing.edi_intake import EOB_QUEUE, intake, queue_posting
from billing.models import Deposit, RemittanceClaim
from integrations.x12.remit835 import parse_835
from jobs.runtime import Runtime
from tests.billing.factories import billing_practice
from tests.billing.test_underpayments import submit_and_answer
from tests.faults.support import burst

CHUNK = 2


@pytest.fixture()
def empty_queues(services):
    for name in ("posting", "default", EOB_QUEUE):
        services.dispatcher.queue(name).empty()


def _posted_payment(services, factory, root, visits: int) -> tuple[str, int, list[int]]:
    bp = billing_practice(services, factory)
    _ids, era = submit_and_answer(services, bp, factory, root, visits=visits)
    key = f"practices/{bp.slug}/edi/inbound/large.835"
    services.storage.put(key, era.encode(), content_type="application/edi-x12")
    intake(services.db, era.encode(), storage_key=key, slugs=[bp.slug])
    with services.db.tenant_session(bp.slug) as s:
        deposit_id = s.scalar(select(Deposit.id))
        posted = s.scalars(select(RemittanceClaim.claim_id).where(RemittanceClaim.outcome == "posted")).all()
    return bp.slug, deposit_id, sorted(posted)


def test_a_large_payments_eobs_render_in_chunks_behind_another_practices_posting(
    services, factory, env, tmp_path, empty_queues
):
    slug, deposit_id, posted = _posted_payment(services, factory, tmp_path / "large", visits=5)
    assert len(posted) == 5
    # Another practice's 835, stored and routed, its posting not yet run.
    other = billing_practice(services, factory)
    _other_ids, other_era = submit_and_answer(services, other, factory, tmp_path / "other", visits=1)
    other_key = f"practices/{other.slug}/edi/inbound/other.835"
    services.storage.put(other_key, other_era.encode(), content_type="application/edi-x12")

    # The job posting queued (render_eobs) splits the payment: 3 chunks of at most 2 claims and the payment's EOB.
    rt = Runtime(
        settings=dataclasses.replace(services.settings, eob_chunk_claims=CHUNK), db=services.db,
        storage=services.storage, dispatcher=services.dispatcher,
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs.eob, "runtime", lambda: rt)
        split = jobs.eob.render_eobs(slug, deposit_id)
        assert split == {"deposit_id": deposit_id, "status": "split", "parts": 3, "chunk_claims": CHUNK, "queued": 4}
        assert jobs.eob.render_eobs(slug, deposit_id)["queued"] == 0  # the same split again queues nothing
    eob_queue = services.dispatcher.queue(EOB_QUEUE)
    part_ids = [jobs.eob.part_job_id(slug, deposit_id, p) for p in (0, 1, 2, "payment")]
    assert sorted(eob_queue.get_job_ids()) == sorted(part_ids)
    timeouts = {job_id: eob_queue.fetch_job(job_id).timeout for job_id in part_ids}
    assert timeouts[part_ids[0]] == jobs.eob.claims_timeout(2) and timeouts[part_ids[2]] == jobs.eob.claims_timeout(1)
    assert timeouts[part_ids[3]] == jobs.eob.claims_timeout(5)

    # Queued after the chunks, the other practice's posting still runs first.
    (remittance,) = parse_835(other_era)
    posting_id, _ = queue_posting(services.dispatcher, other.slug, other_key, remittance.content_key)
    burst({**env, "MEDBILL_EOB_CHUNK_CLAIMS": str(CHUNK)}, "posting", EOB_QUEUE)

    redis = services.dispatcher.redis
    posting = Job.fetch(posting_id, connection=redis)
    assert posting.get_status() == "finished" and posting.return_value()["status"] == "posted"
    parts = [Job.fetch(job_id, connection=redis) for job_id in part_ids]
    assert all(p.get_status() == "finished" for p in parts), [(p.id, p.get_status()) for p in parts]
    assert all(posting.ended_at <= p.started_at for p in parts)
    assert [p.return_value()["rendered"] for p in parts[:3]] == [2, 2, 1]
    for claim_id in posted:
        assert services.storage.exists(eob_key(slug, deposit_id, claim_id))
    assert services.storage.exists(eob_key(slug, deposit_id))

    # A chunk run again (a retry after a lost worker) finds its EOBs stored: nothing rendered, nothing added.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs.eob, "runtime", lambda: rt)
        again = jobs.eob.render_eob_part(slug, deposit_id, 1)
    assert again == {"deposit_id": deposit_id, "part": 1, "claim_eobs": 2, "rendered": 0, "skipped": 2}


def test_a_small_payments_eobs_render_in_one_job(services, factory, tmp_path, empty_queues):
    slug, deposit_id, posted = _posted_payment(services, factory, tmp_path, visits=2)
    rt = Runtime(settings=services.settings, db=services.db, storage=services.storage, dispatcher=services.dispatcher)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jobs.eob, "runtime", lambda: rt)
        first = jobs.eob.render_eobs(slug, deposit_id)
        second = jobs.eob.render_eobs(slug, deposit_id)
    assert (first["rendered"], first["claim_eobs"]) == (len(posted), len(posted))
    assert (second["rendered"], second["skipped"]) == (0, len(posted))
    assert services.dispatcher.queue(EOB_QUEUE).get_job_ids() == []
