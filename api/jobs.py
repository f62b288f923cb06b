"""Status of background jobs, for the caller who started them."""

from __future__ import annotations

import re

from flask import current_app
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from rq.exceptions import NoSuchJobError
from rq.job import Job

from api.security import policy, principal
from medbill.errors import NotFound

_JOB_ID = re.compile(r"[A-Za-z0-9_-]+")
blp = Blueprint("jobs", __name__, url_prefix="/api/v1", description="Background jobs")


class JobSchema(Schema):
    id = fields.String(required=True)
    status = fields.String(required=True)
    kind = fields.String(allow_none=True)
    practice = fields.String(allow_none=True)
    enqueued_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)
    result = fields.Raw(allow_none=True)
    error = fields.String(allow_none=True)


@blp.route("/jobs/<job_id>", methods=["GET"])
@policy(None)
@blp.response(200, JobSchema)
def get_job(job_id: str):
    """A job you started: queued, started, finished (with its result), failed (with the reason) or scheduled
    (waiting to be retried)."""
    redis = current_app.extensions["medbill"].redis
    # RQ refuses (ValueError) ids that are not letters, digits, '_' and '-': no such job either.
    if len(job_id) > 100 or not _JOB_ID.fullmatch(job_id):
        raise NotFound("job not found")
    try:
        job = Job.fetch(job_id, connection=redis)
    except NoSuchJobError as exc:
        raise NotFound("job not found") from exc
    if job.meta.get("user_id") != principal().user_id:
        raise NotFound("job not found")
    status = job.get_status(refresh=False)
    error = None
    if status == "failed":
        latest = job.latest_result()
        error = (latest.exc_string or "").strip().splitlines()[-1:] if latest else None
        error = error[0] if error else "failed"
    return {
        "id": job.id,
        "status": str(status.value if hasattr(status, "value") else status),
        "kind": job.meta.get("kind"),
        "practice": job.meta.get("practice"),
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "result": job.return_value() if status == "finished" else None,
        "error": error,
    }
