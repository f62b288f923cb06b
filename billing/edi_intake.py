"""EDI intake: read an incoming X12 file (999, 277CA, 835), route each transaction set to the practice it belongs to
(by the identifiers inside), and apply it there, one transaction per practice (per set for an 835). A file that does
not parse (or an 835 that does not balance) is refused whole, naming the segment; nothing of it is applied.

999 and 277CA sets are small and applied inline. An 835 set is posted inline only when the caller asks (`inline=True`:
`medbill edi import`, tests); otherwise a posting job is queued per practice and set (`posting` queue,
jobs.posting.post_remittance_set, with a deterministic id so the same set uploaded twice is queued once). The job
reads the stored file again and posts the set by its content key (`post_stored_set`), exactly as inline posting does.

A file that came to a billing company (its clearinghouse mailbox, an upload, an import) is routed only to practices of
that company, and only when its envelope belongs to the company: a set whose payee NPI (or tax id) or 277CA billing NPI
is not one of its practices', a 999 whose receiver is not one of its submitter ids, or anything fetched from the
mailbox whose ISA08 receiver is not one of its submitter ids, is quarantined (`EdiQuarantine`): held for the operator,
invisible to the company, released by the operator to the company it belongs to (`release_quarantined`) or dropped.
The quarantined file is copied under the operator's storage prefix (`quarantine/`), never the tenant's archive.

A set whose envelope is the company's but that names no one practice of it (a 999 of a group control number no practice
sent, a tax id several practices share, a set the operator released) goes to the company's unmatched queue
(`UnmatchedEdiSet`), from which a user assigns it to a practice (`assign_unmatched`).

An upload is read by a job, not in the request (`record_upload`, `run_recorded_upload`, `upload_status`): the request
stores and records the file and queues the job; the job writes the intake report (or the refusal naming the segment)
on the `EdiIntake` row the uploader polls.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from billing.acknowledgements import apply_277ca, apply_999, claim_inbound, find_submission, transaction_key
from billing.models import BillingIdentity, InboundFile
from billing.posting import post_remittance, record_inbound
from integrations.storage import Storage
from integrations.x12.ack277 import Ack277, parse_277ca
from integrations.x12.ack999 import Ack999, parse_999
from integrations.x12.reader import X12Error, read_segments
from integrations.x12.remit835 import Remittance, parse_835
from medbill.errors import Conflict, DomainError, Invalid, NotFound
from tenants import audit
from tenants.db import Database
from tenants.models import BillingCompany, EdiIntake, EdiQuarantine, Practice, UnmatchedEdiSet

log = logging.getLogger("medbill.edi")

SUPPORTED = {"999": "999", "277": "277CA", "835": "835"}
ALL_KINDS = frozenset(SUPPORTED)
POSTING_QUEUE = "posting"
POSTING_JOB = "jobs.posting.post_remittance_set"
EOB_JOB = "jobs.eob.render_eobs"
EOB_QUEUE = "eob"
UPLOAD_QUEUE = "default"
UPLOAD_JOB = "jobs.edi_intake.run_upload"
SOURCES = ("fetch", "upload", "import")
# A job with this id in one of these states will post the set: another upload of it queues nothing.
PENDING_STATES = frozenset({"queued", "started", "scheduled", "deferred"})


@dataclass
class IntakeReport:
    applied: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    unmatched: list[dict] = field(default_factory=list)
    queued: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "applied": self.applied,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "queued": self.queued,
            "quarantined": self.quarantined,
        }


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

    def _values(self, attribute: str) -> set[str]:
        return {
            value for ident in self.identities().values()
            if ident and (value := (getattr(ident, attribute) or "").strip())
        }  # fmt: skip

    def foreign_receiver(self, receiver_id: str) -> str | None:
        """Why an interchange addressed to `receiver_id` (ISA08) is not this company's; None when it is."""
        receiver = (receiver_id or "").strip()
        if receiver in self._values("submitter_id"):
            return None
        return f"ISA08 receiver id {receiver or '(none)'} is not a submitter id of this billing company"

    def foreign_payee(self, remittance: Remittance) -> str | None:
        """Why an 835 pays no practice of this company (payee NPI, else tax id); None when it pays one."""
        if remittance.payee_npi:
            if remittance.payee_npi.strip() in self._values("group_npi"):
                return None
            return f"payee NPI {remittance.payee_npi} is no practice's of this billing company"
        tax_id = (remittance.payee_tax_id or "").replace("-", "").strip()
        if tax_id and tax_id in self._values("tax_id"):
            return None
        if not tax_id:
            return "the payee has neither an NPI nor a tax id"
        return f"payee tax id {tax_id} is no practice's of this billing company"

    def foreign_npi(self, npi: str) -> str | None:
        if npi and npi.strip() in self._values("group_npi"):
            return None
        return f"billing NPI {npi} is no practice's of this billing company" if npi else "no billing NPI"

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
    db: Database,
    data: bytes,
    *,
    storage_key: str,
    slugs: list[str],
    kinds: frozenset[str] = ALL_KINDS,
    inline: bool = True,
    dispatcher=None,
    company_id: int | None = None,
    user_id: int | None = None,
    source: str = "upload",
    file_name: str = "",
    storage: Storage | None = None,
    check_envelope: bool = True,
    only: frozenset[str] | None = None,
) -> IntakeReport:
    """Route and apply a file already kept in storage under `storage_key`. 835 sets are posted here when `inline`,
    else queued (one posting job per practice and set, on `dispatcher`). With `company_id` (the company the file came
    to, by `source`: fetch, upload or import), sets whose envelope is not the company's are quarantined for the
    operator (a copy of the file under `quarantine/` when `storage` is given) and sets that name no one practice go to
    the company's unmatched queue. `check_envelope=False` and `only` (content keys) are the operator's release of
    quarantined sets to the company they belong to."""
    if not inline and dispatcher is None:
        raise ValueError("queued posting needs a dispatcher")
    if source not in SOURCES:
        raise ValueError(f"unknown intake source {source!r}")
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
    unmatched = _Unmatched(db, company_id, storage_key, report)
    checked = company_id is not None and check_envelope
    quarantine = _Quarantine(db, company_id, source, data, storage_key, file_name, storage, report)

    def receiver_refused(receiver_id: str) -> str | None:
        # Only a fetched file is known to have come through the company's own mailbox, addressed to its submitter id;
        # an uploaded 835 may come from a payer's portal with the payer's idea of the receiver.
        return router.foreign_receiver(receiver_id) if checked and source == "fetch" else None

    for ack in acks_999:
        key = transaction_key("999", ack)
        if only is not None and key not in only:
            continue
        # A 999's receiver is the submitter id of the file it acknowledges: it is the company's only if it is one.
        why = router.foreign_receiver(ack.receiver_id) if checked else None
        if why:
            quarantine.add("999", key, ack.receiver_id, ack.sender_id, why,
                           detail={"control_number": ack.control_number,
                                   "group_control_number": ack.group_control_number})  # fmt: skip
            continue
        slug = router.for_999(ack)
        if slug is None:
            entry = {"kind": "999", "control_number": ack.control_number, "reason": "no practice"}
            unmatched.add(
                entry, content_key=key, sender_id=ack.sender_id,
                reason=f"no practice sent group control number {ack.group_control_number}",
            )  # fmt: skip
            continue
        _apply(db, slug, "999", ack, storage_key, apply_999, report)
    for ack in acks_277:
        by_practice: dict[str, list] = {}
        by_npi: dict[str, list] = {}
        for claim in ack.claims:
            npi = claim.billing_provider_npi or ""
            if only is not None and unmatched_277_key(ack, npi) not in only:
                continue
            slug = router.for_npi(claim.billing_provider_npi)
            if slug is None or (checked and (receiver_refused(ack.receiver_id) or router.foreign_npi(npi))):
                by_npi.setdefault(npi, []).append(claim)
                continue
            by_practice.setdefault(slug, []).append(claim)
        for slug, claims in by_practice.items():
            _apply(db, slug, "277CA", replace(ack, claims=claims), storage_key, apply_277ca, report)
        for billing_npi, claims in by_npi.items():
            detail = {"control_number": ack.control_number, "claims": [c.patient_control_number for c in claims]}
            group_key = unmatched_277_key(ack, billing_npi)
            why = (receiver_refused(ack.receiver_id) or router.foreign_npi(billing_npi)) if checked else None
            if why:
                quarantine.add("277CA", group_key, ack.receiver_id, ack.sender_id, why, payee_npi=billing_npi or None,
                               detail={"control_number": ack.control_number, "claims": len(claims)})  # fmt: skip
                continue
            reason = f"no practice with billing NPI {billing_npi}" if billing_npi else "no billing NPI"
            for claim in claims:
                entry = {"kind": "277CA", "patient_control_number": claim.patient_control_number, "reason": reason}
                unmatched.add(
                    entry, content_key=group_key, sender_id=ack.sender_id,
                    reason=reason, payee_npi=billing_npi or None, detail=detail,
                )  # fmt: skip
    # Remittances last: they speak of claims the acknowledgements above may just have accepted.
    for remittance in remittances:
        if only is not None and remittance.content_key not in only:
            continue
        why = (receiver_refused(remittance.receiver_id) or router.foreign_payee(remittance)) if checked else None
        if why:
            quarantine.add(
                "835", remittance.content_key, remittance.receiver_id, remittance.sender_id, why,
                payee_npi=remittance.payee_npi, payee_tax_id=remittance.payee_tax_id,
                detail=_remittance_ids(remittance),
            )  # fmt: skip
            continue
        slug, why = router.for_payee(remittance)
        if slug is None:
            unmatched.add(
                {**_remittance_ids(remittance), "reason": why}, content_key=remittance.content_key,
                sender_id=remittance.sender_id, reason=why, payee_npi=remittance.payee_npi,
                payee_tax_id=remittance.payee_tax_id, detail=_remittance_ids(remittance),
            )  # fmt: skip
            continue
        if inline:
            _post(db, slug, remittance, storage_key, report, dispatcher)
        else:
            _queue(db, dispatcher, slug, remittance, storage_key, report, user_id=user_id)
    return report


class _Quarantine:
    """Sets whose envelope is not the receiving company's: held for the operator, reported to the caller only as a
    count of what was held and why (nothing of their content)."""

    def __init__(self, db: Database, company_id: int | None, source: str, data: bytes, storage_key: str,
                 file_name: str, storage: Storage | None, report: IntakeReport) -> None:  # fmt: skip
        self.db = db
        self.company_id = company_id
        self.source = source
        self.data = data
        self.storage_key = storage_key
        self.file_name = file_name
        self.storage = storage
        self.report = report
        self._kept_at: str | None = None

    def _key(self) -> str:
        """The operator's copy of the file, stored once (the same bytes always land on the same key)."""
        if self._kept_at is None:
            if self.storage is None:
                self._kept_at = self.storage_key
            else:
                self._kept_at = quarantine_key(hashlib.sha256(self.data).hexdigest())
                self.storage.put(self._kept_at, self.data, content_type="application/edi-x12")
        return self._kept_at

    def add(
        self, kind: str, content_key: str, receiver_id: str, sender_id: str, reason: str, *,
        payee_npi: str | None = None, payee_tax_id: str | None = None, detail: dict | None = None,
    ) -> None:  # fmt: skip
        key = self._key()
        with self.db.shared_session() as s:
            s.execute(
                insert(EdiQuarantine)
                .values(
                    company_id=self.company_id, source=self.source, kind=kind, storage_key=key,
                    content_key=content_key, file_name=(self.file_name or "")[:255],
                    receiver_id=(receiver_id or "").strip()[:80], sender_id=(sender_id or "").strip()[:80],
                    payee_npi=(payee_npi or None) and payee_npi[:80],
                    payee_tax_id=(payee_tax_id or None) and payee_tax_id[:80],
                    reason=reason, detail=detail or {},
                )
                .on_conflict_do_nothing(index_elements=["company_id", "content_key"])
            )  # fmt: skip
            row_id = s.scalar(
                select(EdiQuarantine.id).where(
                    EdiQuarantine.company_id == self.company_id, EdiQuarantine.content_key == content_key
                )
            )
            s.commit()
        log.warning("EDI %s set quarantined (company %s, %s): %s", kind, self.company_id, self.source, reason)
        self.report.quarantined.append({"kind": kind, "quarantine_id": row_id, "reason": reason})


def quarantine_key(digest: str) -> str:
    """Storage key of a quarantined file: under the operator's prefix, no company's or practice's."""
    if not digest.isalnum():
        raise ValueError(f"not a digest: {digest!r}")
    return f"quarantine/{digest}.x12"


def unmatched_277_key(ack: Ack277, billing_npi: str) -> str:
    """The claims of one 277CA set for one unknown billing NPI: what the unmatched queue keeps as one set."""
    return hashlib.sha256(f"{transaction_key('277CA', ack)}|{billing_npi}".encode()).hexdigest()


class _Unmatched:
    """Sets that name no practice: reported, and kept in the company's unmatched queue when the company is known."""

    def __init__(self, db: Database, company_id: int | None, storage_key: str, report: IntakeReport) -> None:
        self.db = db
        self.company_id = company_id
        self.storage_key = storage_key
        self.report = report
        self._known: dict[str, tuple[int, int | None]] = {}

    def add(self, entry: dict, *, content_key: str, sender_id: str, reason: str, payee_npi: str | None = None,
            payee_tax_id: str | None = None, detail: dict | None = None) -> None:  # fmt: skip
        if self.company_id is None:
            self.report.unmatched.append(entry)
            return
        if content_key not in self._known:
            self._known[content_key] = self._record(
                entry["kind"], content_key, sender_id, reason, payee_npi, payee_tax_id, detail
            )
        row_id, assigned_practice_id = self._known[content_key]
        if assigned_practice_id is None:
            self.report.unmatched.append({**entry, "unmatched_id": row_id})
            return
        # Assigned to a practice before: applied (or queued) there already.
        with self.db.shared_session() as s:
            slug = s.scalar(select(Practice.slug).where(Practice.id == assigned_practice_id))
        self.report.duplicates.append({"practice": slug, **entry, "unmatched_id": row_id, "assigned": True})

    def _record(self, kind, content_key, sender_id, reason, payee_npi, payee_tax_id, detail) -> tuple[int, int | None]:
        with self.db.shared_session() as s:
            s.execute(
                insert(UnmatchedEdiSet)
                .values(
                    company_id=self.company_id,
                    kind=kind,
                    storage_key=self.storage_key,
                    content_key=content_key,
                    sender_id=(sender_id or "")[:80],
                    payee_npi=(payee_npi or None) and payee_npi[:80],
                    payee_tax_id=(payee_tax_id or None) and payee_tax_id[:80],
                    reason=reason,
                    detail=detail or {},
                )
                .on_conflict_do_nothing(index_elements=["company_id", "content_key"])
            )
            row = s.execute(
                select(UnmatchedEdiSet.id, UnmatchedEdiSet.assigned_practice_id).where(
                    UnmatchedEdiSet.company_id == self.company_id, UnmatchedEdiSet.content_key == content_key
                )
            ).one()
            s.commit()
            return row.id, row.assigned_practice_id


def _remittance_ids(remittance: Remittance) -> dict:
    return {
        "kind": "835",
        "control_number": remittance.control_number,
        "trace_number": remittance.trace_number,
        "payer": remittance.payer_name,
        "payee_npi": remittance.payee_npi,
        "total_payment": str(remittance.total_payment),
    }


def _post(
    db: Database, slug: str, remittance: Remittance, storage_key: str, report: IntakeReport, dispatcher=None
) -> None:
    """One 835 set into one practice, in one transaction: recorded once (by its content), then posted. With a
    dispatcher, the payment's EOBs are rendered by a job once the posting has committed."""
    with db.tenant_session(slug) as session:
        inbound_id = record_inbound(session, remittance, storage_key)
        if inbound_id is None:
            session.rollback()
            report.duplicates.append({"practice": slug, **_remittance_ids(remittance)})
            return
        summary = post_remittance(session, remittance, inbound_id=inbound_id, deposit_storage_key=storage_key)
        session.get(InboundFile, inbound_id).summary = summary
        if dispatcher is not None:
            # On the `eob` queue: a large payment's rendering (split into chunks there) never holds up posting.
            dispatcher.enqueue_after_commit(session, EOB_QUEUE, EOB_JOB, slug, summary["deposit_id"])
        session.commit()
        report.applied.append({"practice": slug, **_remittance_ids(remittance), **summary})


def _apply(
    db: Database, slug: str, kind: str, ack: Ack999 | Ack277, storage_key: str, apply, report, inbound_key=None
) -> None:
    with db.tenant_session(slug) as session:
        if inbound_key is None:
            inbound_id = claim_inbound(session, kind, ack, storage_key)
        else:  # part of a set assigned by hand: recorded under the unmatched entry's own key
            inbound_id = session.scalar(
                insert(InboundFile)
                .values(kind=kind, content_sha256=inbound_key, storage_key=storage_key)
                .on_conflict_do_nothing(index_elements=["content_sha256"])
                .returning(InboundFile.id)
            )
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


# --- queued posting -------------------------------------------------------------------------------------------------


def posting_job_id(slug: str, content_key: str) -> str:
    return f"post-{slug}-{content_key[:16]}"


def queue_posting(
    dispatcher, slug: str, storage_key: str, content_key: str, *, meta: dict | None = None
) -> tuple[str, bool]:
    """Queue the posting of one 835 set into one practice; (job id, whether a job was added). A job of the same id
    still pending is the same work: nothing more is queued. One that ended (failed, or finished without posting)
    is replaced. The posting itself is idempotent, so a race between two uploads costs one no-op job at most."""
    job_id = posting_job_id(slug, content_key)
    job = dispatcher.queue(POSTING_QUEUE).fetch_job(job_id)
    if job is not None:
        status = job.get_status(refresh=False)
        if str(getattr(status, "value", status)) in PENDING_STATES:
            return job_id, False
        job.delete()
    dispatcher.enqueue_now(
        POSTING_QUEUE, POSTING_JOB, slug, storage_key, content_key, job_id=job_id,
        meta={"kind": "post_remittance", "practice": slug, **(meta or {})},
    )  # fmt: skip
    return job_id, True


def _already_posted(db: Database, slug: str, content_key: str) -> bool:
    with db.tenant_session(slug) as session:
        return session.scalar(select(InboundFile.id).where(InboundFile.content_sha256 == content_key)) is not None


def _queue(
    db: Database, dispatcher, slug: str, remittance: Remittance, storage_key: str, report: IntakeReport, *,
    user_id: int | None,
) -> None:  # fmt: skip
    ids = _remittance_ids(remittance)
    if _already_posted(db, slug, remittance.content_key):
        report.duplicates.append({"practice": slug, **ids})
        return
    job_id, added = queue_posting(
        dispatcher, slug, storage_key, remittance.content_key, meta={"user_id": user_id} if user_id else None
    )
    report.queued.append(
        {"practice": slug, "job_id": job_id, "content_key": remittance.content_key, "already_queued": not added, **ids}
    )


def post_stored_set(
    db: Database, slug: str, data: bytes, *, storage_key: str, content_key: str, dispatcher=None
) -> dict:
    """What a posting job does: the 835 set of `data` with this content key, posted into the practice in one
    transaction (or recognised as posted before)."""
    try:
        remittances = parse_835(data)
    except X12Error as exc:
        raise Invalid(f"the file was not posted: {exc}", errors={"file": [str(exc)]}) from exc
    remittance = next((r for r in remittances if r.content_key == content_key), None)
    if remittance is None:
        raise NotFound(f"no 835 transaction set {content_key[:16]} in {storage_key}")
    report = IntakeReport()
    _post(db, slug, remittance, storage_key, report, dispatcher)
    if report.applied:
        return {"status": "posted", **report.applied[0]}
    return {"status": "duplicate", **report.duplicates[0]}


# --- the unmatched queue --------------------------------------------------------------------------------------------


def _find_set(kind: str, data: bytes, content_key: str):
    try:
        if kind == "999":
            return next((a for a in parse_999(data) if transaction_key("999", a) == content_key), None)
        if kind == "277CA":
            for ack in parse_277ca(data):
                for npi in {c.billing_provider_npi or "" for c in ack.claims}:
                    if unmatched_277_key(ack, npi) == content_key:
                        return replace(ack, claims=[c for c in ack.claims if (c.billing_provider_npi or "") == npi])
            return None
        return next((r for r in parse_835(data) if r.content_key == content_key), None)
    except X12Error as exc:
        raise Invalid(f"the stored file no longer parses: {exc}", errors={"file": [str(exc)]}) from exc


def assign_unmatched(
    db: Database, storage, dispatcher, unmatched_id: int, practice_slug: str, *, company_ids: set[int],
    user_id: int | None,
) -> dict:  # fmt: skip
    """Apply an unmatched set to a practice of its company, chosen by a user: a 999/277CA is applied now, an 835 is
    queued for posting into that practice (no routing). The row is marked assigned; assigning again is refused."""
    with db.shared_session() as s:
        row = s.get(UnmatchedEdiSet, unmatched_id, with_for_update=True)
        if row is None or row.company_id not in company_ids:
            raise NotFound(f"unmatched set {unmatched_id} not found")
        practice = s.scalar(
            select(Practice).where(Practice.slug == practice_slug, Practice.company_id == row.company_id)
        )
        if practice is None:
            raise NotFound(f"practice {practice_slug!r} not found in this billing company")
        if row.assigned_at is not None:
            raise Conflict(f"unmatched set {unmatched_id} was already assigned")
        found = _find_set(row.kind, storage.get(row.storage_key), row.content_key)
        if found is None:
            raise NotFound(f"the stored file holds no such {row.kind} set any more")
        result: dict = {"id": row.id, "kind": row.kind, "practice": practice.slug}
        if row.kind == "835":
            job_id, _added = queue_posting(
                dispatcher, practice.slug, row.storage_key, row.content_key,
                meta={"user_id": user_id, "unmatched_id": row.id},
            )  # fmt: skip
            row.job_id = job_id
            result |= {"status": "queued", "job_id": job_id}
        else:
            report = IntakeReport()
            apply, key = (apply_999, None) if row.kind == "999" else (apply_277ca, row.content_key)
            _apply(db, practice.slug, row.kind, found, row.storage_key, apply, report, inbound_key=key)
            if report.unmatched:
                why = report.unmatched[0].get("error") or "it names nothing of this practice"
                raise Invalid(f"the {row.kind} does not apply to {practice.slug}: {why}", errors={"practice": [why]})
            outcome = report.applied or report.duplicates
            result |= {"status": "applied" if report.applied else "duplicate", "result": outcome[0]}
        row.assigned_practice_id = practice.id
        row.assigned_by = user_id
        row.assigned_at = datetime.now(UTC)
        audit.record(
            s, user_id=user_id, practice_id=practice.id, object_type="unmatched_edi_set", object_id=row.id,
            action="assign", detail={"kind": row.kind, "content_key": row.content_key, **result},
        )  # fmt: skip
        s.commit()
        return result


def list_unmatched(db: Database, company_id: int, *, include_assigned: bool = False) -> list[dict]:
    with db.shared_session() as s:
        query = (
            select(UnmatchedEdiSet, Practice.slug)
            .outerjoin(Practice, Practice.id == UnmatchedEdiSet.assigned_practice_id)
            .where(UnmatchedEdiSet.company_id == company_id)
            .order_by(UnmatchedEdiSet.received_at.desc(), UnmatchedEdiSet.id.desc())
        )
        if not include_assigned:
            query = query.where(UnmatchedEdiSet.assigned_at.is_(None))
        return [
            {
                "id": row.id,
                "kind": row.kind,
                "storage_key": row.storage_key,
                "content_key": row.content_key,
                "sender_id": row.sender_id,
                "payee_npi": row.payee_npi,
                "payee_tax_id": row.payee_tax_id,
                "reason": row.reason,
                "detail": row.detail,
                "received_at": row.received_at,
                "assigned_practice": slug,
                "assigned_at": row.assigned_at,
                "job_id": row.job_id,
            }
            for row, slug in s.execute(query)
        ]


# --- the operator's quarantine --------------------------------------------------------------------------------------


def list_quarantine(db: Database, *, status: str | None = "held") -> list[dict]:
    """Quarantined sets (held ones by default, `status=None` for all), oldest first, with the receiving company."""
    with db.shared_session() as s:
        query = (
            select(EdiQuarantine, BillingCompany.slug)
            .join(BillingCompany, BillingCompany.id == EdiQuarantine.company_id)
            .order_by(EdiQuarantine.received_at, EdiQuarantine.id)
        )
        if status is not None:
            query = query.where(EdiQuarantine.status == status)
        return [
            {
                "id": row.id, "company": company, "source": row.source, "kind": row.kind, "status": row.status,
                "file_name": row.file_name, "receiver_id": row.receiver_id, "sender_id": row.sender_id,
                "payee_npi": row.payee_npi, "payee_tax_id": row.payee_tax_id, "reason": row.reason,
                "detail": row.detail, "received_at": row.received_at, "storage_key": row.storage_key,
                "content_key": row.content_key, "resolved_at": row.resolved_at, "result": row.result,
            }
            for row, company in s.execute(query)
        ]  # fmt: skip


def _held(s, quarantine_id: int) -> EdiQuarantine:
    row = s.get(EdiQuarantine, quarantine_id, with_for_update=True)
    if row is None:
        raise NotFound(f"quarantined set {quarantine_id} not found")
    if row.status != "held":
        raise Conflict(f"quarantined set {quarantine_id} was already {row.status}")
    return row


def release_quarantined(
    db: Database, storage: Storage, quarantine_id: int, company_slug: str, *, dispatcher=None
) -> dict:
    """The operator's decision that a quarantined set belongs to `company_slug`: it is routed among that company's
    practices as if it had come to it (posted inline without a dispatcher, else queued), or waits in that company's
    unmatched queue when it names none of them. The row keeps who it went to and the outcome."""
    with db.shared_session() as s:
        row = _held(s, quarantine_id)
        company = s.scalar(select(BillingCompany).where(BillingCompany.slug == company_slug))
        if company is None:
            raise NotFound(f"billing company {company_slug!r} not found")
        report = intake(
            db, storage.get(row.storage_key), storage_key=row.storage_key,
            slugs=practice_slugs_for(db, company_id=company.id), company_id=company.id, source="import",
            inline=dispatcher is None, dispatcher=dispatcher, check_envelope=False, only=frozenset({row.content_key}),
        )  # fmt: skip
        result = report.as_dict()
        row.status, row.released_to_company_id, row.resolved_at = "released", company.id, datetime.now(UTC)
        row.result = _json_safe(result)
        audit.record(
            s, user_id=None, practice_id=None, object_type="edi_quarantine", object_id=row.id, action="release",
            detail={"kind": row.kind, "content_key": row.content_key, "to_company": company.slug,
                    **{k: len(v) for k, v in result.items()}},
        )  # fmt: skip
        s.commit()
        return {"id": quarantine_id, "status": "released", "company": company.slug, **result}


def drop_quarantined(db: Database, quarantine_id: int) -> dict:
    """The operator's decision that a quarantined set is nobody's here (junk, a clearinghouse's mistake): kept as a
    record, never applied. A file left in a mailbox and fetched again stays dropped."""
    with db.shared_session() as s:
        row = _held(s, quarantine_id)
        row.status, row.resolved_at = "dropped", datetime.now(UTC)
        audit.record(
            s, user_id=None, practice_id=None, object_type="edi_quarantine", object_id=row.id, action="drop",
            detail={"kind": row.kind, "content_key": row.content_key},
        )  # fmt: skip
        s.commit()
        return {"id": quarantine_id, "status": "dropped"}


def _json_safe(value):
    """Intake reports hold Decimals and dates (posting summaries): as JSON for a JSONB column."""
    import json

    return json.loads(json.dumps(value, default=str))


# --- uploads, read by a job -----------------------------------------------------------------------------------------


def record_upload(
    session, dispatcher, *, company_id: int, user_id: int | None, storage_key: str, file_name: str, size: int
) -> EdiIntake:
    """Record a stored upload and queue the job that reads it once `session` commits (the caller commits)."""
    row = EdiIntake(
        company_id=company_id, user_id=user_id, storage_key=storage_key, file_name=(file_name or "")[:255], size=size
    )
    session.add(row)
    session.flush()
    row.job_id = dispatcher.enqueue_after_commit(
        session, UPLOAD_QUEUE, UPLOAD_JOB, row.id, meta={"kind": "edi_intake", "user_id": user_id},
        timeout=upload_timeout(size),
    )  # fmt: skip
    return row


def upload_timeout(size: int) -> int:
    """Seconds for the job reading an upload of `size` bytes: a minute, plus a minute per 2 MB (about 4,000 claims of
    an 835, parsed, routed and their posting jobs queued)."""
    return 60 + 60 * (size // (2 * 2**20) + 1)


def run_recorded_upload(db: Database, storage: Storage, dispatcher, intake_id: int) -> dict:
    """What the upload job does: read the stored file, route and apply it (each 835 set queued for posting), and
    write the outcome on the intake row. Running it again (a retry) finds applied sets as duplicates."""
    with db.shared_session() as s:
        row = s.get(EdiIntake, intake_id)
        if row is None:
            raise NotFound(f"EDI upload {intake_id} not found")
        if row.status in ("done", "refused"):
            return {"status": row.status, "intake_id": intake_id}
        row.status = "running"
        company_id, user_id, key, name = row.company_id, row.user_id, row.storage_key, row.file_name
        s.commit()
    try:
        report = intake(
            db, storage.get(key), storage_key=key, slugs=practice_slugs_for(db, company_id=company_id),
            inline=False, dispatcher=dispatcher, company_id=company_id, user_id=user_id, source="upload",
            file_name=name, storage=storage,
        )  # fmt: skip
    except DomainError as exc:
        outcome = {"status": "refused", "error": exc.message, "report": {"errors": exc.errors or {}}}
    else:
        outcome = {"status": "done", "error": None, "report": _json_safe(report.as_dict())}
    with db.shared_session() as s:
        row = s.get(EdiIntake, intake_id)
        row.status, row.error, row.report = outcome["status"], outcome["error"], outcome["report"]
        row.finished_at = datetime.now(UTC)
        audit.record(
            s, user_id=user_id, practice_id=None, object_type="edi_file", object_id=key[-80:], action="intake",
            detail={"intake_id": intake_id, "status": row.status,
                    **{k: len(v) for k, v in outcome["report"].items() if isinstance(v, list)}},
        )  # fmt: skip
        s.commit()
    return {"intake_id": intake_id, "status": outcome["status"], "error": outcome["error"]}


def upload_status(session, dispatcher, intake_id: int, *, company_ids: set[int]) -> dict:
    """An upload as its company's users see it: queued, running, done (with the intake report) or refused (with the
    error naming the segment). A job that ended without writing its outcome (its retries spent) reads as refused."""
    row = session.get(EdiIntake, intake_id)
    if row is None or row.company_id not in company_ids:
        raise NotFound(f"EDI upload {intake_id} not found")
    status, error = row.status, row.error
    if status in ("queued", "running") and not dispatcher.is_pending(row.job_id):
        status, error = "refused", "the job reading the file ended without finishing it; upload the file again"
    report = row.report or {}
    return {
        "id": row.id, "status": status, "file_name": row.file_name, "size": row.size, "storage_key": row.storage_key,
        "created_at": row.created_at, "finished_at": row.finished_at, "error": error,
        "applied": report.get("applied", []), "queued": report.get("queued", []),
        "duplicates": report.get("duplicates", []), "unmatched": report.get("unmatched", []),
        "quarantined": report.get("quarantined", []), "errors": report.get("errors", {}),
    }  # fmt: skip
