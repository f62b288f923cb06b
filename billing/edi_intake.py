"""EDI intake: read an incoming X12 file (999, 277CA, 835), route each transaction set to the practice it belongs to
(by the identifiers inside), and apply it there, one transaction per practice (per set for an 835). A file that does
not parse (or an 835 that does not balance) is refused whole, naming the segment; nothing of it is applied."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import select

from billing.acknowledgements import apply_277ca, apply_999, claim_inbound, find_submission
from billing.models import BillingIdentity, InboundFile
from billing.posting import post_remittance, record_inbound
from integrations.x12.ack277 import Ack277, parse_277ca
from integrations.x12.ack999 import Ack999, parse_999
from integrations.x12.reader import X12Error, read_segments
from integrations.x12.remit835 import Remittance, parse_835
from medbill.errors import Invalid
from tenants.db import Database
from tenants.models import Practice

SUPPORTED = {"999": "999", "277": "277CA", "835": "835"}
ALL_KINDS = frozenset(SUPPORTED)


@dataclass
class IntakeReport:
    applied: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"applied": self.applied, "duplicates": self.duplicates, "unmatched": self.unmatched}


def detect_kinds(data: bytes | str) -> set[str]:
    try:
        return {seg.elements[1] for seg in read_segments(data) if seg.id == "ST" and len(seg.elements) > 1}
    except X12Error as exc:
        raise Invalid(f"not a readable X12 file: {exc}", errors={"file": [str(exc)]}) from exc


class _Router:
    """Which practice a set belongs to, among the practices the caller may post for."""

    def __init__(self, db: Database, slugs: list[str]) -> None:
        self.db = db
        self.slugs = slugs
        self._identities: dict[str, BillingIdentity | None] | None = None

    def identities(self) -> dict[str, BillingIdentity | None]:
        if self._identities is None:
            self._identities = {}
            for slug in self.slugs:
                with self.db.tenant_session(slug) as s:
                    identity = s.get(BillingIdentity, 1)
                    if identity is not None:
                        s.expunge(identity)
                    self._identities[slug] = identity
        return self._identities

    def for_npi(self, npi: str | None) -> str | None:
        matches = [slug for slug, ident in self.identities().items() if ident and npi and ident.group_npi == npi]
        return matches[0] if len(matches) == 1 else None

    def for_payee(self, remittance: Remittance) -> tuple[str | None, str]:
        """The practice an 835 pays: billing NPI = the payee's NPI (N1*PE XX), else tax id; and the words why not."""
        if remittance.payee_npi:
            slug = self.for_npi(remittance.payee_npi)
            return slug, "" if slug else f"no practice with billing NPI {remittance.payee_npi}"
        tax_id = (remittance.payee_tax_id or "").replace("-", "").strip()
        matches = [slug for slug, ident in self.identities().items() if ident and tax_id and ident.tax_id == tax_id]
        if len(matches) == 1:
            return matches[0], ""
        if not tax_id:
            return None, "the payee has neither an NPI nor a tax id"
        return None, f"{'several practices' if matches else 'no practice'} with tax id {tax_id}"

    def for_999(self, ack: Ack999) -> str | None:
        """The practice that sent the group this 999 acknowledges (group control numbers are unique across
        practices; the submitter id narrows the search)."""
        owners = []
        for slug, ident in self.identities().items():
            if ident is None or ident.submitter_id != ack.receiver_id.strip():
                continue
            with self.db.tenant_session(slug) as s:
                if find_submission(s, ack) is not None:
                    owners.append(slug)
        return owners[0] if len(owners) == 1 else None


def practice_slugs_for(db: Database, *, company_id: int | None = None, practice_slug: str | None = None) -> list[str]:
    if practice_slug:
        return [practice_slug]
    with db.shared_session() as s:
        return list(s.scalars(select(Practice.slug).where(Practice.company_id == company_id).order_by(Practice.id)))


def intake(
    db: Database, data: bytes, *, storage_key: str, slugs: list[str], kinds: frozenset[str] = ALL_KINDS
) -> IntakeReport:
    found_kinds = detect_kinds(data)
    unknown = found_kinds - set(kinds)
    if unknown or not found_kinds:
        found = ", ".join(sorted(found_kinds)) or "none"
        taken = " and ".join(SUPPORTED[k] for k in sorted(kinds))
        raise Invalid(
            f"unsupported transaction set(s): {found}; this intake takes {taken}",
            errors={"file": [f"ST01 found: {found}"]},
        )
    try:
        acks_999 = parse_999(data) if "999" in found_kinds else []
        acks_277 = parse_277ca(data) if "277" in found_kinds else []
        remittances = parse_835(data) if "835" in found_kinds else []
    except X12Error as exc:
        raise Invalid(f"the file was not applied: {exc}", errors={"file": [str(exc)]}) from exc
    router = _Router(db, slugs)
    report = IntakeReport()
    for ack in acks_999:
        slug = router.for_999(ack)
        if slug is None:
            report.unmatched.append({"kind": "999", "control_number": ack.control_number, "reason": "no practice"})
            continue
        _apply(db, slug, "999", ack, storage_key, apply_999, report)
    for ack in acks_277:
        by_practice: dict[str, list] = {}
        for claim in ack.claims:
            slug = router.for_npi(claim.billing_provider_npi)
            if slug is None:
                report.unmatched.append(
                    {
                        "kind": "277CA",
                        "patient_control_number": claim.patient_control_number,
                        "reason": f"no practice with billing NPI {claim.billing_provider_npi}",
                    }
                )
                continue
            by_practice.setdefault(slug, []).append(claim)
        for slug, claims in by_practice.items():
            _apply(db, slug, "277CA", replace(ack, claims=claims), storage_key, apply_277ca, report)
    # Remittances last: they speak of claims the acknowledgements above may just have accepted.
    for remittance in remittances:
        slug, why = router.for_payee(remittance)
        if slug is None:
            report.unmatched.append({**_remittance_ids(remittance), "reason": why})
            continue
        _post(db, slug, remittance, storage_key, report)
    return report


def _remittance_ids(remittance: Remittance) -> dict:
    return {
        "kind": "835",
        "control_number": remittance.control_number,
        "trace_number": remittance.trace_number,
        "payer": remittance.payer_name,
        "payee_npi": remittance.payee_npi,
        "total_payment": str(remittance.total_payment),
    }


def _post(db: Database, slug: str, remittance: Remittance, storage_key: str, report: IntakeReport) -> None:
    """One 835 set into one practice, in one transaction: recorded once (by its content), then posted."""
    with db.tenant_session(slug) as session:
        inbound_id = record_inbound(session, remittance, storage_key)
        if inbound_id is None:
            session.rollback()
            report.duplicates.append({"practice": slug, **_remittance_ids(remittance)})
            return
        summary = post_remittance(session, remittance, inbound_id=inbound_id, deposit_storage_key=storage_key)
        session.get(InboundFile, inbound_id).summary = summary
        session.commit()
        report.applied.append({"practice": slug, **_remittance_ids(remittance), **summary})


def _apply(db: Database, slug: str, kind: str, ack: Ack999 | Ack277, storage_key: str, apply, report) -> None:
    with db.tenant_session(slug) as session:
        inbound_id = claim_inbound(session, kind, ack, storage_key)
        if inbound_id is None:
            session.rollback()
            report.duplicates.append({"practice": slug, "kind": kind, "control_number": ack.control_number})
            return
        result = apply(session, ack, inbound_id=inbound_id)
        if not result.get("applied", True):
            session.rollback()
            report.unmatched.append({"practice": slug, **result})
            return
        session.commit()
        report.applied.append({"practice": slug, "control_number": ack.control_number, **result})
