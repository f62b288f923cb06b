"""End to end with real processes: visit → claim → scrub → a real RQ worker submits over SFTP to the sandbox
clearinghouse → the sandbox answers 999 + 277CA + 835 → the worker fetches them, applies the acknowledgements and
posts the remittance → claim statuses and the ledger."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from billing import claims as claim_service
from billing import ledger, setup
from billing.documents import eob_key
from billing.models import (
    BillingIdentity,
    Claim,
    ClaimAcknowledgement,
    ClaimStatusChange,
    Deposit,
    RemittanceClaim,
    Submission,
)
from billing.scrubber import scrub_claim
from integrations.sandbox import SandboxConfig, start_in_background
from integrations.sandbox.server import host_key_fingerprint
from integrations.x12.remit835 import parse_835
from jobs.queues import QUEUES
from tests.billing.factories import billing_practice, insured_patient, shared_payer, visit
from tests.conftest import PROJECT_ROOT
from tests.s3server import free_port
from tests.security.logscan import assert_no_phi, practice_phi
from tests.support.connections import store_secret

SFTP_PASSWORD = "sandbox-secret-1"
# The workers run with a distinctive S3 secret (moto accepts any) and DEBUG logging: their output is scanned for it.
S3_SECRET = "s3-secret-Zq7vK2pLm9"
WORKER_S3_ENV = {"AWS_SECRET_ACCESS_KEY": S3_SECRET}
WORKER_LOGS: list[str] = []


@pytest.fixture()
def sandbox(tmp_path):
    config = SandboxConfig(
        root=tmp_path / "sandbox",
        sftp_port=free_port(),
        accounts={"acme": SFTP_PASSWORD},
        poll_seconds=0.2,
    )
    config.root.mkdir()
    thread, stop = start_in_background(config)
    try:
        yield config
    finally:
        stop.set()
        thread.join(timeout=15)


def _worker_burst(env: dict[str, str], *queues: str) -> None:
    """One real `medbill worker --burst` over `queues`: it works until all of them are empty, including the jobs its
    own jobs queue on them (as a production worker over all queues does)."""
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", *(a for q in queues for a in ("--queue", q))],
        env=env | {"MEDBILL_LOG_LEVEL": "DEBUG"} | WORKER_S3_ENV,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    WORKER_LOGS.append(run.stdout + run.stderr)
    assert run.returncode == 0, run.stderr[-3000:]


def _wait_for(path: Path, pattern: str, count: int, timeout: float = 60) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(path.glob(pattern))
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {pattern} in {path} after {timeout}s: {sorted(p.name for p in path.iterdir())}")


@pytest.fixture()
def empty_queues_after(services):
    """The pipeline leaves follow-up work queued (a delayed fetch after each submission): cleared afterwards, so a
    later test's burst worker starts from empty queues whatever the order tests run in."""
    yield
    for name in QUEUES:
        queue = services.dispatcher.queue(name)
        queue.empty()
        for job_id in queue.scheduled_job_registry.get_job_ids():
            queue.scheduled_job_registry.remove(job_id, delete_job=True)


@pytest.mark.timeout(300)
def test_visit_to_accepted_and_rejected_claims(services, factory, env, sandbox, empty_queues_after):
    bp = billing_practice(services, factory)
    store_secret(services, bp.company_slug, "clearinghouse", SFTP_PASSWORD)
    with services.db.tenant_session(bp.slug) as s:
        identity = s.get(BillingIdentity, 1)
        identity.transport = {
            "transport": "sftp",
            "host": "127.0.0.1",
            "port": sandbox.sftp_port,
            "username": "acme",
            "password_secret": "clearinghouse",
            "host_key_sha256": host_key_fingerprint(sandbox),
        }
        s.commit()
    good = insured_patient(services, bp, factory)
    unknown = insured_patient(services, bp, factory, member_id="UNK4455667")
    # The good patient also has a secondary coverage: once the primary pays, a secondary claim must go out.
    second_payer = shared_payer(services, name="Second Health Plan")
    with services.db.tenant_session(bp.slug) as s:
        setup.enroll_payer(s, bp.access, second_payer.id, {})
        setup.add_coverage(
            s, bp.access, good,
            {"payer_id": second_payer.id, "priority": 2, "member_id": "SEC7788", "relationship_code": "18",
             "effective_date": date(2020, 1, 1)},
        )  # fmt: skip
        s.commit()
    claim_ids = []
    with services.db.tenant_session(bp.slug) as s:
        for patient in (good, unknown):
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
                assert not scrub_claim(s, claim, user_id=bp.access.user_id)
                claim_ids.append(claim.id)
        s.commit()

    services.dispatcher.enqueue_now("submission", "jobs.submission.submit_claims", bp.slug, None, bp.access.user_id)
    _worker_burst(env, "submission")
    with services.db.tenant_session(bp.slug) as s:
        submission = s.scalar(select(Submission))
        assert submission.status == "transmitted" and submission.claim_count == 2
        assert {s.get(Claim, c).status for c in claim_ids} == {"submitted"}
        assert services.storage.get(submission.storage_key).startswith(b"ISA*")

    # The file went over SFTP into the sandbox's inbox; the sandbox answers into the outbox.
    outbox = sandbox.root / "acme" / "outbox"
    _wait_for(outbox, "*.999", 1)
    _wait_for(outbox, "*.277ca", 1)
    (era,) = _wait_for(outbox, "*.835", 1)
    (remittance,) = parse_835(era.read_bytes())

    services.dispatcher.enqueue_now("default", "jobs.acknowledgements.fetch_clearinghouse_files", bp.slug)
    # One worker process for the chain (each process start costs seconds of imports): the acknowledgements apply and
    # the 835 becomes a job on the posting queue; the payment posts and queues its EOB rendering on the eob queue.
    _worker_burst(env, "default", "posting", "eob")
    with services.db.tenant_session(bp.slug) as s:
        accepted, rejected = s.get(Claim, claim_ids[0]), s.get(Claim, claim_ids[1])
        assert accepted.payer_claim_number
        assert rejected.status == "rejected"
        reasons = s.scalar(select(ClaimAcknowledgement.reasons).where(ClaimAcknowledgement.claim_id == rejected.id))
        assert reasons and any("Subscriber" in r or "Member" in r or "Insured" in r for r in reasons), reasons
        path = [
            (h.to_status, h.source)
            for h in s.scalars(
                select(ClaimStatusChange)
                .where(ClaimStatusChange.claim_id == accepted.id)
                .order_by(ClaimStatusChange.id)
            )
        ]
        assert path[-4:-1] == [("submitted", "submission"), ("acknowledged", "999"), ("accepted", "277ca")], path
        # The same fetch posted the 835 after the acknowledgements: the accepted claim is paid, to the cent.
        assert path[-1] in (("paid", "835"), ("partially_paid", "835"), ("denied", "835")), path
        assert s.scalar(select(Submission)).status == "accepted"
        (clp,) = remittance.claims
        assert clp.patient_control_number == str(accepted.id)
        balance = ledger.posted_by_claim(s, accepted.id)  # what the primary's claim posted (charge and 835)
        cas = [*clp.adjustments, *(a for line in clp.lines for a in line.adjustments)]
        assert balance.charges == clp.total_charge and balance.payments == clp.paid
        assert balance.patient == clp.patient_responsibility == sum(a.amount for a in cas if a.group == "PR")
        assert balance.adjustments == sum(a.amount for a in cas if a.group != "PR")
        assert balance.insurance == 0 and accepted.status == ("denied" if clp.is_denied else "paid")
        # The patient has a secondary coverage: the primary's PR is billed to it, so it is not the patient's yet.
        account = ledger.claim_balance(s, accepted.id)
        assert (account.insurance, account.patient) == (clp.patient_responsibility, 0)
        deposit = s.scalar(select(Deposit))
        assert deposit.amount == remittance.total_payment and deposit.trace_number == remittance.trace_number
        assert s.scalar(select(RemittanceClaim.outcome)) == "posted"
        rejected_balance = ledger.claim_balance(s, rejected.id)  # charged when submitted, nothing else posted
        assert (rejected_balance.charges, rejected_balance.payments) == (rejected.total_charge, 0)
        deposit_id = deposit.id
        secondary = s.scalar(select(Claim).where(Claim.encounter_id == accepted.encounter_id, Claim.id != accepted.id))
    # Fetched files were archived.
    assert not list(outbox.glob("*.999")) and not list(outbox.glob("*.277ca")) and not list(outbox.glob("*.835"))
    # The EOB of the paid claim is in storage (S3 here), readable.
    eob = services.storage.get(eob_key(bp.slug, deposit_id, claim_ids[0]))
    assert str(claim_ids[0]) in PdfReader(io.BytesIO(eob)).pages[0].extract_text()
    # The secondary claim was built from the primary's payment and goes out through the same pipeline.
    assert not clp.is_denied  # the sandbox's denials are chosen by claim number; claim 1 of a new practice is paid
    assert secondary is not None and secondary.status == "ready" and secondary.payer_id == second_payer.id
    services.dispatcher.enqueue_now("submission", "jobs.submission.submit_claims", bp.slug, None, None)
    _worker_burst(env, "submission")
    (cob_999,) = _wait_for(outbox, "*.999", 1)
    assert "IK5*A" in cob_999.read_text()  # the sandbox (pyx12 inside) accepted the COB 837
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, secondary.id).status == "submitted"
        cob_file = s.scalars(select(Submission).order_by(Submission.id.desc())).first()
        assert b"SVD*" in services.storage.get(cob_file.storage_key)

    accepted_status = path[-1][0]
    # Fetching again changes nothing (files archived), and re-applying the same 277CA file is recognised.
    services.dispatcher.enqueue_now("default", "jobs.acknowledgements.fetch_clearinghouse_files", bp.slug)
    _worker_burst(env, "default")
    with services.db.tenant_session(bp.slug) as s:
        assert s.get(Claim, claim_ids[0]).status == accepted_status
        assert s.scalar(select(func.count()).select_from(Deposit)) == 1

    # No PHI or secrets in what the workers logged at DEBUG over the whole run (issue 7).
    logs = "\n".join(WORKER_LOGS)
    assert "submit_claims" in logs and "DEBUG" in logs  # the capture saw the jobs, at DEBUG
    secrets = [SFTP_PASSWORD, S3_SECRET, env["MEDBILL_SECRET_KEY"], env["MEDBILL_SECRETS_KEY"]]
    assert_no_phi(logs, practice_phi(services, bp.slug) + secrets)
