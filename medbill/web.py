"""HTTP helpers the API and the portal share (both are Flask edges over billing/): a report table as a CSV
download."""

from __future__ import annotations

from flask import Response

from billing.report_reads import csv_text


def csv_response(name: str, table: tuple[list[str], list[list]]) -> Response:
    return Response(
        csv_text(*table),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"', "Cache-Control": "private, no-store"},
    )
