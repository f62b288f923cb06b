"""Jobs (`eob` queue): render the EOBs of a posted payment (one PDF per posted claim and one for the whole payment)
from the raw 835 kept in storage, and store them beside it.

A payment of up to `eob_chunk_claims` posted claims (MEDBILL_EOB_CHUNK_CLAIMS, default 200) is rendered by one job.
A larger one is split: `render_eobs` queues one `render_eob_part` per chunk of that many claims and one
`render_payment_eob` for the whole payment, each with a timeout sized to its claims, so a 6,000-claim ERA is 31 short
jobs (a retry redoes one chunk, not the file) on a queue that every worker serves after `posting`. Every job skips
the EOBs already stored: a retried or repeated chunk adds no document and renders nothing twice (an EOB is derived
from the posted 835 set alone, so a stored one never changes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from billing.adjustment_codes import describe_adjustment, describe_remark
from billing.documents import eob_key
from billing.models import BillingIdentity, Deposit, InboundFile, RemittanceClaim
from integrations.pdf import render_claim_eob, render_remittance_eob
from integrations.x12.remit835 import ClaimPayment, Remittance, parse_835
from jobs.runtime import Runtime, final_on_domain_error, runtime
from medbill.errors import NotFound

QUEUE = "eob"
WORDS = {"describe_adjustment": describe_adjustment, "describe_remark": describe_remark}


def claims_timeout(claims: int) -> int:
    """Seconds a job rendering `claims` claims may take (their EOBs, or the payment's EOB of that many): a minute to
    start (read and parse the 835), then half a second a claim, about ten times what one takes on a busy worker
    (0.03-0.05 s: a 200-claim chunk in 10 s, the payment EOB of 6,000 claims in about 5 minutes)."""
    return 60 + claims // 2


@dataclass
class _Payment:
    remittance: Remittance
    claims: list[ClaimPayment]  # the posted ones, in file order
    practice_name: str


def _payment(rt: Runtime, practice_slug: str, deposit_id: int) -> _Payment:
    with rt.db.tenant_session(practice_slug) as session:
        deposit = session.get(Deposit, deposit_id)
        if deposit is None:
            raise NotFound(f"deposit {deposit_id} not found")
        inbound = session.get(InboundFile, deposit.inbound_file_id)
        identity = session.get(BillingIdentity, 1)
        posted = set(
            session.scalars(
                select(RemittanceClaim.claim_id).where(
                    RemittanceClaim.deposit_id == deposit_id, RemittanceClaim.outcome == "posted"
                )
            )
        )
    # Balancing was checked when the payment posted; the renderer only needs the content.
    remittances = parse_835(rt.storage.get(deposit.storage_key), strict_balancing=False, check_counts=False)
    remittance = next((r for r in remittances if r.content_key == inbound.content_sha256), None)
    if remittance is None:
        raise NotFound(f"the stored file of deposit {deposit_id} no longer holds its transaction set")
    claims = []
    for claim_payment in remittance.claims:
        pcn = claim_payment.patient_control_number.strip()
        if pcn.isdigit() and int(pcn) in posted:
            claims.append(claim_payment)
    return _Payment(remittance, claims, identity.organization_name if identity else practice_slug)


def _render_claims(rt: Runtime, practice_slug: str, deposit_id: int, payment: _Payment, claims) -> dict:
    stored = skipped = 0
    for claim_payment in claims:
        key = eob_key(practice_slug, deposit_id, int(claim_payment.patient_control_number.strip()))
        if rt.storage.exists(key):
            skipped += 1
            continue
        pdf = render_claim_eob(payment.remittance, claim_payment, practice_name=payment.practice_name, **WORDS)
        rt.storage.put(key, pdf, content_type="application/pdf")
        stored += 1
    return {"claim_eobs": stored + skipped, "rendered": stored, "skipped": skipped}


def _render_payment(rt: Runtime, practice_slug: str, deposit_id: int, payment: _Payment) -> str:
    key = eob_key(practice_slug, deposit_id)
    if not rt.storage.exists(key):
        pdf = render_remittance_eob(payment.remittance, practice_name=payment.practice_name, **WORDS)
        rt.storage.put(key, pdf, content_type="application/pdf")
    return key


def part_job_id(practice_slug: str, deposit_id: int, part: int | str) -> str:
    return f"eob-{practice_slug}-{deposit_id}-{part}"


def _queue_part(rt: Runtime, job_id: str, func, *args, claims: int) -> bool:
    """Queue one part unless a job of its id is still pending (a repeated split queues nothing twice)."""
    if rt.dispatcher.is_pending(job_id):
        return False
    existing = rt.dispatcher.queue(QUEUE).fetch_job(job_id)
    if existing is not None:
        existing.delete()
    rt.dispatcher.enqueue_now(QUEUE, func, *args, job_id=job_id, timeout=claims_timeout(claims),
                              meta={"kind": "eob", "practice": args[0]})  # fmt: skip
    return True


@final_on_domain_error
def render_eobs(practice_slug: str, deposit_id: int) -> dict:
    """The EOBs of a posted payment: rendered here when it has at most `eob_chunk_claims` posted claims, else split
    into part jobs (see the module docstring)."""
    rt = runtime()
    payment = _payment(rt, practice_slug, deposit_id)
    size = rt.settings.eob_chunk_claims
    if len(payment.claims) <= size:
        result = _render_claims(rt, practice_slug, deposit_id, payment, payment.claims)
        key = _render_payment(rt, practice_slug, deposit_id, payment)
        return {"deposit_id": deposit_id, **result, "remittance_eob": key}
    parts = (len(payment.claims) + size - 1) // size
    queued = 0
    for part in range(parts):
        claims = len(payment.claims[part * size : (part + 1) * size])
        job_id = part_job_id(practice_slug, deposit_id, part)
        queued += _queue_part(rt, job_id, render_eob_part, practice_slug, deposit_id, part, claims=claims)
    job_id = part_job_id(practice_slug, deposit_id, "payment")
    queued += _queue_part(rt, job_id, render_payment_eob, practice_slug, deposit_id, claims=len(payment.claims))
    return {"deposit_id": deposit_id, "status": "split", "parts": parts, "chunk_claims": size, "queued": queued}


@final_on_domain_error
def render_eob_part(practice_slug: str, deposit_id: int, part: int) -> dict:
    """The claim EOBs of chunk `part` (0-based, `eob_chunk_claims` posted claims each, in file order)."""
    rt = runtime()
    payment = _payment(rt, practice_slug, deposit_id)
    size = rt.settings.eob_chunk_claims
    claims = payment.claims[part * size : (part + 1) * size]
    return {"deposit_id": deposit_id, "part": part, **_render_claims(rt, practice_slug, deposit_id, payment, claims)}


@final_on_domain_error
def render_payment_eob(practice_slug: str, deposit_id: int) -> dict:
    """The EOB of the whole payment (every claim of the set in one PDF)."""
    rt = runtime()
    payment = _payment(rt, practice_slug, deposit_id)
    return {"deposit_id": deposit_id, "remittance_eob": _render_payment(rt, practice_slug, deposit_id, payment)}
