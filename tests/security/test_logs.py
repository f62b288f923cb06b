"""No PHI or secrets in logs. An in-process flow through the API and the portal (sign-ins right and wrong, tokens
made, used and revoked, a patient with a coverage registered, searched, read, stored to S3) runs with every logger at
DEBUG; the captured records are scanned for the patient's names, date of birth and member id, the passwords, the
tokens, the S3 and app secrets. The worker side is scanned by tests/test_e2e_claims.py (its workers log at DEBUG).
The logging setup itself is checked too: chatty libraries held at WARNING, secrets masked by the formatter."""

from __future__ import annotations

import logging
import os

from medbill.logging_config import QUIET_LIBRARIES, RedactingFormatter, configure_logging, redact
from tests.billing.factories import billing_practice
from tests.conftest import PASSWORD, login
from tests.portal.test_portal import csrf_from
from tests.security.logscan import assert_no_phi, date_forms, findings, practice_phi

WRONG_PASSWORD = "Wr0ng-Pa55-Horse!"
PATIENT = {
    "first_name": "Zebulon",
    "last_name": "Quixtrap",
    "date_of_birth": "1961-07-14",
    "sex": "M",
    "address_line1": "77 Juniper Hollow",
    "city": "Austin",
    "state": "TX",
    "postal_code": "78701",
}
MEMBER_ID = "QXM55019283"


def test_full_flow_at_debug_logs_no_phi_or_secrets(app, services, factory, settings, caplog):
    caplog.set_level(logging.DEBUG)
    bp = billing_practice(services, factory)
    client = app.test_client()
    secrets = [PASSWORD, WRONG_PASSWORD, settings.secret_key, os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")]

    # API: a wrong password, then a right one; a long-lived token made, used, revoked.
    wrong = client.post("/api/v1/auth/token", json={"email": bp.biller_email, "password": WRONG_PASSWORD})
    assert wrong.status_code == 401
    headers = login(client, bp.biller_email)
    secrets.append(headers["Authorization"].split()[1])
    base = f"/api/v1/practices/{bp.slug}"
    created = client.post(f"{base}/patients", headers=headers, json=PATIENT | {"account_number": "QX-1"})
    assert created.status_code == 201, created.get_json()
    patient_id = created.get_json()["id"]
    coverage = client.post(
        f"{base}/patients/{patient_id}/coverages",
        headers=headers,
        json={"payer_id": bp.payer_id, "priority": 1, "member_id": MEMBER_ID, "effective_date": "2020-01-01"},
    )
    assert coverage.status_code == 201, coverage.get_json()
    assert client.get(f"{base}/patients?q=Quixtrap", headers=headers).get_json()["meta"]["total"] == 1
    assert client.get(f"{base}/patients/{patient_id}", headers=headers).status_code == 200
    assert client.get(f"{base}/patients/{patient_id}/coverages", headers=headers).status_code == 200
    # A validation error echoing PHI back to the caller must not echo it into the logs.
    bad = client.post(f"{base}/patients", headers=headers, json=PATIENT | {"date_of_birth": "Quixtrap-1961"})
    assert bad.status_code == 422

    # Storage: PHI in an object body goes to S3, never to the log (botocore logs bodies at DEBUG).
    body = b"Zebulon Quixtrap 1961-07-14 " + MEMBER_ID.encode()
    services.storage.put(f"practices/{bp.slug}/test/{patient_id}.txt", body)

    # Portal: a wrong password, a sign-in, a patient search with the name in the query string, sign-out.
    browser = app.test_client()
    token = csrf_from(browser.get("/login"))
    secrets.append(token)
    browser.post("/login", data={"csrf_token": token, "email": bp.biller_email, "password": WRONG_PASSWORD})
    signed_in = browser.post("/login", data={"csrf_token": token, "email": bp.biller_email, "password": PASSWORD})
    assert signed_in.status_code == 302
    page = browser.get(f"/practices/{bp.slug}/patients?q=Quixtrap")
    assert page.status_code == 200 and "Quixtrap" in page.get_data(as_text=True)
    browser.post("/logout", data={"csrf_token": csrf_from(browser.get("/home"))})

    phi = practice_phi(services, bp.slug)
    assert {"Zebulon", "Quixtrap", MEMBER_ID, "1961-07-14", "19610714"} <= set(phi)
    # The capture ran at DEBUG and saw the flow: both failed sign-ins were logged (without email or password).
    assert caplog.handler.level == logging.DEBUG and logging.getLogger().isEnabledFor(logging.DEBUG)
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed sign-in")]
    assert len(failed) == 2, failed
    secrets.append(bp.biller_email)
    assert_no_phi(caplog.text, phi + secrets)


def test_the_scanner_finds_what_it_looks_for():
    text = "INFO x: patient Quixtrap, born 19610714\nINFO y: fleet of Lee-free text\n"
    found = [value for value, _ in findings(text, ["Quixtrap", "19610714", "Lee", "ee"])]
    assert found == ["19610714", "Lee", "Quixtrap"]
    assert findings("Fleeting", ["Lee"]) == []
    assert "07/14/1961" in date_forms(__import__("datetime").date(1961, 7, 14))


def test_libraries_that_log_bodies_or_sql_parameters_stay_at_warning():
    configure_logging("DEBUG")
    try:
        for name in QUIET_LIBRARIES:
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        # SQLAlchemy's engine logger (statements and their parameters) and botocore's request/body logging.
        assert not logging.getLogger("sqlalchemy.engine.Engine").isEnabledFor(logging.INFO)
        assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("rq.worker").isEnabledFor(logging.DEBUG)  # job return values
        assert logging.getLogger("medbill.portal").isEnabledFor(logging.DEBUG)
    finally:
        configure_logging("INFO")  # the test settings' level
    assert logging.getLogger().level == logging.INFO


def test_formatter_masks_tokens_passwords_parameters_and_query_strings():
    raw = "mb_" + "A1b2C3d4" * 5
    lines = {
        f"Authorization: Bearer {raw}": raw,
        f"token {raw} used": raw,
        'login {"email": "a@b.test", "password": "hunter2-secret"}': "hunter2-secret",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI": "wJalrXUtnFEMI",
        "(UniqueViolation) duplicate\n[SQL: INSERT ...]\n[parameters: {'last_name': 'Quixtrap'}]": "Quixtrap",
        "DETAIL:  Key (account_number)=(QX-1) already exists.": "QX-1",
        '127.0.0.1 - - "GET /practices/p/patients?q=Quixtrap HTTP/1.1" 200': "Quixtrap",
    }
    for line, secret in lines.items():
        assert secret not in redact(line), line
    record = logging.LogRecord("medbill.test", logging.ERROR, __file__, 1, "failed for %s", (f"Bearer {raw}",), None)
    assert raw not in RedactingFormatter("%(message)s").format(record)
    assert redact("claim 42 posted for practice pr_1") == "claim 42 posted for practice pr_1"
