"""Where a practice's generated documents live in storage. Keys are derived from what a document is about, so a
re-rendered EOB replaces itself and a reader finds it without a lookup table."""

from __future__ import annotations

from integrations.storage import practice_key


def eob_key(practice_slug: str, deposit_id: int, claim_id: int | None = None) -> str:
    """The EOB of one claim of a payment, or (claim_id None) of the whole payment."""
    name = f"claim-{claim_id}.pdf" if claim_id is not None else "remittance.pdf"
    return practice_key(practice_slug, "eob", f"deposit-{deposit_id}", name)
