"""The core tables: patients, payers and setup, encounters, claims, submissions, the ledger and remittances."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from billing.money import MoneyColumn
from tenants.orm import SharedBase, TenantBase, utcnow_column


class Patient(TenantBase):
    __tablename__ = "patients"
    __table_args__ = (
        CheckConstraint("sex IN ('F', 'M', 'U')", name="sex"),
        Index("ix_patients_name", "last_name", "first_name"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The practice's own account number (MRN): what billers and the practice system call the patient.
    account_number: Mapped[str] = mapped_column(String(30), unique=True)
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    middle_name: Mapped[str] = mapped_column(String(60), server_default="")
    date_of_birth: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    address_line1: Mapped[str] = mapped_column(String(55))
    address_line2: Mapped[str] = mapped_column(String(55), server_default="")
    city: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(9))
    # Contact details are often unknown at registration.
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = utcnow_column()
    updated_at: Mapped[datetime] = utcnow_column()


class AgencyPlacement(TenantBase):
    """A patient account placed with a collection agency; agency users see only what is placed with them."""

    __tablename__ = "agency_placements"
    __table_args__ = (
        Index(
            "uq_agency_placements_open",
            "patient_id",
            unique=True,
            postgresql_where=text("recalled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # shared.collection_agencies.id; no cross-schema foreign key, so a practice schema stays self-contained
    # (movable to another node when schemas are distributed).
    agency_id: Mapped[int] = mapped_column(BigInteger, index=True)
    placed_at: Mapped[datetime] = utcnow_column()
    # Null while the account is with the agency.
    recalled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PatientImport(TenantBase):
    """A CSV of patients uploaded for registration in bulk; one row per file content (sha256)."""

    __tablename__ = "patient_imports"
    __table_args__ = (CheckConstraint("status IN ('queued', 'done', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_total: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_created: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_existing: Mapped[int] = mapped_column(Integer, server_default="0")
    # Row-level problems of a rejected file: {"row 3": ["date_of_birth: ..."]}.
    errors: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    job_id: Mapped[str | None] = mapped_column(Text)


# --- payers, providers, the practice's billing identity -------------------------------------------------------------


class Payer(SharedBase):
    """The payer list, as the clearinghouse knows them: entries curated at platform level (company_id NULL, added by
    the operator with `medbill payers add`) that every company sees, and a company's own entries that only it sees
    and uses. A payer id is unique among the platform's entries and within each company's."""

    __tablename__ = "payers"
    __table_args__ = (
        Index("uq_payers_platform_payer_id", "payer_id", unique=True, postgresql_where=text("company_id IS NULL")),
        Index(
            "uq_payers_company_payer_id", "company_id", "payer_id", unique=True,
            postgresql_where=text("company_id IS NOT NULL"),
        ),  # fmt: skip
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payer_id: Mapped[str] = mapped_column(String(80))  # the clearinghouse's payer id (NM1*PR PI)
    # shared.billing_companies.id of the company that added it; NULL = curated at platform level.
    company_id: Mapped[int | None] = mapped_column(ForeignKey("billing_companies.id"))
    name: Mapped[str] = mapped_column(String(60))
    claim_filing_indicator: Mapped[str] = mapped_column(String(2))  # SBR09: CI, MB, MC, BL, HM, ...
    address_line1: Mapped[str] = mapped_column(String(55), server_default="")
    city: Mapped[str] = mapped_column(String(30), server_default="")
    state: Mapped[str] = mapped_column(String(2), server_default="")
    postal_code: Mapped[str] = mapped_column(String(9), server_default="")
    created_at: Mapped[datetime] = utcnow_column()


class PracticePayer(TenantBase):
    """A payer this practice bills, with its filing rules and per-payer scrubber settings."""

    __tablename__ = "practice_payers"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payer_id: Mapped[int] = mapped_column(BigInteger, unique=True)  # shared.payers.id
    timely_filing_days: Mapped[int] = mapped_column(Integer, server_default="365")
    appeal_window_days: Mapped[int] = mapped_column(Integer, server_default="180")
    # {"rule_name": "off" | "warning"}
    scrub_overrides: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class Provider(TenantBase):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    npi: Mapped[str] = mapped_column(String(10), unique=True)
    first_name: Mapped[str] = mapped_column(String(35))
    last_name: Mapped[str] = mapped_column(String(60))
    credential: Mapped[str] = mapped_column(String(10), server_default="")
    taxonomy_code: Mapped[str] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = utcnow_column()


class BillingIdentity(TenantBase):
    """How the practice bills: group NPI, tax id, addresses, and its clearinghouse connection. One row."""

    __tablename__ = "billing_identity"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    organization_name: Mapped[str] = mapped_column(String(60))
    group_npi: Mapped[str] = mapped_column(String(10))
    tax_id: Mapped[str] = mapped_column(String(9))
    taxonomy_code: Mapped[str | None] = mapped_column(String(10))
    address_line1: Mapped[str] = mapped_column(String(55))
    address_line2: Mapped[str] = mapped_column(String(55), server_default="")
    city: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(9))
    # Pay-to address only when payments go somewhere else than the billing address.
    pay_to_address_line1: Mapped[str | None] = mapped_column(String(55))
    pay_to_city: Mapped[str | None] = mapped_column(String(30))
    pay_to_state: Mapped[str | None] = mapped_column(String(2))
    pay_to_postal_code: Mapped[str | None] = mapped_column(String(9))
    contact_name: Mapped[str] = mapped_column(String(60))
    contact_phone: Mapped[str] = mapped_column(String(15))
    contact_email: Mapped[str] = mapped_column(String(254), server_default="")
    clearinghouse_name: Mapped[str] = mapped_column(String(60), server_default="")
    submitter_id: Mapped[str] = mapped_column(String(15), server_default="")  # our id at the clearinghouse (ISA06)
    receiver_id: Mapped[str] = mapped_column(String(15), server_default="")  # the clearinghouse's id (ISA08)
    usage_indicator: Mapped[str] = mapped_column(String(1), server_default="P")  # ISA15: P production, T test
    # Clearinghouse transport settings, validated and used by billing.connections; credentials by company secret name.
    transport: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = utcnow_column()


# --- patients' guarantors and coverage ------------------------------------------------------------------------------


class Guarantor(TenantBase):
    """Who is responsible for the patient's balance when it is not the patient (a parent, a spouse)."""

    __tablename__ = "guarantors"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    relationship: Mapped[str] = mapped_column(String(10))  # parent, spouse, other
    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    address_line1: Mapped[str] = mapped_column(String(55))
    address_line2: Mapped[str] = mapped_column(String(55), server_default="")
    city: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(9))
    phone: Mapped[str | None] = mapped_column(String(20))


class Coverage(TenantBase):
    """A patient's policy with a payer. The subscriber is the patient (relationship 18) or someone else."""

    __tablename__ = "coverages"
    __table_args__ = (
        CheckConstraint("priority IN (1, 2, 3)", name="priority"),
        CheckConstraint("end_date IS NULL OR end_date >= effective_date", name="dates"),
        Index("ix_coverages_patient", "patient_id", "priority"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    payer_id: Mapped[int] = mapped_column(BigInteger)  # shared.payers.id
    priority: Mapped[int] = mapped_column(SmallInteger)  # 1 primary, 2 secondary, 3 tertiary
    member_id: Mapped[str] = mapped_column(String(80))
    group_number: Mapped[str | None] = mapped_column(String(50))
    relationship_code: Mapped[str] = mapped_column(String(2), server_default="18")  # patient to subscriber
    # Subscriber details; used only when the subscriber is not the patient.
    subscriber_first_name: Mapped[str | None] = mapped_column(String(35))
    subscriber_last_name: Mapped[str | None] = mapped_column(String(60))
    subscriber_date_of_birth: Mapped[date | None] = mapped_column(Date)
    subscriber_sex: Mapped[str | None] = mapped_column(String(1))
    subscriber_address_line1: Mapped[str | None] = mapped_column(String(55))
    subscriber_city: Mapped[str | None] = mapped_column(String(30))
    subscriber_state: Mapped[str | None] = mapped_column(String(2))
    subscriber_postal_code: Mapped[str | None] = mapped_column(String(9))
    effective_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = utcnow_column()


# --- pricing --------------------------------------------------------------------------------------------------------


class FeeScheduleItem(TenantBase):
    """What the practice charges for a procedure code (optionally per modifier)."""

    __tablename__ = "fee_schedule"
    __table_args__ = (UniqueConstraint("procedure_code", "modifier"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    procedure_code: Mapped[str] = mapped_column(String(5))
    modifier: Mapped[str] = mapped_column(String(2), server_default="")
    charge: Mapped[Decimal] = mapped_column(MoneyColumn)


class PayerContract(TenantBase):
    """A payer's negotiated rates for a period; codes without a rate are allowed a percentage of billed."""

    __tablename__ = "payer_contracts"
    __table_args__ = (CheckConstraint("effective_to IS NULL OR effective_to >= effective_from", name="dates"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payer_id: Mapped[int] = mapped_column(BigInteger, index=True)  # shared.payers.id
    name: Mapped[str] = mapped_column(String(100))
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    default_percent_of_billed: Mapped[Decimal | None] = mapped_column(Numeric(6, 3))


class ContractRate(TenantBase):
    __tablename__ = "contract_rates"
    __table_args__ = (UniqueConstraint("contract_id", "procedure_code", "modifier"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("payer_contracts.id", ondelete="CASCADE"))
    procedure_code: Mapped[str] = mapped_column(String(5))
    modifier: Mapped[str] = mapped_column(String(2), server_default="")
    allowed: Mapped[Decimal] = mapped_column(MoneyColumn)


# --- visits and their charges ---------------------------------------------------------------------------------------


class Encounter(TenantBase):
    __tablename__ = "encounters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    date_of_service: Mapped[date] = mapped_column(Date)
    place_of_service: Mapped[str] = mapped_column(String(2))
    rendering_provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    # ICD-10-CM codes in order (the first is principal); stored with the dot, as clinicians write them.
    diagnoses: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()

    lines: Mapped[list[ServiceLine]] = relationship(
        back_populates="encounter", order_by="ServiceLine.line_number", lazy="selectin"
    )


class ServiceLine(TenantBase):
    __tablename__ = "service_lines"
    __table_args__ = (UniqueConstraint("encounter_id", "line_number"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"))
    line_number: Mapped[int] = mapped_column(SmallInteger)
    procedure_code: Mapped[str] = mapped_column(String(5))
    modifiers: Mapped[list[str]] = mapped_column(ARRAY(String(2)), server_default="{}")
    units: Mapped[Decimal] = mapped_column(Numeric(9, 3))
    diagnosis_pointers: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    charge: Mapped[Decimal] = mapped_column(MoneyColumn)
    date_of_service: Mapped[date] = mapped_column(Date)
    place_of_service: Mapped[str] = mapped_column(String(2))
    rendering_provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))

    encounter: Mapped[Encounter] = relationship(back_populates="lines")


# --- claims ---------------------------------------------------------------------------------------------------------


class Claim(TenantBase):
    """A bill to one payer for lines of one encounter. Its id is the patient control number (CLM01)."""

    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint("frequency_code IN ('1', '7', '8')", name="frequency"),
        Index("ix_claims_status", "status"),
        Index("ix_claims_patient", "patient_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    encounter_id: Mapped[int] = mapped_column(ForeignKey("encounters.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    coverage_id: Mapped[int] = mapped_column(ForeignKey("coverages.id"))
    payer_id: Mapped[int] = mapped_column(BigInteger, index=True)  # shared.payers.id
    rendering_provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    status: Mapped[str] = mapped_column(String(20), server_default="draft")
    frequency_code: Mapped[str] = mapped_column(String(1), server_default="1")
    original_claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"))
    payer_claim_number: Mapped[str | None] = mapped_column(String(50))
    total_charge: Mapped[Decimal] = mapped_column(MoneyColumn)
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when a payer's 835 says it forwarded the claim to another payer (CLP02 19/20/21, NM1*TT): that payer gets
    # the claim from the payer, so no secondary claim of ours goes to it.
    crossover_payer_name: Mapped[str | None] = mapped_column(String(60))
    crossover_payer_id: Mapped[str | None] = mapped_column(String(80))

    lines: Mapped[list[ClaimLine]] = relationship(order_by="ClaimLine.line_number", lazy="selectin")

    @property
    def patient_control_number(self) -> str:
        return str(self.id)


class ClaimLine(TenantBase):
    """A service line as billed on one claim. Its id is the line item control number (REF*6R)."""

    __tablename__ = "claim_lines"
    __table_args__ = (UniqueConstraint("claim_id", "line_number"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    service_line_id: Mapped[int] = mapped_column(ForeignKey("service_lines.id"), index=True)
    line_number: Mapped[int] = mapped_column(SmallInteger)
    charge: Mapped[Decimal] = mapped_column(MoneyColumn)

    service_line: Mapped[ServiceLine] = relationship(lazy="joined")


class ClaimStatusChange(TenantBase):
    """Every transition of a claim: who, when, why. Append-only."""

    __tablename__ = "claim_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = utcnow_column()
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(20))  # user, scrubber, submission, 999, 277ca, remittance
    reason: Mapped[str] = mapped_column(Text, server_default="")


class ScrubFinding(TenantBase):
    __tablename__ = "scrub_findings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    run: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(10))  # error, warning
    field: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = utcnow_column()


# --- submissions and what comes back --------------------------------------------------------------------------------


class ControlCounter(TenantBase):
    """Increasing control numbers per practice and clearinghouse (ISA13, GS06, ST02)."""

    __tablename__ = "control_counters"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Submission(TenantBase):
    """One 837P interchange sent (or to be sent) to the clearinghouse."""

    __tablename__ = "submissions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('created', 'transmitted', 'failed', 'accepted', 'partially_accepted', 'rejected')",
            name="status",
        ),
        UniqueConstraint("clearinghouse_name", "interchange_control_number"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    clearinghouse_name: Mapped[str] = mapped_column(String(60))
    interchange_control_number: Mapped[int] = mapped_column(Integer)
    group_control_number: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(200))
    storage_key: Mapped[str] = mapped_column(String(500))
    file_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), server_default="created")
    claim_count: Mapped[int] = mapped_column(Integer)
    total_charge: Mapped[Decimal] = mapped_column(MoneyColumn)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str] = mapped_column(Text, server_default="")
    ack_detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = utcnow_column()
    transmitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SubmissionClaim(TenantBase):
    __tablename__ = "submission_claims"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), primary_key=True, index=True)
    transaction_control_number: Mapped[str] = mapped_column(String(9))


class InboundFile(TenantBase):
    """An X12 transaction set received for this practice (999, 277CA, 835), applied exactly once."""

    __tablename__ = "inbound_files"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    # Hash of the transaction set's own text: the same set inside another file is still the same set.
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    storage_key: Mapped[str] = mapped_column(String(500))
    received_at: Mapped[datetime] = utcnow_column()
    summary: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class ClaimAcknowledgement(TenantBase):
    """What the payer said about a claim in a 277CA (accepted, or rejected with reasons in words)."""

    __tablename__ = "claim_acknowledgements"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    inbound_file_id: Mapped[int] = mapped_column(ForeignKey("inbound_files.id"))
    accepted: Mapped[bool] = mapped_column(Boolean)
    payer_claim_number: Mapped[str | None] = mapped_column(String(50))
    reasons: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    at: Mapped[datetime] = utcnow_column()


# --- the ledger -----------------------------------------------------------------------------------------------------


class LedgerEntry(TenantBase):
    """One financial event on the account of a service line, with the claim (and claim line) that caused it: a
    service is charged once, and every claim that bills it (primary, secondary, tertiary, replacement) posts to the
    same account. Append-only: a correction is a reversal entry plus a new entry.
    `insurance_delta` and `patient_delta` say how the event moves what the payers and the patient owe; balances are
    their sums, so `charge - payments - adjustments == insurance balance + patient balance` holds by construction
    and is tested over random sequences of events."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('charge', 'insurance_payment', 'contractual_adjustment', 'other_adjustment', "
            "'patient_responsibility', 'transfer_to_secondary', 'patient_payment', 'write_off', 'refund', 'reversal')",
            name="kind",
        ),
        Index("ix_ledger_entries_claim", "claim_id"),
        Index("ix_ledger_entries_patient", "patient_id"),
        Index("ix_ledger_entries_posted_on", "posted_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    service_line_id: Mapped[int] = mapped_column(ForeignKey("service_lines.id"), index=True)  # the account
    claim_line_id: Mapped[int] = mapped_column(ForeignKey("claim_lines.id"), index=True)  # the trail
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(30))
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    insurance_delta: Mapped[Decimal] = mapped_column(MoneyColumn)
    patient_delta: Mapped[Decimal] = mapped_column(MoneyColumn)
    # CARC group and reason for adjustments (CO-45, PR-1 ...), empty otherwise.
    group_code: Mapped[str] = mapped_column(String(2), server_default="")
    reason_code: Mapped[str] = mapped_column(String(5), server_default="")
    reverses_entry_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"), unique=True)
    source_type: Mapped[str] = mapped_column(String(20))  # remittance, user, job
    source_id: Mapped[str] = mapped_column(String(100), server_default="")
    # What was posted, once: a retried posting finds its key taken and adds nothing.
    posting_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    note: Mapped[str] = mapped_column(Text, server_default="")
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    # The accounting date reports group by: the 835's payment date, the day a claim was billed, the day a patient
    # paid; not the moment the row was written.
    posted_on: Mapped[date] = mapped_column(Date, server_default=text("CURRENT_DATE"))
    created_at: Mapped[datetime] = utcnow_column()


# --- remittances (835) ----------------------------------------------------------------------------------------------


class Deposit(TenantBase):
    """The payment of one 835 transaction set (check or EFT), to reconcile with the bank. The amount may be 0
    (a notification) or negative (more taken back than paid)."""

    __tablename__ = "deposits"
    __table_args__ = (UniqueConstraint("payer_identifier", "trace_number", "inbound_file_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    inbound_file_id: Mapped[int] = mapped_column(ForeignKey("inbound_files.id"), index=True)
    payer_name: Mapped[str] = mapped_column(String(60), server_default="")
    payer_id: Mapped[str] = mapped_column(String(80), server_default="")  # REF*2U, else N104
    payer_identifier: Mapped[str] = mapped_column(String(50), server_default="")  # TRN03
    payment_method: Mapped[str] = mapped_column(String(10))  # BPR04: ACH, CHK, NON...
    handling_code: Mapped[str] = mapped_column(String(2), server_default="")  # BPR01
    trace_number: Mapped[str] = mapped_column(String(50))  # TRN02
    payment_date: Mapped[date | None] = mapped_column(Date)  # BPR16
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)  # BPR02
    payee_npi: Mapped[str | None] = mapped_column(String(80))
    payee_tax_id: Mapped[str | None] = mapped_column(String(80))
    storage_key: Mapped[str] = mapped_column(String(500), server_default="")  # the raw file it came in
    created_at: Mapped[datetime] = utcnow_column()


class ProviderAdjustmentEntry(TenantBase):
    """One PLB reason/amount pair of a deposit (interest, recoupment, forward balance...). A positive amount reduces
    the payment."""

    __tablename__ = "provider_adjustments"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    deposit_id: Mapped[int] = mapped_column(ForeignKey("deposits.id"), index=True)
    reason_code: Mapped[str] = mapped_column(String(5))
    reference: Mapped[str | None] = mapped_column(String(50))
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    fiscal_period_date: Mapped[date | None] = mapped_column(Date)
    # Set when the reference names one of our claims (its id or the payer's claim number).
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)


class RemittanceClaim(TenantBase):
    """One CLP of a deposit and what became of it: posted, an exception (with the reason; the exception queue),
    a reversal, or a duplicate."""

    __tablename__ = "remittance_claims"
    __table_args__ = (
        CheckConstraint("outcome IN ('posted', 'exception', 'reversal', 'duplicate')", name="outcome"),
        Index("ix_remittance_claims_outcome", "outcome"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    deposit_id: Mapped[int] = mapped_column(ForeignKey("deposits.id"), index=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id"), index=True)
    patient_control_number: Mapped[str] = mapped_column(String(38))
    status_code: Mapped[str] = mapped_column(String(2))
    charge: Mapped[Decimal] = mapped_column(MoneyColumn)
    paid: Mapped[Decimal] = mapped_column(MoneyColumn)
    patient_responsibility: Mapped[Decimal] = mapped_column(MoneyColumn)
    payer_claim_number: Mapped[str] = mapped_column(String(50), server_default="")
    segment_position: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10))
    exception_reason: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = utcnow_column()


# --- underpayments --------------------------------------------------------------------------------------------------


class UnderpaymentTolerance(TenantBase):
    """How far below the contract a payer may pay before a line is flagged, set on the practice's enrolment with the
    payer. Without a row the default of billing.underpayments applies ($1.00 or 1 %, whichever is larger)."""

    __tablename__ = "underpayment_tolerances"

    payer_id: Mapped[int] = mapped_column(
        ForeignKey("practice_payers.payer_id", ondelete="CASCADE"), primary_key=True
    )  # shared.payers.id, through the enrolment
    amount: Mapped[Decimal] = mapped_column(MoneyColumn, server_default="1.00")
    percent: Mapped[Decimal] = mapped_column(Numeric(6, 3), server_default="1")


class Underpayment(TenantBase):
    """A posted line whose paid + patient-responsibility amount falls short of the contract's allowed amount by more
    than the tolerance: the underpayment queue. One row per line and deposit (a retried posting adds none)."""

    __tablename__ = "underpayments"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        UniqueConstraint("claim_line_id", "deposit_id"),
        Index("ix_underpayments_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id"), index=True)
    claim_line_id: Mapped[int] = mapped_column(ForeignKey("claim_lines.id"))
    deposit_id: Mapped[int] = mapped_column(ForeignKey("deposits.id"), index=True)
    remittance_claim_id: Mapped[int | None] = mapped_column(ForeignKey("remittance_claims.id"))
    payer_id: Mapped[int] = mapped_column(BigInteger)  # shared.payers.id
    procedure_code: Mapped[str] = mapped_column(String(5))
    expected_allowed: Mapped[Decimal] = mapped_column(MoneyColumn)
    paid: Mapped[Decimal] = mapped_column(MoneyColumn)
    patient_responsibility: Mapped[Decimal] = mapped_column(MoneyColumn)
    shortfall: Mapped[Decimal] = mapped_column(MoneyColumn)
    tolerance: Mapped[Decimal] = mapped_column(MoneyColumn)
    status: Mapped[str] = mapped_column(String(10), server_default="open")
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = utcnow_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_user_id: Mapped[int | None] = mapped_column(BigInteger)
