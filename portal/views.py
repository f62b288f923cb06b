"""The portal shell: server-rendered sign-in and sign-out, a practice switcher and one home page per role.

Who is signed in is resolved in one place (`_load_signed_in_user`, a before-request hook of this blueprint): the
flask session holds only the portal session id (`ps_…`, stored as a hash; no API bearer token: the API refuses it);
every request resolves it through tenants.auth, which slides its idle timeout (MEDBILL_SESSION_IDLE_MINUTES) or ends
it, and builds the Principal through tenants.authz. Practice data is read only through `tenant_db(access)`, i.e. after
tenants.authz.resolve_practice granted access, in a session bound to exactly that practice's schema.

Error pages are blueprint-scoped (they apply to portal routes only), so the API's JSON errors are untouched."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from billing import denials as denial_work
from billing import remittance_reads, work_queues
from billing.models import Patient, PatientImport, StatementRun
from billing.patients import list_patients
from billing.work_queues import WorkQueue
from medbill.errors import RETRY_AFTER_SECONDS, DomainError, Forbidden, NotFound, Unauthorized, unavailable_message
from tenants import accounts, audit, throttle
from tenants.auth import PORTAL_TOKEN_KEY, check_credentials, issue_token, resolve_portal_session, revoke_token
from tenants.authz import PracticeAccess, Principal, load_principal, resolve_practice, visible_practices
from tenants.models import Practice

log = logging.getLogger("medbill.portal")

bp = Blueprint(
    "portal",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/portal/static",
)

PATIENTS_PER_PAGE = 25
MAX_PAGE = 100_000
# The flask session's key for the portal session id (kept under its old name so signed-in browsers keep working).
TOKEN_KEY = PORTAL_TOKEN_KEY
PRACTICE_KEY = "practice_slug"
# Endpoints reachable without signing in.
PUBLIC_ENDPOINTS = frozenset({"portal.login", "portal.static", "portal.password_forgot", "portal.password_reset"})
# Most capable first: a user with several roles gets the home page of the first one they hold.
ROLE_ORDER = ("company_admin", "biller", "doctor", "agency")
ROLE_LABELS = {
    "company_admin": "Company admin",
    "biller": "Biller",
    "doctor": "Doctor",
    "agency": "Collection agency",
}
# The biller's home lists this many of the latest deposits and of the long jobs running.
HOME_DEPOSITS = 5
HOME_JOBS = 5
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
ERROR_TEXT = {
    400: ("Request not accepted", "The form could not be processed. Go back, reload the page and try again."),
    403: ("Not allowed", "Your role does not give you access to this page."),
    404: ("Page not found", "There is no such page, or it is not one you have access to."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Too large", "What you sent is larger than medbill accepts."),
    500: ("Something went wrong", "The error has been logged. Please try again in a moment."),
    503: ("Temporarily unavailable", "Part of medbill is unreachable for a moment. Nothing was lost: try again soon."),
}


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[DataRequired(message="Enter your email address."), Length(max=254, message="Email is too long.")],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(message="Enter your password."), Length(max=1000, message="Password is too long.")],
        render_kw={"autocomplete": "current-password"},
    )


# --- database sessions: opened here, closed in teardown -------------------------------------------------------------


def _services():
    return current_app.extensions["medbill"]


def db() -> Session:
    """The request's shared-registry session (opened on first use)."""
    if "portal_db" not in g:
        ctx = _services().db.shared_session()
        g.portal_db = ctx.__enter__()
        g.portal_db_ctxs = [*g.get("portal_db_ctxs", []), ctx]
    return g.portal_db


def tenant_db(access: PracticeAccess) -> Session:
    """A session bound to the schema of a practice the caller was granted (resolve_practice) access to."""
    sessions = g.setdefault("portal_tenant_dbs", {})
    if access.slug not in sessions:
        ctx = _services().db.tenant_session(access.slug)
        sessions[access.slug] = ctx.__enter__()
        g.portal_db_ctxs = [*g.get("portal_db_ctxs", []), ctx]
    return sessions[access.slug]


@bp.teardown_request
def _close_sessions(_exc=None) -> None:
    for ctx in reversed(g.pop("portal_db_ctxs", [])):
        ctx.__exit__(None, None, None)
    g.pop("portal_db", None)
    g.pop("portal_tenant_dbs", None)


# --- who is signed in -----------------------------------------------------------------------------------------------


def principal() -> Principal:
    return g.portal_principal


def primary_role(p: Principal) -> str | None:
    return next((role for role in ROLE_ORDER if role in p.roles), None)


def _safe_next(target: str | None) -> str | None:
    """A local portal path to return to after signing in; anything else (other hosts, the API) is dropped."""
    if not target or len(target) > 500 or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path.startswith(("/api/", "/login", "/logout")):
        return None
    return target


def _to_login(message: str | None = None):
    if message:
        flash(message, "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    if target in ("/", "/home"):
        target = None
    return redirect(url_for("portal.login", next=_safe_next(target)))


@bp.before_request
def _load_signed_in_user():
    """The one place that decides who is signed in."""
    g.portal_principal = None
    g.portal_token_id = None
    if request.endpoint == "portal.static":
        return None
    raw = session.get(TOKEN_KEY)
    if not raw:
        return None if request.endpoint in PUBLIC_ENDPOINTS else _to_login()
    idle_minutes = _services().settings.session_idle_minutes
    live = resolve_portal_session(db(), raw, idle_seconds=idle_minutes * 60)
    if live.user is None:
        if live.ended == "idle":
            audit.record(
                db(), user_id=live.token.user_id, practice_id=None, object_type="session", object_id=live.token.id,
                action="idle_timeout", detail={"idle_minutes": idle_minutes}, ip=request.remote_addr,
            )  # fmt: skip
            db().commit()
        session.clear()
        if request.endpoint in PUBLIC_ENDPOINTS:
            return None
        if live.ended == "idle":
            return _to_login(
                f"You were signed out after {idle_minutes} minutes without activity. Please sign in again."
            )
        return _to_login("Your session has ended. Please sign in again.")
    db().commit()  # the session's last-seen time, slid to now
    g.portal_principal = load_principal(live.user, live.token.id)
    # The current credential: the portal session's row id (tenants.models.ApiToken, kind "portal").
    g.portal_token_id = live.token.id
    return None


@bp.after_request
def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "portal.static":
        # Pages may show PHI: never store them in a browser or proxy cache.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        response.vary.add("Cookie")
    return response


@bp.context_processor
def _template_globals():
    p = g.get("portal_principal")
    role = primary_role(p) if p else None
    return {
        "me": p,
        "role": role,
        "role_label": ROLE_LABELS.get(role or "", ""),
        "selected_practice_slug": session.get(PRACTICE_KEY) if p else None,
    }


# --- errors (portal routes only) ------------------------------------------------------------------------------------


def render_error(status: int, message: str | None = None):
    title, default = ERROR_TEXT.get(status, ("Error", "The request could not be completed."))
    return render_template("portal/error.html", status=status, title=title, message=message or default), status


@bp.errorhandler(DomainError)
def _domain_error(exc: DomainError):
    if isinstance(exc, Unauthorized):
        session.clear()
        return _to_login("Please sign in.")
    if isinstance(exc, NotFound):
        return render_error(404)
    if isinstance(exc, Forbidden):
        return render_error(403)
    return render_error(exc.status if exc.status in ERROR_TEXT else 400)


@bp.errorhandler(CSRFError)
def _csrf_error(_exc: CSRFError):
    return render_error(400, "This form has expired or was not sent from medbill. Reload the page and try again.")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if exc.code is None or exc.code < 400:
        return exc
    return render_error(exc.code)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    message = unavailable_message(exc)
    if message is not None:
        # An outage (database, Redis or storage away), not a bug: one line with the exception's class only.
        log.warning("%s %s: 503, %s", request.method, request.path, type(exc).__name__)
        body, status = render_error(503, message[:1].upper() + message[1:] + ". Nothing was lost: try again shortly.")
        return body, status, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    # The path holds at most a practice slug and page number: no PHI. The message of `exc` is not logged as text.
    log.exception("unhandled portal error on %s %s", request.method, request.path)
    return render_error(500)


# --- practices ------------------------------------------------------------------------------------------------------


def switchable_practices(p: Principal, role: str | None) -> list[Practice]:
    """The practices the switcher offers: a company's practices to its billers and admins, a doctor's own."""
    if role in ("company_admin", "biller"):
        return [pr for pr in visible_practices(db(), p) if pr.company_id in p.company_roles]
    if role == "doctor":
        return [pr for pr in visible_practices(db(), p) if pr.id in p.practice_roles]
    return []


def _selected(practices: list[Practice]) -> Practice | None:
    slug = session.get(PRACTICE_KEY)
    chosen = next((pr for pr in practices if pr.slug == slug), None)
    if chosen is None:
        # Nothing chosen yet, or no longer one of theirs: the first practice, remembered for the navigation.
        chosen = practices[0] if practices else None
        if chosen is None:
            session.pop(PRACTICE_KEY, None)
        else:
            session[PRACTICE_KEY] = chosen.slug
    return chosen


# --- routes ---------------------------------------------------------------------------------------------------------


@bp.get("/")
def index():
    return redirect(url_for("portal.home"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.args.get("next"))
    if g.portal_principal is not None:
        return redirect(next_url or url_for("portal.home"))
    form = LoginForm()
    failed = False
    if form.validate_on_submit():
        limiter = throttle.for_services(_services())
        wait = limiter.retry_after(form.email.data, request.remote_addr)
        if wait is not None:
            # Refused before the password is checked: a locked-out guesser learns nothing more.
            accounts.record_failed_sign_in(
                db(), email=form.email.data, reason="throttled", user_id=None, ip=request.remote_addr, channel="portal"
            )
            db().commit()
            form.password.data = ""
            page = render_template(
                "portal/login.html", form=form, failed=False, locked_for=throttle.minutes_text(wait), next_url=next_url
            )
            return page, 429, {"Retry-After": str(wait)}
        s = db()
        outcome = check_credentials(s, form.email.data, form.password.data)
        user = outcome.user
        if user is None:
            failed = True
            s.rollback()
            limiter.failed(form.email.data, request.remote_addr)
            accounts.record_failed_sign_in(
                s, email=form.email.data, reason=outcome.reason, user_id=outcome.user_id, ip=request.remote_addr,
                channel="portal",
            )  # fmt: skip
            s.commit()
        else:
            limiter.succeeded(form.email.data, request.remote_addr)
            # The session id is valid for at most MEDBILL_SESSION_MAX_HOURS, however active the session is.
            max_seconds = _services().settings.session_max_hours * 3600
            raw, token = issue_token(s, user, kind="portal", ttl_seconds=max_seconds)
            audit.record(
                s,
                user_id=user.id,
                practice_id=None,
                object_type="session",
                object_id=token.id,
                action="login",
                ip=request.remote_addr,
            )
            s.commit()
            session.clear()  # a fresh session: nothing set before signing in survives (fixation)
            session[TOKEN_KEY] = raw
            session.permanent = True
            return redirect(next_url or url_for("portal.home"))
    form.password.data = ""
    return render_template("portal/login.html", form=form, failed=failed, next_url=next_url)


@bp.get("/logout")
def logout_confirm():
    """Signing out changes state, so it takes a POST; a typed-in /logout gets a page with the button."""
    return render_template("portal/logout.html")


@bp.post("/logout")
def logout():
    s = db()
    p = principal()
    revoke_token(s, g.portal_token_id)
    audit.record(
        s,
        user_id=p.user_id,
        practice_id=None,
        object_type="session",
        object_id=g.portal_token_id,
        action="logout",
        ip=request.remote_addr,
    )
    s.commit()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("portal.login"))


@bp.get("/home")
def home():
    p = principal()
    role = primary_role(p)
    if role in ("company_admin", "biller"):
        return _biller_home(p, role)
    if role == "doctor":
        return _doctor_home(p, role)
    if role == "agency":
        return render_template("portal/home_agency.html", practices=visible_practices(db(), p))
    return render_template("portal/home_none.html")


@dataclass
class QueueCard:
    queue: WorkQueue
    count: int
    url: str


def _queue_cards(p: Principal, access: PracticeAccess | None) -> list[QueueCard]:
    """Every queue of billing.work_queues the caller may work, with its count: one statement per queue (the denial
    queue is first brought up to date with what posting recorded), whatever the queues' sizes."""
    s = tenant_db(access) if access is not None else None
    if s is not None and access.can("claims:read") and not access.placed_only:
        denial_work.sync(s)
    company_ids = [cid for cid, r in p.company_roles.items() if r in ("company_admin", "biller")]
    cards = []
    for queue in work_queues.QUEUES.values():
        if queue.scope == "company":
            if company_ids:
                cards.append(QueueCard(queue, queue.count(db(), company_ids), url_for(queue.endpoint)))
            continue
        if s is None or not access.can(queue.permission) or (queue.staff_only and access.placed_only):
            continue
        url = url_for(queue.endpoint, slug=access.slug, **queue.link_args)
        cards.append(QueueCard(queue, queue.count(s), url))
    return cards


def _latest_postings(access: PracticeAccess | None) -> list[dict] | None:
    """The latest deposits with how many claims posted and how many are exceptions; None without claims:read."""
    if access is None or not access.can("claims:read") or access.placed_only:
        return None
    s = tenant_db(access)
    rows, _total = remittance_reads.list_deposits(s, page=1, per_page=HOME_DEPOSITS)
    items = [remittance_reads.deposit_row(r.Deposit, r.claims_count, r.exceptions_count) for r in rows]
    if items:
        audit.record_access(s, access, "remittance", None, "list", {"home": True, "ids": [i["id"] for i in items]})
    return items


def _running_jobs(access: PracticeAccess | None) -> list[dict]:
    """Long runs in progress that record it: statement runs (statements done of the patients selected) and patient
    imports waiting for or in their job. Exports and posting record no progress while running."""
    if access is None or access.placed_only:
        return []
    s = tenant_db(access)
    jobs: list[dict] = []
    if access.can("statements:write"):
        runs = s.scalars(
            select(StatementRun)
            .where(StatementRun.status == "running")
            .order_by(StatementRun.id.desc())
            .limit(HOME_JOBS)
        ).all()
        jobs += [
            {"label": f"Statement run of {run.statement_date:%B %-d, %Y}", "done": run.statements_done,
             "total": run.patients_selected, "unit": "statements", "started": run.created_at,
             "url": url_for("portal.statement_run", slug=access.slug, run_id=run.id)}
            for run in runs
        ]  # fmt: skip
    if access.can("patients:write"):
        imports = s.scalars(
            select(PatientImport)
            .where(PatientImport.status == "queued")
            .order_by(PatientImport.id.desc())
            .limit(HOME_JOBS)
        ).all()
        jobs += [
            {"label": f"Patient import {imp.filename}", "done": imp.rows_created + imp.rows_existing,
             "total": imp.rows_total, "unit": "rows", "started": imp.created_at, "url": None}
            for imp in imports
        ]  # fmt: skip
    return jobs


def _biller_home(p: Principal, role: str):
    practices = switchable_practices(p, role)
    current = _selected(practices)
    patient_count = None
    access = None
    if current is not None:
        access = resolve_practice(db(), p, current.slug, "practice:read")
        if access.can("patients:read") and not access.placed_only:
            patient_count = tenant_db(access).scalar(select(func.count()).select_from(Patient))
    cards = _queue_cards(p, access)
    postings = _latest_postings(access)
    jobs = _running_jobs(access)
    if access is not None:
        tenant_db(access).commit()  # the denial queue's sync and the audit of the postings shown
    return render_template(
        "portal/home_biller.html",
        practices=practices,
        current=current,
        access=access,
        patient_count=patient_count,
        cards=cards,
        postings=postings,
        jobs=jobs,
    )


def _doctor_home(p: Principal, role: str):
    practices = switchable_practices(p, role)
    current = _selected(practices)
    if current is not None:
        resolve_practice(db(), p, current.slug, "reports:read")
    return render_template("portal/home_doctor.html", practices=practices, current=current)


@bp.post("/practice")
def switch_practice():
    p = principal()
    slug = request.form.get("practice", "")
    access = resolve_practice(db(), p, slug, "practice:read")  # someone else's practice: 404
    if access.slug not in {pr.slug for pr in switchable_practices(p, primary_role(p))}:
        raise NotFound(f"practice {slug!r} not found")
    session[PRACTICE_KEY] = access.slug
    flash(f"Now working in {access.name}.", "info")
    return redirect(url_for("portal.home"))


def _page_arg(name: str = "page") -> int:
    try:
        page = int(request.args.get(name, "1"))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


@bp.get("/practices/<slug>/patients")
def patients(slug: str):
    access = resolve_practice(db(), principal(), slug, "patients:read")
    page = _page_arg()
    s = tenant_db(access)
    rows, total = list_patients(s, access, page=page, per_page=PATIENTS_PER_PAGE)
    s.commit()  # the audit entry list_patients wrote
    pages = max(1, math.ceil(total / PATIENTS_PER_PAGE))
    return render_template(
        "portal/patients.html",
        access=access,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        first_index=(page - 1) * PATIENTS_PER_PAGE + 1,
        per_page=PATIENTS_PER_PAGE,
    )


from portal import (  # noqa: E402,F401
    accounts_pages,
    claims,
    collections,
    denials,
    documents,
    patient_billing,
    remittances,
    reports,
)
