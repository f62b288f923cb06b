"""Practice setup over HTTP: the shared payer master list, and per practice its payer enrolments, providers, billing
identity, patients' coverages and guarantors, fee schedule and payer contracts. Thin views over billing.setup."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import PageArgs, PageMeta
from api.security import access, db_session, policy, principal
from billing import connections, setup
from billing.models import (
    BillingIdentity,
    ContractRate,
    FeeScheduleItem,
    Payer,
    PayerContract,
    PracticePayer,
    Provider,
)
from billing.money import AMOUNT_RULE, MAX_AMOUNT, entered_amount
from medbill.errors import NotFound
from tenants.audit import mask_secrets

blp = Blueprint(
    "setup",
    __name__,
    url_prefix="/api/v1",
    description="Practice setup: payers, providers, billing identity, coverages, fee schedule, contracts",
)

MAX_ID = 2**63 - 1


# --- shared helpers (also used by api.claims) -----------------------------------------------------------------------


MONEY_PATTERN = r"^-?[0-9]{1,10}\.[0-9]{2}$"


class MoneyField(fields.Decimal):
    """The API's one amount field: a string with two decimals in JSON ("150.00"). On input (a string or a number) it
    is checked by billing.money.entered_amount: exact cents (50.001 is refused, not rounded) and at most MAX_AMOUNT
    either way, whatever other validators the field is given."""

    default_error_messages = {"amount": AMOUNT_RULE}

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        if isinstance(value, float):
            # JSON numbers arrive as floats: their shortest repr is what the client wrote ("50.001" stays 50.001).
            value = repr(value)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.make_error("amount")
        try:
            return entered_amount(value)
        except ValueError as exc:
            raise self.make_error("amount") from exc


def Money(**kwargs) -> MoneyField:  # noqa: N802 - reads like a field class
    """An amount field (see MoneyField); `validate` adds rules (e.g. positive) to the ceiling, never replaces it."""
    kwargs["metadata"] = {
        "pattern": MONEY_PATTERN, "example": "150.00", "x-maximum": str(MAX_AMOUNT), "x-minimum": str(-MAX_AMOUNT),
    } | kwargs.get("metadata", {})  # fmt: skip
    return MoneyField(as_string=True, places=2, rounding=ROUND_HALF_UP, **kwargs)


def Id(**kwargs) -> fields.Integer:  # noqa: N802 - reads like a field class
    """A row id (fits a PostgreSQL bigint)."""
    kwargs.setdefault("validate", validate.Range(min=1, max=MAX_ID))
    return fields.Integer(**kwargs)


def _strip_dashes(data: dict, *keys: str) -> dict:
    for key in keys:
        if isinstance(data.get(key), str):
            data[key] = data[key].replace("-", "").strip()
    return data


def _upper(data: dict, *keys: str) -> dict:
    for key in keys:
        if isinstance(data.get(key), str):
            data[key] = data[key].strip().upper()
    return data


# --- schemas --------------------------------------------------------------------------------------------------------


class PayerIn(Schema):
    payer_id = fields.String(
        required=True, validate=validate.Length(min=1, max=80), metadata={"description": "clearinghouse payer id"}
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    claim_filing_indicator = fields.String(
        required=True, validate=validate.Length(max=2), metadata={"description": "SBR09: CI, MB, MC, BL, HM, ..."}
    )
    address_line1 = fields.String(load_default="", validate=validate.Length(max=55))
    city = fields.String(load_default="", validate=validate.Length(max=30))
    state = fields.String(load_default="", validate=validate.Length(max=2))
    postal_code = fields.String(load_default="", validate=validate.Length(max=10))
    company = fields.String(
        load_default=None, validate=validate.Length(max=63),
        metadata={"description": "slug of the company the payer is for; needed only when you administer several"},
    )  # fmt: skip

    @post_load
    def _normalise(self, data, **_kw):
        return _upper(_strip_dashes(data, "postal_code"), "state", "claim_filing_indicator")


class PayerOut(Schema):
    id = fields.Integer(required=True)
    payer_id = fields.String(required=True, metadata={"description": "clearinghouse payer id"})
    company_id = fields.Integer(
        allow_none=True, metadata={"description": "the company whose own entry it is; null: curated at platform level"}
    )
    name = fields.String(required=True)
    claim_filing_indicator = fields.String(required=True)
    address_line1 = fields.String()
    city = fields.String()
    state = fields.String()
    postal_code = fields.String()
    created_at = fields.DateTime()


class PayerListArgs(PageArgs):
    q = fields.String(load_default=None, validate=validate.Length(max=80), metadata={"description": "name or payer id"})


class PayerPage(Schema):
    items = fields.List(fields.Nested(PayerOut), required=True)
    meta = fields.Nested(PageMeta, required=True)


class EnrolmentIn(Schema):
    timely_filing_days = fields.Integer(load_default=365, validate=validate.Range(min=1, max=3650))
    appeal_window_days = fields.Integer(load_default=180, validate=validate.Range(min=1, max=3650))
    scrub_overrides = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=dict,
        metadata={"description": '{"rule_name": "off" | "warning" | "error"}'},
    )
    active = fields.Boolean(load_default=True)


class EnrolmentOut(Schema):
    id = fields.Integer(required=True)
    payer_id = fields.Integer(required=True, metadata={"description": "the shared payer's id"})
    payer = fields.Nested(PayerOut, required=True)
    timely_filing_days = fields.Integer(required=True)
    appeal_window_days = fields.Integer(required=True)
    scrub_overrides = fields.Dict(required=True)
    active = fields.Boolean(required=True)


class ProviderIn(Schema):
    npi = fields.String(required=True, metadata={"description": "10 digits with a valid check digit"})
    first_name = fields.String(required=True, validate=validate.Length(max=35))
    last_name = fields.String(required=True, validate=validate.Length(max=60))
    credential = fields.String(load_default="", validate=validate.Length(max=10))
    taxonomy_code = fields.String(required=True, metadata={"description": "e.g. 207Q00000X"})


class ProviderOut(Schema):
    id = fields.Integer(required=True)
    npi = fields.String(required=True)
    first_name = fields.String(required=True)
    last_name = fields.String(required=True)
    credential = fields.String(required=True)
    taxonomy_code = fields.String(required=True)
    active = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class BillingIdentityIn(Schema):
    organization_name = fields.String(required=True, validate=validate.Length(max=60))
    group_npi = fields.String(required=True)
    tax_id = fields.String(required=True, metadata={"description": "EIN, 9 digits (a dash is allowed)"})
    taxonomy_code = fields.String(load_default=None, allow_none=True)
    address_line1 = fields.String(required=True, validate=validate.Length(max=55))
    address_line2 = fields.String(load_default="", validate=validate.Length(max=55))
    city = fields.String(required=True, validate=validate.Length(max=30))
    state = fields.String(required=True)
    postal_code = fields.String(required=True, metadata={"description": "ZIP+4: 9 digits (a dash is allowed)"})
    pay_to_address_line1 = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=55))
    pay_to_city = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    pay_to_state = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2))
    pay_to_postal_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10))
    contact_name = fields.String(required=True, validate=validate.Length(min=1, max=60))
    contact_phone = fields.String(required=True, validate=validate.Length(min=1, max=15))
    contact_email = fields.String(load_default="", validate=validate.Length(max=254))
    clearinghouse_name = fields.String(load_default="", validate=validate.Length(max=60))
    submitter_id = fields.String(load_default="", validate=validate.Length(max=15))
    receiver_id = fields.String(load_default="", validate=validate.Length(max=15))
    usage_indicator = fields.String(load_default="P", validate=validate.OneOf(["P", "T"]))
    transport = fields.Dict(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "clearinghouse connection; omitted or null: unchanged. Changing it needs the company "
            "admin role. {transport: sftp, host, port, username, password_secret | private_key_secret (the name "
            "of a company secret, PUT /api/v1/company/secrets/<name>), host_key_sha256, inbox, outbox} with a "
            "host the operator allows, or {transport: directory, subdir} (the company's own directory on the "
            "server). password_env, private_key_env, password, private_key and path are refused"
        },
    )

    @post_load
    def _normalise(self, data, **_kw):
        _upper(data, "pay_to_state")
        return _strip_dashes(data, "pay_to_postal_code")


class BillingIdentityOut(Schema):
    organization_name = fields.String(required=True)
    group_npi = fields.String(required=True)
    tax_id = fields.String(required=True)
    taxonomy_code = fields.String(allow_none=True)
    address_line1 = fields.String(required=True)
    address_line2 = fields.String(required=True)
    city = fields.String(required=True)
    state = fields.String(required=True)
    postal_code = fields.String(required=True)
    pay_to_address_line1 = fields.String(allow_none=True)
    pay_to_city = fields.String(allow_none=True)
    pay_to_state = fields.String(allow_none=True)
    pay_to_postal_code = fields.String(allow_none=True)
    contact_name = fields.String(required=True)
    contact_phone = fields.String(required=True)
    contact_email = fields.String(required=True)
    clearinghouse_name = fields.String(required=True)
    submitter_id = fields.String(required=True)
    receiver_id = fields.String(required=True)
    usage_indicator = fields.String(required=True)
    transport = fields.Function(lambda identity: mask_secrets(identity.transport or {}), required=True)
    updated_at = fields.DateTime(required=True)


class CoverageIn(Schema):
    payer_id = Id(required=True, metadata={"description": "the shared payer's id"})
    priority = fields.Integer(load_default=1, metadata={"description": "1 primary, 2 secondary, 3 tertiary"})
    member_id = fields.String(required=True, validate=validate.Length(max=80))
    group_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50))
    relationship_code = fields.String(
        load_default="18", metadata={"description": "patient to subscriber: 18 self, 01 spouse, 19 child, ..."}
    )
    subscriber_first_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=35))
    subscriber_last_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=60))
    subscriber_date_of_birth = fields.Date(load_default=None, allow_none=True)
    subscriber_sex = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["F", "M", "U"]))
    subscriber_address_line1 = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=55))
    subscriber_city = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=30))
    subscriber_state = fields.String(load_default=None, allow_none=True, validate=validate.Length(equal=2))
    subscriber_postal_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=10))
    effective_date = fields.Date(required=True)
    end_date = fields.Date(load_default=None, allow_none=True)

    @post_load
    def _normalise(self, data, **_kw):
        _upper(data, "subscriber_state")
        return _strip_dashes(data, "subscriber_postal_code")


class CoverageOut(Schema):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)
    payer_id = fields.Integer(required=True)
    payer = fields.Nested(PayerOut, allow_none=True)
    priority = fields.Integer(required=True)
    member_id = fields.String(required=True)
    group_number = fields.String(allow_none=True)
    relationship_code = fields.String(required=True)
    subscriber_first_name = fields.String(allow_none=True)
    subscriber_last_name = fields.String(allow_none=True)
    subscriber_date_of_birth = fields.Date(allow_none=True)
    subscriber_sex = fields.String(allow_none=True)
    subscriber_address_line1 = fields.String(allow_none=True)
    subscriber_city = fields.String(allow_none=True)
    subscriber_state = fields.String(allow_none=True)
    subscriber_postal_code = fields.String(allow_none=True)
    effective_date = fields.Date(required=True)
    end_date = fields.Date(allow_none=True)
    created_at = fields.DateTime(required=True)


class GuarantorIn(Schema):
    relationship = fields.String(required=True, metadata={"description": "parent, spouse or other"})
    first_name = fields.String(required=True, validate=validate.Length(max=60))
    last_name = fields.String(required=True, validate=validate.Length(max=60))
    address_line1 = fields.String(required=True, validate=validate.Length(max=55))
    address_line2 = fields.String(load_default="", validate=validate.Length(max=55))
    city = fields.String(required=True, validate=validate.Length(max=30))
    state = fields.String(required=True)
    postal_code = fields.String(required=True, metadata={"description": "ZIP or ZIP+4"})
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))

    @post_load
    def _normalise(self, data, **_kw):
        _upper(data, "state")
        return _strip_dashes(data, "postal_code")


class GuarantorOut(GuarantorIn):
    id = fields.Integer(required=True)
    patient_id = fields.Integer(required=True)


class FeeIn(Schema):
    charge = Money(required=True)
    modifier = fields.String(load_default="", validate=validate.Length(max=2))


class FeeOut(Schema):
    id = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifier = fields.String(required=True)
    charge = Money(required=True)


class RateIn(Schema):
    procedure_code = fields.String(required=True, validate=validate.Length(max=5))
    modifier = fields.String(load_default="", validate=validate.Length(max=2))
    allowed = Money(required=True)


class RateOut(Schema):
    id = fields.Integer(required=True)
    procedure_code = fields.String(required=True)
    modifier = fields.String(required=True)
    allowed = Money(required=True)


class ContractIn(Schema):
    payer_id = Id(required=True, metadata={"description": "the shared payer's id"})
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    effective_from = fields.Date(required=True)
    effective_to = fields.Date(load_default=None, allow_none=True)
    default_percent_of_billed = fields.Decimal(
        load_default=None,
        allow_none=True,
        as_string=True,
        places=3,
        metadata={"description": "allowed for codes without a rate, as a percentage of billed"},
    )
    rates = fields.List(fields.Nested(RateIn), load_default=list, validate=validate.Length(max=5000))

    @validates_schema
    def _distinct_rates(self, data, **_kw):
        seen = set()
        for i, rate in enumerate(data.get("rates") or []):
            key = (rate["procedure_code"].upper(), rate.get("modifier", "").upper())
            if key in seen:
                raise ValidationError({"rates": {i: ["the same code and modifier appear twice"]}})
            seen.add(key)

    @post_load
    def _normalise(self, data, **_kw):
        for rate in data.get("rates") or []:
            _upper(rate, "procedure_code", "modifier")
        return data


class ContractOut(Schema):
    id = fields.Integer(required=True)
    payer_id = fields.Integer(required=True)
    payer = fields.Nested(PayerOut, allow_none=True)
    name = fields.String(required=True)
    effective_from = fields.Date(required=True)
    effective_to = fields.Date(allow_none=True)
    default_percent_of_billed = fields.Decimal(as_string=True, places=3, allow_none=True)
    rates = fields.List(fields.Nested(RateOut), required=True)


class ContractListArgs(Schema):
    payer_id = Id(load_default=None, allow_none=True)


# --- the shared payer master list ------------------------------------------------------------------------------------


@blp.route("/payers", methods=["GET"])
@policy(None)
@blp.arguments(PayerListArgs, location="query")
@blp.response(200, PayerPage)
def list_payers(args):
    """The payer list (any signed-in user), by name: the platform's curated entries and your companies' own;
    `q` searches name and payer id."""
    session = db_session()
    rows, total = setup.list_payers(
        session, setup.payer_companies(session, principal()), q=args["q"], page=args["page"], per_page=args["per_page"]
    )
    return {"items": rows, "meta": {"page": args["page"], "per_page": args["per_page"], "total": total}}


@blp.route("/payers", methods=["POST"])
@policy("payers:admin")
@blp.arguments(PayerIn)
@blp.response(201, PayerOut)
def create_payer(body):
    """Add a payer for your company (company administrators): only your company sees and bills it. Entries every
    company sees are curated at platform level by the operator (`medbill payers add`)."""
    session = db_session()
    company = body.pop("company", None)
    payer = setup.add_company_payer(session, principal(), body, company)
    session.commit()
    return payer


# --- the practice's payers --------------------------------------------------------------------------------------------


def _enrolment(enrolment: PracticePayer, payer: Payer | None) -> dict:
    return {
        "id": enrolment.id,
        "payer_id": enrolment.payer_id,
        "payer": payer,
        "timely_filing_days": enrolment.timely_filing_days,
        "appeal_window_days": enrolment.appeal_window_days,
        "scrub_overrides": enrolment.scrub_overrides or {},
        "active": enrolment.active,
    }


@blp.route("/practices/<slug>/payers", methods=["GET"])
@policy("claims:read")
@blp.response(200, EnrolmentOut(many=True))
def list_enrolments(slug: str):
    """The payers this practice bills, with filing windows and scrubber overrides, by payer name."""
    rows = db_session().execute(
        select(PracticePayer, Payer)
        .join(Payer, Payer.id == PracticePayer.payer_id)
        .order_by(Payer.name, PracticePayer.payer_id)
    )
    return [_enrolment(enrolment, payer) for enrolment, payer in rows]


@blp.route("/practices/<slug>/payers/<id:payer_id>", methods=["PUT"])
@policy("setup:write")
@blp.arguments(EnrolmentIn)
@blp.response(200, EnrolmentOut)
def enroll_payer(body, slug: str, payer_id: int):
    """Enrol the practice with a payer of the master list, or change the enrolment (a full replacement: omitted
    fields take their defaults)."""
    session = db_session()
    caller = access()
    enrolment = setup.enroll_payer(session, caller, payer_id, body)
    payer = setup.get_payer(session, payer_id, company_id=caller.company_id)
    session.commit()
    return _enrolment(enrolment, payer)


# --- providers and the billing identity -------------------------------------------------------------------------------


@blp.route("/practices/<slug>/providers", methods=["GET"])
@policy("claims:read")
@blp.response(200, ProviderOut(many=True))
def list_providers(slug: str):
    """The practice's rendering providers, by name."""
    return list(db_session().scalars(select(Provider).order_by(Provider.last_name, Provider.first_name, Provider.id)))


@blp.route("/practices/<slug>/providers", methods=["POST"])
@policy("setup:write")
@blp.arguments(ProviderIn)
@blp.response(201, ProviderOut)
def create_provider(body, slug: str):
    """Add a rendering provider (the NPI's check digit is verified)."""
    session = db_session()
    provider = setup.create_provider(session, access(), body)
    session.commit()
    return provider


@blp.route("/practices/<slug>/billing-identity", methods=["GET"])
@policy("claims:read")
@blp.response(200, BillingIdentityOut)
def get_billing_identity(slug: str):
    """How the practice bills (group NPI, tax id, ZIP+4 address, clearinghouse); 404 until it is set."""
    identity = db_session().get(BillingIdentity, 1)
    if identity is None:
        raise NotFound("the practice has no billing identity yet")
    return identity


@blp.route("/practices/<slug>/billing-identity", methods=["PUT"])
@policy("setup:write")
@blp.arguments(BillingIdentityIn)
@blp.response(200, BillingIdentityOut)
def put_billing_identity(body, slug: str):
    """Set the billing identity (a full replacement, except `transport`: omitted keeps it). The billing address
    needs a ZIP+4. A changed transport needs the company admin role and is audited with before and after."""
    session = db_session()
    transport = body.pop("transport", None)
    identity = setup.set_billing_identity(session, access(), body)
    if transport is not None:
        policy = connections.OutboundPolicy.from_settings(current_app.extensions["medbill"].settings)
        identity = setup.set_clearinghouse_transport(session, access(), transport, policy=policy)
    session.commit()
    return identity


# --- coverages and guarantors ---------------------------------------------------------------------------------------


def _coverage(coverage, payers: dict[int, Payer]) -> dict:
    out = {name: getattr(coverage, name) for name in CoverageOut._declared_fields if name != "payer"}
    out["payer"] = payers.get(coverage.payer_id)
    return out


@blp.route("/practices/<slug>/patients/<id:patient_id>/coverages", methods=["GET"])
@policy("claims:read")
@blp.response(200, CoverageOut(many=True))
def list_coverages(slug: str, patient_id: int):
    """A patient's coverages, primary first."""
    session = db_session()
    coverages = setup.list_coverages(session, access(), patient_id)  # audits the read of the patient
    payers = setup.payers_by_id(session, (c.payer_id for c in coverages))
    session.commit()
    return [_coverage(c, payers) for c in coverages]


@blp.route("/practices/<slug>/patients/<id:patient_id>/coverages", methods=["POST"])
@policy("setup:write")
@blp.arguments(CoverageIn)
@blp.response(201, CoverageOut)
def add_coverage(body, slug: str, patient_id: int):
    """Add a coverage. When the subscriber is not the patient (relationship other than 18) every subscriber_*
    field is required."""
    session = db_session()
    coverage = setup.add_coverage(session, access(), patient_id, body)
    payers = setup.payers_by_id(session, [coverage.payer_id])
    session.commit()
    return _coverage(coverage, payers)


@blp.route("/practices/<slug>/patients/<id:patient_id>/guarantor", methods=["PUT"])
@policy("setup:write")
@blp.arguments(GuarantorIn)
@blp.response(200, GuarantorOut)
def put_guarantor(body, slug: str, patient_id: int):
    """Set who is responsible for the patient's balance (parent, spouse, other)."""
    session = db_session()
    guarantor = setup.set_guarantor(session, access(), patient_id, body)
    session.commit()
    return guarantor


# --- fee schedule and contracts -------------------------------------------------------------------------------------


@blp.route("/practices/<slug>/fee-schedule", methods=["GET"])
@policy("claims:read")
@blp.response(200, FeeOut(many=True))
def list_fees(slug: str):
    """What the practice charges, by procedure code and modifier."""
    return list(
        db_session().scalars(select(FeeScheduleItem).order_by(FeeScheduleItem.procedure_code, FeeScheduleItem.modifier))
    )


@blp.route("/practices/<slug>/fee-schedule/<procedure_code>", methods=["PUT"])
@policy("setup:write")
@blp.arguments(FeeIn)
@blp.response(200, FeeOut)
def put_fee(body, slug: str, procedure_code: str):
    """Set the charge for a procedure code (optionally for one modifier)."""
    session = db_session()
    item = setup.set_fee(
        session, access(), procedure_code.strip().upper(), body["charge"], (body.get("modifier") or "").upper()
    )
    session.commit()
    return item


def _contracts_out(session: Session, contracts: list[PayerContract]) -> list[dict]:
    rates: dict[int, list[ContractRate]] = defaultdict(list)
    if contracts:
        for rate in session.scalars(
            select(ContractRate)
            .where(ContractRate.contract_id.in_([c.id for c in contracts]))
            .order_by(ContractRate.procedure_code, ContractRate.modifier)
        ):
            rates[rate.contract_id].append(rate)
    payers = setup.payers_by_id(session, (c.payer_id for c in contracts))
    return [
        {
            "id": c.id,
            "payer_id": c.payer_id,
            "payer": payers.get(c.payer_id),
            "name": c.name,
            "effective_from": c.effective_from,
            "effective_to": c.effective_to,
            "default_percent_of_billed": c.default_percent_of_billed,
            "rates": rates[c.id],
        }
        for c in contracts
    ]


@blp.route("/practices/<slug>/contracts", methods=["GET"])
@policy("claims:read")
@blp.arguments(ContractListArgs, location="query")
@blp.response(200, ContractOut(many=True))
def list_contracts(args, slug: str):
    """Payer contracts with their rates, newest first; `payer_id` narrows to one payer."""
    session = db_session()
    stmt = select(PayerContract)
    if args.get("payer_id"):
        stmt = stmt.where(PayerContract.payer_id == args["payer_id"])
    contracts = list(session.scalars(stmt.order_by(PayerContract.effective_from.desc(), PayerContract.id.desc())))
    return _contracts_out(session, contracts)


@blp.route("/practices/<slug>/contracts", methods=["POST"])
@policy("setup:write")
@blp.arguments(ContractIn)
@blp.response(201, ContractOut)
def create_contract(body, slug: str):
    """Add a payer contract: rates per code (and modifier), and a percentage of billed for the other codes."""
    session = db_session()
    contract = setup.create_contract(session, access(), body)
    out = _contracts_out(session, [contract])[0]
    session.commit()
    return out
