"""`medbill edi import FILE --company SLUG` intakes the file as that company's: a set naming none of its practices
lands in the company's unmatched queue (to be assigned from there), one whose envelope is another's is quarantined;
and a refused file's error is printed once."""

from __future__ import annotations

import json
import secrets

from sqlalchemy import select

from billing.edi_intake import list_quarantine, list_unmatched
from tenants.models import BillingCompany
from tests.billing.factories import billing_practice
from tests.conftest import X12_FIXTURES, run_cli

ACCEPTED_999 = X12_FIXTURES / "999" / "imsweb-x12-parser__x12_999_accepted.txt"


def _company_id(services, slug: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(BillingCompany.id).where(BillingCompany.slug == slug))


def _999(tmp_path, *, receiver: str, group_control_number: str):
    """The public sample 999 addressed to `receiver` (ISA08), acknowledging `group_control_number`."""
    text = ACCEPTED_999.read_text()
    text = text.replace("*ZZ*987654321      *", f"*ZZ*{receiver:<15}*", 1)
    text = text.replace("AK1*HC*17456*", f"AK1*HC*{group_control_number}*", 1)
    path = tmp_path / f"{group_control_number}.999"
    path.write_text(text)
    return path


def test_a_set_naming_no_practice_lands_in_the_companys_unmatched_queue(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)  # submitter id SUBMIT01: the 999 is addressed to this company
    gcn = str(100_000_000 + secrets.randbelow(800_000_000))  # a group no practice of the company sent
    imported = run_cli(env, "edi", "import", str(_999(tmp_path, receiver="SUBMIT01", group_control_number=gcn)),
                       "--company", bp.company_slug)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["applied"] == [] and report["quarantined"] == []
    (entry,) = report["unmatched"]
    (queued,) = list_unmatched(services.db, _company_id(services, bp.company_slug))
    assert entry["unmatched_id"] == queued["id"]
    assert queued["kind"] == "999" and gcn in queued["reason"]


def test_a_set_addressed_to_another_submitter_is_quarantined_not_queued(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    gcn = str(100_000_000 + secrets.randbelow(800_000_000))
    imported = run_cli(env, "edi", "import", str(_999(tmp_path, receiver="NOTOURS99", group_control_number=gcn)),
                       "--company", bp.company_slug)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["unmatched"] == [] and len(report["quarantined"]) == 1
    assert list_unmatched(services.db, _company_id(services, bp.company_slug)) == []
    held = [q for q in list_quarantine(services.db) if q["id"] == report["quarantined"][0]["quarantine_id"]]
    assert held and held[0]["source"] == "import"


def test_a_refused_file_prints_its_error_once(services, factory, env, tmp_path):
    bp = billing_practice(services, factory)
    broken = tmp_path / "broken.999"
    broken.write_text("ISA*00*")
    refused = run_cli(env, "edi", "import", str(broken), "--company", bp.company_slug)
    assert refused.returncode != 0
    assert refused.stderr.count("not a readable X12 file") == 1, refused.stderr
    assert refused.stderr.count("ISA is truncated") == 1, refused.stderr  # the message, not message + same detail
    # A detail that says something the message does not is still printed.
    other = tmp_path / "claims.837"
    other.write_bytes((X12_FIXTURES / "837p" / "moov-x12__example_5010_837p_sample.txt").read_bytes())
    unsupported = run_cli(env, "edi", "import", str(other), "--company", bp.company_slug)
    assert unsupported.returncode != 0 and "ST01 found: 837" in unsupported.stderr, unsupported.stderr
