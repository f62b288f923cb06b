"""A practice's documents: where generated ones live in storage, and which documents there are.

Keys are derived from what a document is about, so a re-rendered EOB replaces itself and a reader finds it without a
lookup table.

The registry (`KINDS`) says, per kind of document, how to list it from the database: one SELECT with the standard
columns below, filterable by claim and by deposit. The practice documents list, a claim's documents and a deposit's
documents are unions of those SELECTs, so adding a kind is one `register()` call, with no change in the API and
portal (their `?kind=` choices come from `kind_choices()`):

    kind         the kind's name (also the first part of a document id)
    object_id    what the document is of (a deposit for EOBs and 835s; a statement, an appeal)
    claim_id     the claim it is about, when it is about one (an EOB of a claim, an appeal letter)
    created_at   when it came to be (newest first in lists)
    source       who sent it or whom it is for, in words (the payer of a remittance or of an appeal, the patient of a
                 statement)
    reference    what a person quotes to find it (the check or EFT trace number, the patient's account number, the
                 payer's claim number)
    amount       the money it is about, when there is one
    storage_key  where the file is, for kinds whose row records it (statements, appeal letters); empty for kinds whose
                 key is derived from the ids (EOBs, 835s)

Kinds: EOBs of a claim and of a whole payment and the payment's 835 (files of the EOB job and of intake); patient
statements (billing.statements) and appeal letters (billing.appeals, a claim's). The last two are registered here,
next to the others, reading the rows those services write: only a row that records its file (a storage key) is a
document. A recorded key is used only when it lies under the practice's own prefix.

A document id is `<kind>-<object_id>` or `<kind>-<object_id>-<claim_id>` (e.g. `eob-12-345`): stable, and checked
against the database before anything is read from storage, so an id never addresses a key that is not the practice's.
Listing does not touch storage; whether a rendered file exists yet is found out when it is downloaded.

The raw 835 is served as the deposit's own transaction set in its own envelope (`era_file`), never as the file it
came in: a company-level upload may carry several practices' payments in one file."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Numeric, Select, String, case, cast, exists, false, func, literal, select
from sqlalchemy.orm import Session

from billing.models import Appeal, Claim, Deposit, InboundFile, Patient, Payer, RemittanceClaim, Statement
from integrations.storage import Storage, StorageKeyNotFound, practice_key
from integrations.x12.reader import Interchange, Segment, X12Error, parse_envelopes, read_segments
from integrations.x12.remit835 import content_key
from medbill.errors import NotFound
from tenants import audit
from tenants.authz import PracticeAccess

KIND_NAME = r"[a-z0-9][a-z0-9_]{0,30}"
_ID = r"[1-9][0-9]{0,17}"
DOCUMENT_ID_RE = re.compile(rf"^(?P<kind>{KIND_NAME})-(?P<object>{_ID})(?:-(?P<claim>{_ID}))?$")
PDF = "application/pdf"
X12 = "application/edi-x12"
# Outcomes of a remittance claim under which the deposit spoke of the claim (a reversal takes a payment back).
_SPOKE_OF = ("posted", "reversal")


def eob_key(practice_slug: str, deposit_id: int, claim_id: int | None = None) -> str:
    """The EOB of one claim of a payment, or (claim_id None) of the whole payment."""
    name = f"claim-{claim_id}.pdf" if claim_id is not None else "remittance.pdf"
    return practice_key(practice_slug, "eob", f"deposit-{deposit_id}", name)


def era_key(practice_slug: str, deposit_id: int) -> str:
    """The deposit's own 835 transaction set, in its own envelope, cut from the file it came in."""
    return practice_key(practice_slug, "era", f"deposit-{deposit_id}.835")


# --- the registry ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    id: str
    kind: str
    kind_label: str
    title: str
    filename: str
    content_type: str
    storage_key: str
    object_id: int
    claim_id: int | None
    created_at: datetime
    source: str
    reference: str
    reference_label: str
    amount: Decimal | None

    @property
    def deposit_id(self) -> int | None:
        return self.object_id if self.kind in DEPOSIT_KINDS else None


@dataclass(frozen=True)
class DocumentKind:
    name: str
    label: str
    # SELECT of the standard columns (see the module docstring), narrowed to one claim and/or one deposit; a kind
    # that is never about a deposit returns no rows when asked for one.
    rows: Callable[[int | None, int | None], Select]
    # (practice slug, row) -> storage key, file name and title of the document.
    describe: Callable[[str, object], tuple[str, str, str]]
    content_type: str = PDF
    # Whether the practice documents list shows it (the raw 835 is offered beside a claim or deposit only).
    listed: bool = True
    # Makes sure the file is in storage before a download (a derived file cut on first use); None: nothing to do.
    prepare: Callable[[Session, Storage, Document], None] | None = None
    # What `reference` is, in words ("trace" number of a payment, patient "account"...).
    reference_label: str = "reference"
    # Said after the title when the file is not in storage.
    missing: str = "is not in storage"


KINDS: dict[str, DocumentKind] = {}
DEPOSIT_KINDS: set[str] = set()


def register(kind: DocumentKind, *, of_deposit: bool = False) -> DocumentKind:
    """Add a kind of document (at import time of the module that owns it)."""
    if not re.fullmatch(KIND_NAME, kind.name):
        raise ValueError(f"document kind name {kind.name!r}: lowercase letters, digits and '_'")
    KINDS[kind.name] = kind
    if of_deposit:
        DEPOSIT_KINDS.add(kind.name)
    return kind


def listed_kinds() -> list[DocumentKind]:
    return [k for k in KINDS.values() if k.listed]


def kind_choices() -> dict[str, str]:
    """The kinds a practice documents list can be narrowed to (name -> label, registry order): the one source of the
    API's and the portal's `kind` choices."""
    return {k.name: k.label for k in listed_kinds()}


def standard_columns(
    kind: str, *, object_id, claim_id=None, created_at, source=None, reference=None, amount=None, storage_key=None
) -> list:
    """The standard columns, typed alike so that the SELECTs of all kinds union."""
    return [
        literal(kind, String).label("kind"),
        cast(object_id, BigInteger).label("object_id"),
        cast(claim_id, BigInteger).label("claim_id"),
        cast(created_at, DateTime(timezone=True)).label("created_at"),
        cast(func.coalesce(source, ""), String).label("source"),
        cast(func.coalesce(reference, ""), String).label("reference"),
        cast(amount, Numeric(12, 2)).label("amount"),
        cast(func.coalesce(storage_key, ""), String).label("storage_key"),
    ]


# --- EOBs and the raw 835 -------------------------------------------------------------------------------------------


def _claim_eob_rows(claim_id: int | None, deposit_id: int | None) -> Select:
    # One EOB per claim and deposit (the job renders each posted CLP of the set to the same key).
    query = (
        select(
            *standard_columns(
                "eob",
                object_id=RemittanceClaim.deposit_id,
                claim_id=RemittanceClaim.claim_id,
                created_at=func.max(RemittanceClaim.created_at),
                source=func.max(Deposit.payer_name),
                reference=func.max(Deposit.trace_number),
                amount=func.sum(RemittanceClaim.paid),
            )
        )
        .join(Deposit, Deposit.id == RemittanceClaim.deposit_id)
        .where(RemittanceClaim.outcome == "posted", RemittanceClaim.claim_id.is_not(None))
        .group_by(RemittanceClaim.deposit_id, RemittanceClaim.claim_id)
    )
    if claim_id is not None:
        query = query.where(RemittanceClaim.claim_id == claim_id)
    if deposit_id is not None:
        query = query.where(RemittanceClaim.deposit_id == deposit_id)
    return query


def _deposit_rows(kind: str) -> Callable[[int | None, int | None], Select]:
    def rows(claim_id: int | None, deposit_id: int | None) -> Select:
        query = select(
            *standard_columns(
                kind,
                object_id=Deposit.id,
                created_at=Deposit.created_at,
                source=Deposit.payer_name,
                reference=Deposit.trace_number,
                amount=Deposit.amount,
            )
        )
        if kind == "remittance_eob":
            # The job renders a payment's EOB once something of it posted.
            query = query.where(
                exists().where(RemittanceClaim.deposit_id == Deposit.id, RemittanceClaim.outcome.in_(_SPOKE_OF))
            )
        if claim_id is not None:
            query = query.where(
                exists().where(
                    RemittanceClaim.deposit_id == Deposit.id,
                    RemittanceClaim.claim_id == claim_id,
                    RemittanceClaim.outcome.in_(_SPOKE_OF),
                )
            )
        if deposit_id is not None:
            query = query.where(Deposit.id == deposit_id)
        if kind == "835":
            query = query.where(Deposit.storage_key != "")
        return query

    return rows


def _trace(row) -> str:
    return row.reference or str(row.object_id)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "file"


def ensure_era_file(session: Session, storage: Storage, document: Document) -> None:
    """Cut the deposit's transaction set out of the file it came in and keep it at its derived key (once)."""
    if storage.exists(document.storage_key):
        return
    found = session.execute(
        select(Deposit.storage_key, InboundFile.content_sha256)
        .join(InboundFile, InboundFile.id == Deposit.inbound_file_id)
        .where(Deposit.id == document.object_id)
    ).one_or_none()
    if found is None or not found.storage_key:
        raise NotFound(f"the 835 of remittance {document.object_id} is not in storage")
    try:
        data = storage.get(found.storage_key)
    except StorageKeyNotFound as exc:
        raise NotFound(f"the 835 of remittance {document.object_id} is not in storage") from exc
    storage.put(document.storage_key, era_file(data, found.content_sha256), content_type=X12)


def _x12_text(segments: list[Segment], interchange: Interchange) -> str:
    terminator = interchange.delimiters.segment
    # One segment a line, as people read them, unless the terminator already is a line break.
    end = terminator if terminator in ("\n", "\r") else terminator + "\n"
    return "".join(str(seg) + end for seg in segments)


def era_file(data: bytes, set_content_key: str) -> bytes:
    """The one 835 transaction set of `data` whose content key is `set_content_key`, in the envelope it came in
    (ISA and GS as sent, GE and IEA counting one set): a complete 835 file holding nothing else."""
    try:
        interchanges = parse_envelopes(read_segments(data), check_counts=False, check_control_numbers=False)
    except X12Error as exc:
        raise NotFound(f"the stored 835 no longer parses: {exc}") from exc
    for interchange in interchanges:
        for group in interchange.groups:
            for ts in group.transactions:
                if content_key(ts.segments) != set_content_key:
                    continue
                if interchange.synthetic or interchange.header is None or group.header is None:
                    return _x12_text(list(ts.segments), interchange).encode()
                ge = Segment("GE", ["GE", "1", group.control_number], 0, interchange.delimiters)
                iea = Segment("IEA", ["IEA", "1", interchange.control_number], 0, interchange.delimiters)
                segments = [interchange.header, group.header, *ts.segments, ge, iea]
                return _x12_text(segments, interchange).encode()
    raise NotFound("the stored 835 no longer holds this remittance's transaction set")


_EOB_MISSING = "is not ready yet: EOBs are rendered shortly after the payment posts"

register(
    DocumentKind(
        name="eob",
        label="EOB",
        rows=_claim_eob_rows,
        describe=lambda slug, row: (
            eob_key(slug, row.object_id, row.claim_id),
            f"eob-claim-{row.claim_id}-{_safe_name(_trace(row))}.pdf",
            f"EOB of claim {row.claim_id} ({row.source or 'payer'}, trace {_trace(row)})",
        ),
        reference_label="trace",
        missing=_EOB_MISSING,
    ),
    of_deposit=True,
)
register(
    DocumentKind(
        name="remittance_eob",
        label="Payment EOB",
        rows=_deposit_rows("remittance_eob"),
        describe=lambda slug, row: (
            eob_key(slug, row.object_id),
            f"eob-payment-{_safe_name(_trace(row))}.pdf",
            f"EOB of the payment {_trace(row)} ({row.source or 'payer'})",
        ),
        reference_label="trace",
        missing=_EOB_MISSING,
    ),
    of_deposit=True,
)
register(
    DocumentKind(
        name="835",
        label="835 remittance file",
        rows=_deposit_rows("835"),
        describe=lambda slug, row: (
            era_key(slug, row.object_id),
            f"835-{_safe_name(_trace(row))}.835",
            f"835 remittance file of the payment {_trace(row)} ({row.source or 'payer'})",
        ),
        content_type=X12,
        listed=False,
        prepare=ensure_era_file,
        reference_label="trace",
    ),
    of_deposit=True,
)


# --- patient statements and appeal letters -------------------------------------------------------------------------


def _statement_rows(claim_id: int | None, deposit_id: int | None) -> Select:
    # A statement is the patient's, of all their visits: never one claim's or one payment's document.
    query = (
        select(
            *standard_columns(
                "statement",
                object_id=Statement.id,
                created_at=Statement.created_at,
                source=func.concat_ws(" ", Patient.first_name, Patient.last_name),
                reference=Patient.account_number,
                amount=Statement.patient_balance,
                storage_key=Statement.storage_key,
            )
        )
        .join(Patient, Patient.id == Statement.patient_id)
        .where(Statement.storage_key != "")
    )
    if claim_id is not None or deposit_id is not None:
        query = query.where(false())
    return query


def _appeal_rows(claim_id: int | None, deposit_id: int | None) -> Select:
    query = (
        select(
            *standard_columns(
                "appeal",
                object_id=Appeal.id,
                claim_id=Appeal.claim_id,
                created_at=Appeal.created_at,
                source=Payer.name,
                reference=Claim.payer_claim_number,
                storage_key=Appeal.storage_key,
            )
        )
        .join(Claim, Claim.id == Appeal.claim_id)
        .outerjoin(Payer, Payer.id == Claim.payer_id)
        # The letter is a document once its PDF is stored (the service records the key after the upload).
        .where(Appeal.storage_key != "")
    )
    if claim_id is not None:
        query = query.where(Appeal.claim_id == claim_id)
    if deposit_id is not None:
        query = query.where(false())
    return query


register(
    DocumentKind(
        name="statement",
        label="Patient statement",
        rows=_statement_rows,
        describe=lambda slug, row: (
            row.storage_key,
            f"statement-{row.object_id}-{row.created_at:%Y-%m-%d}.pdf",
            f"Statement {row.object_id} for {row.source} (account {row.reference})",
        ),
        reference_label="account",
    )
)
register(
    DocumentKind(
        name="appeal",
        label="Appeal letter",
        rows=_appeal_rows,
        describe=lambda slug, row: (
            row.storage_key,
            f"appeal-{row.object_id}-claim-{row.claim_id}.pdf",
            f"Appeal letter {row.object_id} of claim {row.claim_id} (to {row.source or 'the payer'})",
        ),
        reference_label="payer claim number",
    )
)


# --- reading --------------------------------------------------------------------------------------------------------


def document_id(kind: str, object_id: int, claim_id: int | None = None) -> str:
    return f"{kind}-{object_id}" + (f"-{claim_id}" if claim_id is not None else "")


def _document(slug: str, row) -> Document:
    kind = KINDS[row.kind]
    key, filename, title = kind.describe(slug, row)
    return Document(
        id=document_id(row.kind, row.object_id, row.claim_id),
        kind=row.kind,
        kind_label=kind.label,
        title=title,
        filename=filename,
        content_type=kind.content_type,
        storage_key=key,
        object_id=row.object_id,
        claim_id=row.claim_id,
        created_at=row.created_at,
        source=row.source,
        reference=row.reference,
        reference_label=kind.reference_label,
        amount=row.amount,
    )


def _union(kinds: list[DocumentKind], claim_id: int | None = None, deposit_id: int | None = None):
    selects = [k.rows(claim_id, deposit_id) for k in kinds]
    if not selects:
        return select(*standard_columns("none", object_id=None, created_at=None)).where(false()).subquery("docs")
    return (selects[0] if len(selects) == 1 else selects[0].union_all(*selects[1:])).subquery("docs")


def _ordered(docs):
    # Newest first; the kind order of the registry and the ids keep equal times in a stable order.
    rank = case({name: n for n, name in enumerate(KINDS)}, value=docs.c.kind, else_=len(KINDS))
    return select(docs).order_by(docs.c.created_at.desc(), docs.c.object_id.desc(), rank, docs.c.claim_id)


def practice_documents(
    session: Session, slug: str, *, kind: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[Document], int]:
    """The practice's listed documents, newest first, optionally of one kind: (page, total), two statements."""
    kinds = [KINDS[kind]] if kind else listed_kinds()
    docs = _union(kinds)
    total = session.scalar(select(func.count()).select_from(docs)) or 0
    rows = session.execute(_ordered(docs).limit(per_page).offset((page - 1) * per_page)).all()
    return [_document(slug, r) for r in rows], total


def claim_documents(session: Session, slug: str, claim_id: int) -> list[Document]:
    """Every document about the claim: its EOB from each deposit that posted it, those payments' EOBs and 835s, and
    its appeal letters."""
    return [_document(slug, r) for r in session.execute(_ordered(_union(list(KINDS.values()), claim_id=claim_id)))]


def deposit_documents(session: Session, slug: str, deposit_id: int) -> list[Document]:
    """The payment's EOB, the EOB of each claim it posted and its 835."""
    docs = _union([KINDS[name] for name in KINDS if name in DEPOSIT_KINDS], deposit_id=deposit_id)
    return [_document(slug, r) for r in session.execute(_ordered(docs))]


def find_document(session: Session, slug: str, doc_id: str) -> Document:
    """The document of this id, if the practice's data says it exists; NotFound otherwise."""
    match = DOCUMENT_ID_RE.match(doc_id or "")
    kind = KINDS.get(match.group("kind")) if match else None
    if match is None or kind is None:
        raise NotFound(f"document {doc_id!r} not found")
    object_id, claim_id = int(match.group("object")), match.group("claim")
    docs = kind.rows(int(claim_id) if claim_id else None, None).subquery("docs")
    query = select(docs).where(docs.c.object_id == object_id)
    query = query.where(docs.c.claim_id == int(claim_id)) if claim_id else query.where(docs.c.claim_id.is_(None))
    row = session.execute(query.limit(1)).one_or_none()
    if row is None:
        raise NotFound(f"document {doc_id!r} not found")
    document = _document(slug, row)
    # A key recorded on a row is used only under the practice's own prefix (derived keys always are).
    if not document.storage_key.startswith(f"practices/{slug}/"):
        raise NotFound(f"document {doc_id!r} not found")
    return document


def download_link(session: Session, storage: Storage, document: Document) -> str:
    """A short-lived link to the document's bytes: presigned by S3, or the web app's signed file link with local
    storage (both from the one storage client, living MEDBILL_FILE_LINK_SECONDS). NotFound while the file is not
    (yet) in storage."""
    kind = KINDS[document.kind]
    if kind.prepare is not None:
        kind.prepare(session, storage, document)
    try:
        return storage.presigned_url(document.storage_key, download_name=document.filename)
    except StorageKeyNotFound as exc:
        raise NotFound(f"{document.title} {kind.missing}", errors={"document": ["not in storage yet"]}) from exc


def audited_download(
    session: Session, storage: Storage, access: PracticeAccess, document: Document, *, ip: str | None = None
) -> str:
    """`download_link`, with the audit entry of the download (in the caller's transaction: the caller commits)."""
    url = download_link(session, storage, document)
    detail = {"kind": document.kind, "claim_id": document.claim_id, "deposit_id": document.deposit_id}
    audit.record_access(session, access, "document", document.id, "download", detail, ip=ip)
    return url
