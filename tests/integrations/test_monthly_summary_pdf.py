"""The doctor's monthly summary PDF says what the API says: its text (read back with pypdf) holds the month's
figures, the A/R aging and the provider allocation exactly as /reports/* answer them, with the charts embedded as
images; the doctor downloads it through the same short-lived link as every stored file."""

from __future__ import annotations

import io
import urllib.request
from datetime import date
from decimal import Decimal

from pypdf import PdfReader

from billing import reports
from integrations.pdf.eob import format_money
from tenants.models import AuditEntry
from tests.api.test_reports_api import Reported, base, remitted, reported  # noqa: F401  (module fixtures)
from tests.conftest import login


def _dollars(text: str) -> str:
    return format_money(Decimal(text))


def _store(services, r: Reported, month: date) -> bytes:
    with services.db.tenant_session(r.bp.slug) as s:
        key = reports.store_monthly_summary(
            s, services.storage, r.bp.slug, month, practice_name="Sunrise Family Practice", company_name="Summit"
        )
    assert key == f"practices/{r.bp.slug}/reports/monthly/{month:%Y-%m}.pdf"
    return services.storage.get(key)


def test_the_pdf_holds_the_apis_figures_and_the_charts(client, services, reported):  # noqa: F811
    r = reported
    month = date.today().replace(day=1)
    pdf = _store(services, r, month)
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    headers = login(client, r.users["doctor"])
    summary = client.get(f"{base(r)}/monthly-summary", headers=headers).get_json()
    figures = summary["figures"]
    assert f"Monthly summary - {month:%B %Y}" in text and "Sunrise Family Practice" in text
    for key, label in (("charges", "Charges"), ("insurance_payments", "Insurance payments"),
                       ("payments", "Payments (net of refunds)"), ("ar_end", "A/R at the end of the month"),
                       ("contractual_adjustments", "Contractual adjustments")):  # fmt: skip
        assert f"{label} {_dollars(figures[key])}" in text, (label, figures[key])
    assert f"Net collection rate {figures['net_collection_rate']}%" in text
    aging = client.get(f"{base(r)}/ar-aging", headers=headers).get_json()
    for row in aging["rows"]:
        cells = " ".join(_dollars(row["buckets"][b]) for b in aging["buckets"])
        assert f"{row['label']} {cells} {_dollars(row['total'])}" in text, row
    assert f"Total {' '.join(_dollars(v) for v in aging['totals']['buckets'].values())}" in text
    allocation = client.get(f"{base(r)}/provider-allocation", headers=headers).get_json()
    for item in allocation["items"]:
        assert f"{item['provider']} {item['payer']} {_dollars(item['amount'])}" in text
    assert f"Total {_dollars(allocation['total'])}" in text
    images = [img for page in reader.pages for img in page.images]
    assert len(images) == 3  # charges and payments, aging, payments by provider


def test_the_doctor_downloads_the_stored_pdf_through_a_short_lived_link(client, services, reported):  # noqa: F811
    r = reported
    headers = login(client, r.users["doctor"])
    path = f"{base(r)}/monthly-summary/pdf"
    missing = client.get(path, headers=headers, query_string={"month": "2020-01"})
    assert missing.status_code == 404 and "month" in missing.get_json()["errors"]
    month = date.today().replace(day=1)
    pdf = _store(services, r, month)
    link = client.get(path, headers=headers, query_string={"month": f"{month:%Y-%m}", "redirect": "false"})
    assert link.status_code == 200, link.get_json()
    body = link.get_json()
    assert body["filename"] == f"{r.bp.slug}-monthly-summary-{month:%Y-%m}.pdf" and body["expires_in"] == 300
    with urllib.request.urlopen(body["url"], timeout=10) as response:  # the S3 (moto) presigned URL
        assert response.read() == pdf
    redirected = client.get(path, headers=headers, query_string={"month": f"{month:%Y-%m}"})
    assert redirected.status_code == 302 and redirected.headers["Location"].startswith("http")
    with services.db.shared_session() as s:
        entry = s.query(AuditEntry).filter(AuditEntry.object_type == "report").order_by(AuditEntry.id.desc()).first()
        assert entry.action == "download" and entry.object_id == f"{month:%Y-%m}"
    # Another tenant's doctor: no such practice.
    other = login(client, r.users["other_doctor"])
    assert client.get(path, headers=other, query_string={"month": f"{month:%Y-%m}"}).status_code == 404
