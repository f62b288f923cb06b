"""The Flask app factory: wires settings, services (database, Redis, storage, dispatcher), the API and the portal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask, g, request
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (
    audit,
    auth,
    claims,
    collections,
    denials,
    docs_assets,
    documents,
    edi,
    files,
    health,
    jobs,
    patient_billing,
    patients,
    practices,
    remittances,
    reports,
    setup,
    users,
)
from api import errors as api_errors
from api import secrets as secrets_api
from api.converters import ID_SCHEMA, IdConverter, decimal_string_property
from api.schemas import ErrorSchema
from api.security import close_session, enforce, unguarded_routes
from integrations.storage import Storage
from jobs.queues import Dispatcher
from medbill import input_limits
from medbill.config import Settings
from medbill.logging_config import configure_logging
from medbill.services import make_database, make_redis, make_storage
from tenants import audit as audit_trail
from tenants.db import Database

API_BLUEPRINTS = (
    auth.blp,
    audit.blp,
    health.blp,
    practices.blp,
    patients.blp,
    jobs.blp,
    setup.blp,
    claims.blp,
    edi.blp,
    remittances.blp,
    documents.blp,
    denials.blp,
    patient_billing.blp,
    collections.blp,
    reports.blp,
    users.blp,
    secrets_api.blp,
)


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: Redis
    storage: Storage
    dispatcher: Dispatcher


class MedbillApi(Api):
    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        # flask-smorest registers this app-wide; only API paths get JSON, the portal renders its own pages.
        if not api_errors.is_api_request():
            return error
        return api_errors.http_exception_response(error)


def create_app(settings: Settings | None = None) -> Flask:
    settings = (settings or Settings.from_env()).ensure_secret_key()
    configure_logging(settings.log_level)
    # root_path explicitly: started from a directory holding a folder named `medbill` (the parent of a clone), that
    # folder is first on sys.path and `medbill` can resolve to it as a namespace package, which has no root path.
    app = Flask("medbill", template_folder=None, root_path=str(Path(__file__).resolve().parent))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="medbill_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        # The browser keeps the cookie as long as a portal session may live; its idle timeout is kept server-side.
        PERMANENT_SESSION_LIFETIME=settings.session_max_hours * 3600,
        WTF_CSRF_TIME_LIMIT=settings.session_max_hours * 3600,
        API_TITLE="medbill",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Our own copy (api/docs_assets.py), not a CDN: the docs page must work without internet.
        OPENAPI_SWAGGER_UI_URL=docs_assets.SWAGGER_UI_ASSETS_URL,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
            "info": {"description": "Multi-tenant medical billing: practices, patients, claims, remittances."},
        },
    )
    redis = make_redis(settings)
    services = Services(
        settings=settings,
        db=make_database(settings),
        redis=redis,
        storage=make_storage(settings),
        dispatcher=Dispatcher(redis),
    )
    app.extensions["medbill"] = services

    app.url_map.converters["id"] = IdConverter
    api = MedbillApi(app)
    api.register_converter(IdConverter, lambda _converter: dict(ID_SCHEMA))
    api.ma_plugin.converter.add_attribute_function(decimal_string_property)
    for blp in API_BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(files.blp)
    app.register_blueprint(docs_assets.blp)

    csrf = CSRFProtect(app)
    for blp in API_BLUEPRINTS:
        csrf.exempt(blp)  # bearer tokens, not cookies: nothing for a cross-site form to ride on

    import portal.audit  # noqa: F401  (the company audit page joins the portal blueprint)
    from portal.views import bp as portal_bp

    app.register_blueprint(portal_bp)

    if settings.proxy_hops:
        # Behind N trusted proxies: the client address (login throttling, audit) and scheme come from X-Forwarded-*.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops)

    @app.after_request
    def _api_security_headers(response):
        # The portal blueprint sets its own (CSP included); JSON answers may carry PHI: never cached, never sniffed.
        if request.path.startswith("/api/"):
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        if settings.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response

    @app.before_request
    def _audit_client_address():
        # First of all hooks: every audit entry of this request (sign-in hooks included) carries the client address,
        # as ProxyFix resolved it from MEDBILL_PROXY_HOPS, without each caller passing it.
        g.audit_ip_token = audit_trail.set_client_address(request.remote_addr)

    @app.teardown_request
    def _audit_client_address_end(_exc=None):
        token = g.pop("audit_ip_token", None)
        if token is not None:
            audit_trail.reset_client_address(token)

    app.before_request(enforce)
    input_limits.register(app)
    app.teardown_request(close_session)
    api_errors.register(app)

    missing = unguarded_routes(app)
    if missing:
        raise RuntimeError(f"API routes without an access policy: {', '.join(missing)}")
    return app
