"""EOBs of a posted payment are rendered by a real worker from the raw 835 in storage (S3 here) and stored."""

from __future__ import annotations

import io
import subprocess
import sys

from pypdf import PdfReader
from sqlalchemy import select

from billing import claims as claim_service
from billing import submissions
from billing.claim_status import transition
from billing.documents import eob_key
from billing.edi_intake import intake
from billing.models import Deposit, RemittanceClaim
from integrations.sandbox import SandboxConfig, process_inbox_once
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import PROJECT_ROOT


def test_worker_renders_and_stores_eobs(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    with services.db.tenant_session(bp.slug) as s:
        for _ in range(2):
            patient = insured_patient(services, bp, factory)
            for claim in claim_service.create_claims(s, bp.access, visit(services, bp, patient)):
                transition(s, claim, "ready", source="test")
        s.commit()
        prepared = submissions.prepare_submission(s, practice_slug=bp.slug, user_id=None)
        prepared.submission.storage_key = "test"
        submissions.mark_transmitted(s, prepared.submission, user_id=None)
        s.commit()
    inbox = tmp_path / "acct" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / prepared.submission.filename).write_text(prepared.text)
    process_inbox_once(SandboxConfig(root=tmp_path))
    (remit,) = sorted((tmp_path / "acct" / "outbox").glob("*.835"))
    key = f"practices/{bp.slug}/edi/inbound/{remit.name}"
    services.storage.put(key, remit.read_bytes(), content_type="application/edi-x12")
    intake(services.db, remit.read_bytes(), storage_key=key, slugs=[bp.slug], **_inline())
    with services.db.tenant_session(bp.slug) as s:
        deposit_id = s.scalar(select(Deposit.id))
        posted = s.scalars(select(RemittanceClaim.claim_id).where(RemittanceClaim.outcome == "posted")).all()
    assert posted

    services.dispatcher.enqueue_now("default", "jobs.eob.render_eobs", bp.slug, deposit_id)
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", "default"],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    for claim_id in posted:
        pdf = services.storage.get(eob_key(bp.slug, deposit_id, claim_id))
        text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        assert str(claim_id) in text and "Page 1 of" in text
    whole = PdfReader(io.BytesIO(services.storage.get(eob_key(bp.slug, deposit_id)))).pages[0].extract_text()
    assert "Sunrise Family Practice" in whole


def _inline() -> dict:
    """Post in this process when intake offers the choice (835s may otherwise go through the posting queue)."""
    import inspect

    return {"inline": True} if "inline" in inspect.signature(intake).parameters else {}
