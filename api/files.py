"""Downloads behind the web app's file links (`/files/<link id>`): the local-disk stand-in for S3 presigned URLs.

A link opens only for the user, and the token or portal session, that asked for it, before it expires
(tenants/file_links.py); every use is audited, honoured or refused. Refusals all answer 404, whatever the reason, so a
link's existence is not revealed to someone it was not made for."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from api.security import request_credential
from integrations.storage import StorageKeyNotFound, content_disposition
from tenants import file_links

blp = Blueprint("files", __name__)


@blp.route("/files/<link_id>")
def download(link_id: str):
    services = current_app.extensions["medbill"]
    with services.db.shared_session() as session:
        try:
            granted = file_links.redeem(session, link_id, request_credential(session), ip=request.remote_addr)
        except file_links.LinkRefused:
            session.commit()  # the refusal's audit entry
            abort(404)
        session.commit()
    try:
        data = services.storage.get(granted.storage_key)
    except StorageKeyNotFound:
        abort(404)
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if granted.download_name:
        headers["Content-Disposition"] = content_disposition(granted.download_name)
    return Response(data, mimetype="application/octet-stream", headers=headers)
