"""Hostile agency files: payment files in CSV and fixed-width layouts, mutated and random, read by
billing.agency_formats.parse and uploaded through POST .../collections/payment-files. The only failure allowed is an
Invalid whose errors name the file, the header or a line; an upload either posts the whole file or answers 4xx and
changes no row."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import agency_formats, collections
from billing.models import Patient
from medbill.errors import Invalid
from tests.billing.factories import billing_practice, insured_patient
from tests.billing.test_collections import owed_visit, statements
from tests.conftest import login
from tests.fuzz.mutations import mutated
from tests.fuzz.test_x12_fuzz import row_counts

FIXED = {
    "type": "fixed",
    "purpose": "report",
    "date_format": "%Y%m%d",
    "money": "cents",
    "record_length": 59,
    "line_ending": "lf",
    "fields": [
        {"field": "account_number", "start": 1, "length": 30},
        {"field": "payment_date", "start": 31, "length": 8},
        {"field": "payment_amount", "start": 39, "length": 9, "align": "right", "pad": "0"},
        {"field": "payment_reference", "start": 48, "length": 12},
    ],
}
CSV_FORMAT = agency_formats.validate_format(agency_formats.DEFAULT_REPORT_FORMAT)
FIXED_FORMAT = agency_formats.validate_format(FIXED)
DAY = date.today() - timedelta(days=3)
GOOD_CSV = (
    "account_number,payment_date,payment_amount,payment_reference\n"
    f"ACC-1,{DAY.isoformat()},12.50,R-1\nACC-2,{DAY.isoformat()},1.00,R-2\n"
).encode()
GOOD_FIXED = f"{'ACC-1':<30}{DAY:%Y%m%d}{1250:09d}{'R-1':<12}\n{'ACC-2':<30}{DAY:%Y%m%d}{100:09d}{'R-2':<12}\n".encode()
TEXT_BYTES = st.sampled_from(list(b',;"\n\r0123456789-.eE+ /\x00\xff%') + [0xEF])


def assert_clear(exc: Invalid) -> None:
    assert exc.errors, exc
    for where, messages in exc.errors.items():
        assert where == "file" or where == "header" or where.startswith(("line ", "record ")), where
        assert messages and all(isinstance(m, str) and m for m in messages)


@settings(max_examples=250, deadline=None, database=None)
@given(
    fmt_data=st.sampled_from([(CSV_FORMAT, GOOD_CSV), (FIXED_FORMAT, GOOD_FIXED)]).flatmap(
        lambda pair: mutated({"good": pair[1]}).map(lambda data: (pair[0], data))
    )
)
def test_parse_fails_only_with_invalid_naming_the_line(fmt_data):
    fmt, data = fmt_data
    try:
        records = agency_formats.parse(fmt, data)
    except Invalid as exc:
        assert_clear(exc)
        return
    for record in records:
        assert set(record) <= set(agency_formats.REPORT_FIELDS)


@pytest.mark.parametrize(
    "data",
    [
        # An unclosed quote runs on past the csv module's field size limit (was a csv.Error, a 500).
        b'account_number,payment_date,payment_amount,payment_reference\nA,2026-01-02,1.00,"' + b"x" * 140_000,
        # An amount too large for the ledger's Numeric(12, 2) (was a database error at posting, a 500).
        b"account_number,payment_date,payment_amount,payment_reference\nA,2026-01-02,1e20,R\n",
        b"account_number,payment_date,payment_amount,payment_reference\nA,2026-01-02,99999999999,R\n",
    ],
)
def test_regressions_are_clear_errors(data):
    with pytest.raises(Invalid) as refused:
        agency_formats.parse(CSV_FORMAT, data)
    assert_clear(refused.value)
    assert any(key.startswith("line 2") for key in refused.value.errors)


def test_fixed_width_amount_too_large_is_refused():
    wide = FIXED | {"record_length": 70, "fields": [*FIXED["fields"][:2], {**FIXED["fields"][2], "length": 20},
                                                    {**FIXED["fields"][3], "start": 59}]}  # fmt: skip
    fmt = agency_formats.validate_format(wide)
    fits = agency_formats.parse(fmt, f"{'A':<30}{DAY:%Y%m%d}{'999999999999':>020}{'R':<12}\n".encode())
    assert str(fits[0]["payment_amount"]) == "9999999999.99"
    with pytest.raises(Invalid) as refused:
        agency_formats.parse(fmt, f"{'A':<30}{DAY:%Y%m%d}{'9' * 20}{'R':<12}\n".encode())
    assert "line 1: payment_amount" in refused.value.errors


# --- upload: all or nothing --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def placed(services, factory):
    """A practice with two accounts placed with one agency (default CSV report layout) and that agency's user."""
    company = factory.company()
    bp = billing_practice(services, factory, company=company)
    agency = factory.agency([bp.slug])
    numbers = []
    for days_ago in (150, 170):
        pid = insured_patient(services, bp, factory)
        owed_visit(services, bp, pid, days_ago=days_ago)
        statements(services, bp, pid, 3)
        with services.db.tenant_session(bp.slug) as s:
            collections.approve(s, bp.access, pid, agency.id)
            numbers.append(s.get(Patient, pid).account_number)
            s.commit()
    return bp, numbers, factory.user("agency", agency=agency)


def test_uploaded_payment_files_post_whole_or_not_at_all(client, services, placed):
    bp, numbers, agency_email = placed
    headers = login(client, agency_email)
    url = f"/api/v1/practices/{bp.slug}/collections/payment-files"
    # The good file names the real accounts; mutations then break it anywhere.
    good = GOOD_CSV.replace(b"ACC-1", numbers[0].encode()).replace(b"ACC-2", numbers[1].encode())
    outcomes: dict[int, int] = {}

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated({"good": good}))
    def run(data):
        before = row_counts(services, bp.slug)
        response = client.post(url, headers=headers, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(data), "payments.csv")})  # fmt: skip
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        assert response.status_code in (200, 409, 422), (response.status_code, response.get_data(as_text=True))
        if response.status_code != 200:
            body = response.get_json()
            assert body["message"] and body["code"]
            after = row_counts(services, bp.slug)
            changed = {k: (before[k], after[k]) for k in before if before[k] != after[k] and k != "shared.audit_log"}
            assert not changed, f"a refused file left rows behind: {changed}"

    run()
    assert outcomes.get(422), outcomes
