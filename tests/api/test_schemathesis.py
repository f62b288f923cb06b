"""schemathesis against our own OpenAPI document, in process (WSGI), as each role: every operation gets a few
generated requests (valid and invalid ones) with the caller's bearer token, and every answer must be no 500 and
match what the document says (status code, content type, body schema).

The requests go to a practice of this module's own (ids start at 1 in each practice schema, so fixed small ids reach
real rows), never to the session's shared `world`, whose data other tests count. Examples per operation are bounded
(`EXAMPLES`) so that the four roles stay well under two minutes."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import login

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 3
ROLES = ("company_admin", "biller", "doctor", "agency")
# Login with generated credentials comes from addresses of its own: failed attempts are throttled per client
# address, and the other tests log in from the test client's default one.
_addresses = (f"198.51.100.{n % 250 + 1}" for n in itertools.count())


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


@pytest.fixture(scope="module")
def arena(services, factory):
    """A billing-ready practice with a patient, a billed visit and a placement; a user of every role for it."""
    company = factory.company()
    bp = billing_practice(services, factory, company=company)
    patient_id = insured_patient(services, bp, factory)
    visit(services, bp, patient_id)
    agency = factory.agency([bp.slug])
    factory.place(bp.slug, patient_id, agency.id)
    from tenants.models import Practice

    with services.db.shared_session() as s:
        practice = s.query(Practice).filter_by(slug=bp.slug).one()
    users = {
        "company_admin": factory.user("company_admin", company=company),
        "biller": bp.biller_email,
        "doctor": factory.user("doctor", practice=practice),
        "agency": factory.user("agency", agency=agency),
    }
    return {"slug": bp.slug, "users": users, "agency_id": agency.id}


def _strategy(operation, slug: str, agency_id: int):
    names = {p.name for p in operation.path_parameters}
    fixed = {"slug": slug} if "slug" in names else {}
    # Ids of rows that exist in the arena (1 in a fresh schema), and the agency's own id.
    real = fixed | {n: (agency_id if n == "agency_id" else 1) for n in names if n.endswith("_id")}
    if operation.method.upper() == "DELETE" and operation.path.endswith("/tokens/{token_id}"):
        real = fixed = {"token_id": 2**31 - 1}  # never revoke the caller's own token mid-run
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
    )


def _exercise(operation, strategy, headers: dict[str, str]) -> None:
    login_operation = operation.path.endswith("/auth/token")

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        extra = {"environ_base": {"REMOTE_ADDR": next(_addresses)}} if login_operation else {}
        response = case.call(headers=None if login_operation else headers, **extra)
        case.validate_response(response, checks=CHECKS)

    run()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for sub in getattr(exc, "exceptions", ()):  # a group (Hypothesis' flaky report, schemathesis' failures)
        text += "\n  - " + _describe(sub).replace("\n", "\n    ")
    return text


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(client, api_schema, arena, role):
    headers = login(client, arena["users"][role])
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _exercise(operation, _strategy(operation, arena["slug"], arena["agency_id"]), headers)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {_describe(exc)}"[:3000])
    assert operations > 100
    assert not failures, f"{len(failures)} operation(s) failed as {role}:\n\n" + "\n\n".join(failures)
