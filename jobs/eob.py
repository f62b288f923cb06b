"""Job: render the EOBs of a posted payment (one PDF per posted claim and one for the whole payment) from the raw
835 kept in storage, and store them beside it."""

from __future__ import annotations

from sqlalchemy import select

from billing.adjustment_codes import describe_adjustment, describe_remark
from billing.documents import eob_key
from billing.models import BillingIdentity, Deposit, InboundFile, RemittanceClaim
from integrations.pdf import render_claim_eob, render_remittance_eob
from integrations.x12.remit835 import parse_835
from jobs.runtime import final_on_domain_error, runtime
from medbill.errors import NotFound


@final_on_domain_error
def render_eobs(practice_slug: str, deposit_id: int) -> dict:
    rt = runtime()
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
    practice_name = identity.organization_name if identity else practice_slug
    words = {"describe_adjustment": describe_adjustment, "describe_remark": describe_remark}
    stored = []
    for claim_payment in remittance.claims:
        pcn = claim_payment.patient_control_number.strip()
        if not pcn.isdigit() or int(pcn) not in posted:
            continue
        pdf = render_claim_eob(remittance, claim_payment, practice_name=practice_name, **words)
        key = eob_key(practice_slug, deposit_id, int(pcn))
        rt.storage.put(key, pdf, content_type="application/pdf")
        stored.append(key)
    key = eob_key(practice_slug, deposit_id)
    rt.storage.put(key, render_remittance_eob(remittance, practice_name=practice_name, **words), "application/pdf")
    return {"deposit_id": deposit_id, "claim_eobs": len(stored), "remittance_eob": key}
