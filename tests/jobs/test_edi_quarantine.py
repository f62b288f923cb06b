"""A file that reached the wrong billing company (its mailbox held another company's 835: acme's fetch took Summit's
files) is quarantined for the operator: not applied, not in the fetching company's unmatched queue, its copy under
the operator's prefix; the operator releases it to its owner, where it posts, or drops it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from billing.edi_intake import (
    drop_quarantined,
    intake,
    list_quarantine,
    list_unmatched,
    practice_slugs_for,
    release_quarantined,
)
from billing.models import BillingIdentity, Deposit, RemittanceClaim
from medbill.errors import Conflict
from tenants.models import BillingCompany, EdiQuarantine
from tests.billing.factories import billing_practice
from tests.billing.test_underpayments import submit_and_answer
from tests.conftest import run_cli


def _company_id(services, slug: str) -> int:
    with services.db.shared_session() as s:
        return s.scalar(select(BillingCompany.id).where(BillingCompany.slug == slug))


def _posted(services, slug: str) -> tuple[int, list[int]]:
    with services.db.tenant_session(slug) as s:
        deposits = s.scalar(select(func.count()).select_from(Deposit))
        claims = s.scalars(select(RemittanceClaim.claim_id).where(RemittanceClaim.outcome == "posted")).all()
        return deposits, sorted(claims)


def _fetched_by(services, company_slug: str, text: str, name: str = "summit.835"):
    """What the clearinghouse fetch of a practice of `company_slug` does with a file it found in the mailbox."""
    company_id = _company_id(services, company_slug)
    return intake(
        services.db, text.encode(), storage_key=f"test/fetched/{name}",
        slugs=practice_slugs_for(services.db, company_id=company_id), company_id=company_id, source="fetch",
        file_name=name, storage=services.storage, inline=True,
    )  # fmt: skip


@pytest.fixture()
def summit_and_acme(services, factory, tmp_path):
    summit = billing_practice(services, factory)
    claim_ids, era = submit_and_answer(services, summit, factory, tmp_path, visits=2)
    acme = billing_practice(services, factory)  # another company, the same clearinghouse submitter id
    return summit, acme, claim_ids, era


def test_another_companys_835_fetched_is_quarantined_and_released_to_its_owner(services, summit_and_acme):
    summit, acme, claim_ids, era = summit_and_acme
    report = _fetched_by(services, acme.company_slug, era)

    assert report.applied == [] and report.queued == [] and report.unmatched == [] and report.duplicates == []
    (held,) = report.quarantined
    assert held["kind"] == "835" and "payee NPI" in held["reason"] and "no practice's" in held["reason"]
    # Invisible to acme: nothing posted, nothing in its unmatched queue (which it could assign from).
    assert _posted(services, acme.slug) == (0, [])
    assert list_unmatched(services.db, _company_id(services, acme.company_slug), include_assigned=True) == []
    assert _posted(services, summit.slug) == (0, [])
    # The operator's copy, under no tenant's prefix.
    (row,) = [r for r in list_quarantine(services.db) if r["id"] == held["quarantine_id"]]
    assert row["company"] == acme.company_slug and row["source"] == "fetch" and row["file_name"] == "summit.835"
    assert row["storage_key"].startswith("quarantine/") and services.storage.get(row["storage_key"]) == era.encode()

    # Fetched again (the file stays in the mailbox): still one quarantined row.
    again = _fetched_by(services, acme.company_slug, era)
    assert [q["quarantine_id"] for q in again.quarantined] == [held["quarantine_id"]]

    # The owner receives it: released to Summit, it posts there.
    released = release_quarantined(services.db, services.storage, held["quarantine_id"], summit.company_slug)
    assert released["status"] == "released" and [a["practice"] for a in released["applied"]] == [summit.slug]
    assert _posted(services, summit.slug) == (1, sorted(claim_ids))
    assert _posted(services, acme.slug) == (0, [])
    with services.db.shared_session() as s:
        stored = s.get(EdiQuarantine, held["quarantine_id"])
        assert stored.status == "released" and stored.released_to_company_id == _company_id(
            services, summit.company_slug
        )
    assert all(r["id"] != held["quarantine_id"] for r in list_quarantine(services.db))
    with pytest.raises(Conflict):
        release_quarantined(services.db, services.storage, held["quarantine_id"], acme.company_slug)


def test_a_fetched_file_addressed_to_another_submitter_is_quarantined_even_when_it_names_a_practice(
    services, summit_and_acme
):
    summit, acme, claim_ids, era = summit_and_acme
    # Acme's practice claims Summit's billing NPI, but its clearinghouse id is its own: the interchange (ISA08
    # SUBMIT01) was not addressed to it.
    with services.db.tenant_session(summit.slug) as s:
        summit_npi = s.get(BillingIdentity, 1).group_npi
    with services.db.tenant_session(acme.slug) as s:
        identity = s.get(BillingIdentity, 1)
        identity.group_npi, identity.submitter_id = summit_npi, "ACME01"
        s.commit()
    report = _fetched_by(services, acme.company_slug, era, name="addressed-elsewhere.835")
    (held,) = report.quarantined
    assert "ISA08 receiver id SUBMIT01" in held["reason"] and report.applied == []
    assert _posted(services, acme.slug) == (0, [])
    assert drop_quarantined(services.db, held["quarantine_id"])["status"] == "dropped"
    # Dropped stays dropped when the file is fetched again; the owner's own fetch posts it.
    assert _fetched_by(services, acme.company_slug, era).quarantined[0]["quarantine_id"] == held["quarantine_id"]
    assert list_quarantine(services.db, status="dropped")[-1]["id"] == held["quarantine_id"]
    owner = _fetched_by(services, summit.company_slug, era)
    assert owner.quarantined == [] and [a["practice"] for a in owner.applied] == [summit.slug]
    assert _posted(services, summit.slug) == (1, sorted(claim_ids))


def test_an_upload_of_another_companys_835_is_quarantined_not_unmatched(services, summit_and_acme):
    summit, acme, _claim_ids, era = summit_and_acme
    company_id = _company_id(services, acme.company_slug)
    report = intake(
        services.db, era.encode(), storage_key="test/uploaded.835", company_id=company_id, source="upload",
        slugs=practice_slugs_for(services.db, company_id=company_id), storage=services.storage,
    )  # fmt: skip
    assert report.unmatched == [] and len(report.quarantined) == 1
    assert list_unmatched(services.db, company_id) == []


def test_the_operator_lists_and_drops_from_the_command_line(services, summit_and_acme, env):
    _summit, acme, _claim_ids, era = summit_and_acme
    (held,) = _fetched_by(services, acme.company_slug, era, name="cli.835").quarantined
    listed = run_cli(env, "edi", "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = [ln for ln in listed.stdout.splitlines() if ln.split("\t")[0] == str(held["quarantine_id"])]
    assert f"\theld\t{acme.company_slug}\tfetch\t835\t" in line and "payee NPI" in line
    dropped = run_cli(env, "edi", "quarantine", "drop", str(held["quarantine_id"]))
    assert dropped.returncode == 0 and dropped.stdout.strip() == "dropped", dropped.stderr
    assert run_cli(env, "edi", "quarantine", "drop", str(held["quarantine_id"])).returncode != 0
