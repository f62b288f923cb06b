"""Downloads behind signed, expiring links: the local-disk stand-in for S3 presigned URLs (embedded default)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from integrations.storage import StorageKeyNotFound
from medbill.services import read_file_token

blp = Blueprint("files", __name__)


@blp.route("/files/<token>")
def download(token: str):
    services = current_app.extensions["medbill"]
    found = read_file_token(services.settings, token)
    if found is None:
        abort(404)
    key, name = found
    try:
        data = services.storage.get(key)
    except StorageKeyNotFound:
        abort(404)
    headers = {"Cache-Control": "private, no-store"}
    if name:
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return Response(data, mimetype="application/octet-stream", headers=headers)
