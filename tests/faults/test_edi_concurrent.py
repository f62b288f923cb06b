"""The same 835 uploaded five times at once (five threads, each its own client and request) posts once: the posting
job has a deterministic id (one queued at most), and the posting records the set by its content before it posts."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import func, select

from billing.models import Deposit, InboundFile, LedgerEntry, RemittanceClaim
from tests.billing.factories import billing_practice
from tests.billing.test_underpayments import submit_and_answer
from tests.conftest import login
from tests.faults.support import burst
from tests.jobs.test_posting_job import LINES


def test_the_same_835_uploaded_five_times_concurrently_posts_once(app, services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    claim_ids, text = submit_and_answer(services, bp, factory, tmp_path, visits=3, lines=LINES)
    headers = login(app.test_client(), bp.biller_email)
    barrier = Barrier(5)

    def upload(_: int):
        client = app.test_client()
        barrier.wait()  # all five requests in flight together
        response = client.post("/api/v1/edi", headers=headers, data={"file": (io.BytesIO(text.encode()), "era.835")},
                               content_type="multipart/form-data")  # fmt: skip
        return response.status_code, response.get_json()

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(upload, range(5)))
    assert [status for status, _ in answers] == [202] * 5, answers
    burst(env, "default")  # the five intake jobs read the file: each routes the set and queues (or finds) its posting
    client = app.test_client()
    outcomes = [client.get(body["location"], headers=headers).get_json() for _, body in answers]
    assert [o["status"] for o in outcomes] == ["done"] * 5, outcomes
    job_ids = {entry["job_id"] for body in outcomes for entry in body["queued"]}
    assert len(job_ids) == 1  # one posting job for the set, however many uploads queued or found it
    burst(env, "posting", "default")
    burst(env, "posting", "default")  # uploads that raced the first job queue nothing new; a second pass finds none
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(Deposit)) == 1
        assert s.scalar(select(func.count()).select_from(InboundFile).where(InboundFile.kind == "835")) == 1
        posted = s.scalars(select(RemittanceClaim.claim_id).where(RemittanceClaim.outcome == "posted")).all()
        assert sorted(posted) == sorted(claim_ids)
        assert s.scalar(select(func.count()).select_from(RemittanceClaim)) == len(claim_ids)  # each claim once
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
    # A third pass of the posting job (a late retry) finds the set posted and adds nothing to the ledger.
    queue = services.dispatcher.queue("posting")
    queue.enqueue_job(queue.fetch_job(job_ids.pop()))
    burst(env, "posting")
    with services.db.tenant_session(bp.slug) as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == entries
