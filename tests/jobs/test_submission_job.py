"""The submission job in a real worker: a clearinghouse that is down leaves the claims ready and the file recorded
as failed; the retry sends the same file once the clearinghouse is back, and no claim goes out twice. Also the
command-line export and import."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from billing import claims as claim_service
from billing.claim_status import transition
from billing.models import BillingIdentity, Claim, Submission
from integrations.sandbox import SandboxConfig, process_inbox_once, start_in_background
from integrations.sandbox.server import host_key_fingerprint
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import PROJECT_ROOT, run_cli
from tests.s3server import free_port
from tests.support.connections import store_secret

PASSWORD = "retry-secret-1"


def _ready_claims(services, bp, factory, n=2) -> list[int]:
    ids = []
    with services.db.tenant_session(bp.slug) as s:
        for _ in range(n):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
                transition(s, claim, "ready", source="test")
                ids.append(claim.id)
        s.commit()
    return ids


@pytest.mark.timeout(240)
def test_failed_transmission_is_retried_with_the_same_file(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    port = free_port()
    config = SandboxConfig(root=tmp_path / "sandbox", sftp_port=port, accounts={"acme": PASSWORD}, poll_seconds=30)
    config.root.mkdir()
    with services.db.tenant_session(bp.slug) as s:
        s.get(BillingIdentity, 1).transport = {
            "transport": "sftp", "host": "127.0.0.1", "port": port, "username": "acme",
            "password_secret": "clearinghouse", "host_key_sha256": host_key_fingerprint(config),
        }  # fmt: skip
        s.commit()
    store_secret(services, bp.company_slug, "clearinghouse", PASSWORD)
    claim_ids = _ready_claims(services, bp, factory)
    job = services.dispatcher.enqueue_now("submission", "jobs.submission.submit_claims", bp.slug, None, None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "medbill.cli", "worker", "--queue", "submission"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = None
    try:
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != "scheduled":
            assert time.monotonic() < deadline, f"job never failed over to a retry: {job.get_status()}"
            time.sleep(0.3)
        with services.db.tenant_session(bp.slug) as s:
            submission = s.scalar(select(Submission))
            assert submission.status == "failed" and submission.attempts == 1
            assert "127.0.0.1" in submission.last_error
            assert {s.get(Claim, c).status for c in claim_ids} == {"ready"}
            stored = services.storage.get(submission.storage_key)
        _thread, stop = start_in_background(config)
        deadline = time.monotonic() + 90
        while job.get_status(refresh=True) != "finished":
            assert job.get_status() != "failed", "the retry failed"
            assert time.monotonic() < deadline, "the retry did not finish"
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    with services.db.tenant_session(bp.slug) as s:
        submissions = s.scalars(select(Submission)).all()
        assert len(submissions) == 1 and submissions[0].status == "transmitted" and submissions[0].attempts == 2
        assert {s.get(Claim, c).status for c in claim_ids} == {"submitted"}
        name = submissions[0].filename
    received = config.root / "acme" / "inbox" / name
    assert received.read_bytes() == stored  # byte for byte the file recorded before the first attempt
    if stop is not None:
        stop.set()


def test_cli_export_then_import_the_answers(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    claim_ids = _ready_claims(services, bp, factory)
    out = tmp_path / "outgoing"
    exported = run_cli(env, "claims", "export", "--practice", bp.slug, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    (path,) = out.glob("*.837")
    assert f"({len(claim_ids)} claims)" in exported.stdout
    with services.db.tenant_session(bp.slug) as s:
        assert {s.get(Claim, c).status for c in claim_ids} == {"submitted"}
    assert "no ready claims" in run_cli(env, "claims", "export", "--practice", bp.slug, "--out", str(out)).stdout

    inbox = tmp_path / "sb" / "acct" / "inbox"
    inbox.mkdir(parents=True)
    inbox.joinpath(path.name).write_bytes(path.read_bytes())
    process_inbox_once(SandboxConfig(root=tmp_path / "sb"))
    for answer in sorted((tmp_path / "sb" / "acct" / "outbox").glob("*.999")) + sorted(
        (tmp_path / "sb" / "acct" / "outbox").glob("*.277ca")
    ):
        imported = run_cli(env, "edi", "import", str(answer), "--company", bp.company_slug)
        assert imported.returncode == 0, imported.stderr
        assert json.loads(imported.stdout)["applied"][0]["practice"] == bp.slug
    with services.db.tenant_session(bp.slug) as s:
        assert {s.get(Claim, c).status for c in claim_ids} == {"accepted"}
    broken = tmp_path / "broken.999"
    broken.write_text("ISA*00*")
    refused = run_cli(env, "edi", "import", str(broken), "--practice", bp.slug)
    assert refused.returncode != 0 and "not a readable X12 file" in refused.stderr
