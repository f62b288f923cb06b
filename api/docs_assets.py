"""Swagger UI's own files for the API docs page (`/api/docs`), served by us from the `swagger-ui-bundle` wheel.

Owns the `/api/docs/assets/<file>` route only; flask-smorest renders the page itself and points at this prefix
(`SWAGGER_UI_ASSETS_URL`). Served locally rather than from a CDN so the docs work offline (the zero-install demo,
air-gapped installs) and no third-party script runs next to a page that holds an API token."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

SWAGGER_UI_ASSETS_URL = "/api/docs/assets/"
# Only what the page loads (and the favicons): not the bundle's sample index pages or source maps.
_FILES = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)
_ASSET_DIR = Path(str(swagger_ui_path))
# A day: the files change only with the installed package, and the page is reloaded often while exploring the API.
_MAX_AGE = 86400

blp = Blueprint("api_docs_assets", __name__)


@blp.route(f"{SWAGGER_UI_ASSETS_URL}<filename>")
def asset(filename: str):
    if filename not in _FILES:
        abort(404)
    response = send_from_directory(_ASSET_DIR, filename, max_age=_MAX_AGE)
    # Set here so the app's "no-store for /api/" default (meant for JSON that may carry PHI) leaves these alone.
    response.headers["Cache-Control"] = f"public, max-age={_MAX_AGE}"
    return response
