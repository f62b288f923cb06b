"""Outbound connections of a billing company: a practice's clearinghouse transport and an agency's file delivery.

What a tenant may configure, and how a configuration becomes a live transport:

- credentials are named, never given: ``password_secret`` / ``private_key_secret`` name a secret in the owning
  company's store (tenants.secrets) and are resolved only within that company. ``password_env`` /
  ``private_key_env`` (names of server environment variables), raw ``password`` / ``private_key`` and a directory
  ``path`` are refused when saved, and refused again when a row saved before this rule is used;
- SFTP hosts must be on the operator's allow-list (``MEDBILL_CLEARINGHOUSE_HOSTS`` for clearinghouses,
  ``MEDBILL_AGENCY_HOSTS`` for agencies: ``host`` or ``host:port`` entries), checked when saved and again before
  connecting, so an old row cannot bypass it; the server's host key must be pinned;
- the directory transport exists only under the operator's ``MEDBILL_DIRECTORY_TRANSPORT_ROOT``, in the company's
  own subdirectory (its slug), optionally one validated sub-name below it; symlinks are resolved and checked;
- changing a transport needs ``connections:write`` (company admins) and is audited with before and after;
- a transport built here answers failures with a message fit for the tenant (no host keys, banners or raw
  exception text); the full detail goes to the server log only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from integrations.clearinghouse import ACCEPT_ANY_HOST_KEY, RemoteFile, Transport, TransportError
from integrations.clearinghouse import transport_from_settings as _build
from medbill.config import Settings
from medbill.errors import DomainError, Forbidden, Invalid
from tenants import audit, secrets
from tenants.authz import PracticeAccess
from tenants.models import BillingCompany

__all__ = [
    "OutboundPolicy",
    "SafeTransport",
    "build_transport",
    "record_change",
    "require_admin",
    "secret_box",
    "validate",
]

log = logging.getLogger("medbill.connections")

PURPOSES = {
    "clearinghouse": ("clearinghouse", "MEDBILL_CLEARINGHOUSE_HOSTS"),
    "agency": ("agency delivery", "MEDBILL_AGENCY_HOSTS"),
}
SFTP_KEYS = frozenset(
    {"transport", "host", "port", "username", "password_secret", "private_key_secret", "host_key_sha256", "inbox",
     "outbox", "timeout"}
)  # fmt: skip
DIRECTORY_KEYS = frozenset({"transport", "subdir"})
# Set by the demo seed only (medbill up repoints such practices at its sandbox); never accepted from a request.
SYSTEM_KEYS = frozenset({"sandbox"})
REFUSED = {
    "password_env": "environment variables are not used: store the password as a company secret "
    "(PUT /api/v1/company/secrets/<name>) and name it in password_secret",
    "private_key_env": "environment variables are not used: store the key as a company secret "
    "(PUT /api/v1/company/secrets/<name>) and name it in private_key_secret",
    "password": "credentials are not accepted here: store the password as a company secret "
    "(PUT /api/v1/company/secrets/<name>) and name it in password_secret",
    "private_key": "credentials are not accepted here: store the key as a company secret "
    "(PUT /api/v1/company/secrets/<name>) and name it in private_key_secret",
    "path": "server paths are not accepted: the directory transport writes to the company's own directory "
    "(optionally a 'subdir' name below it)",
}
SUBDIR_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
REMOTE_DIR_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


# --- the operator's policy ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundPolicy:
    """Where the operator lets tenants connect."""

    clearinghouse_hosts: tuple[str, ...] = ()
    agency_hosts: tuple[str, ...] = ()
    directory_root: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(settings.clearinghouse_hosts, settings.agency_hosts, settings.directory_transport_root)

    def allows(self, purpose: str, host: str, port: int) -> bool:
        entries = self.clearinghouse_hosts if purpose == "clearinghouse" else self.agency_hosts
        host = host.strip().lower().rstrip(".")
        for entry in entries:
            entry = entry.strip().lower()
            name, sep, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            if not sep:
                name = entry
            if name.strip("[]").rstrip(".") != host:
                continue
            if not sep or entry_port == str(port):
                return True
        return False


# --- saving ---------------------------------------------------------------------------------------------------------


def require_admin(access: PracticeAccess, what: str, field: str) -> None:
    if not access.can("connections:write"):
        raise Forbidden(
            f"changing the {what} needs the company admin role ('connections:write')",
            errors={field: ["only a company admin may change it"]},
        )


def _port(value: Any, field: str) -> int:
    if value in (None, ""):
        return 22
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise Invalid("port is not valid", errors={f"{field}.port": ["an integer from 1 to 65535"]})
    try:
        port = int(value)
    except ValueError as exc:
        raise Invalid("port is not valid", errors={f"{field}.port": ["an integer from 1 to 65535"]}) from exc
    if not 1 <= port <= 65535:
        raise Invalid("port is not valid", errors={f"{field}.port": ["an integer from 1 to 65535"]})
    return port


def validate(
    session: Session, company_id: int, settings: Any, *, purpose: str, policy: OutboundPolicy, field: str
) -> dict:
    """The settings to store for a transport (an empty dict: none), or Invalid naming the field at fault."""
    if settings in (None, {}):
        return {}
    if not isinstance(settings, Mapping):
        raise Invalid("transport settings must be an object", errors={field: ["an object with 'transport'"]})
    errors: dict[str, list[str]] = {}
    for key, why in REFUSED.items():
        if key in settings:
            errors[f"{field}.{key}"] = [why]
    kind = settings.get("transport")
    if kind not in ("sftp", "directory"):
        errors[f"{field}.transport"] = ["'sftp' or 'directory'"]
    allowed = SFTP_KEYS if kind == "sftp" else DIRECTORY_KEYS if kind == "directory" else frozenset()
    for key in settings:
        if allowed and key not in allowed and key not in REFUSED:
            errors[f"{field}.{key}"] = [f"not a setting of the {kind} transport"]
    if errors:
        raise Invalid("transport settings are not valid", errors=errors)
    if kind == "directory":
        return _validate_directory(settings, policy, field)
    return _validate_sftp(session, company_id, settings, purpose, policy, field)


def _validate_directory(settings: Mapping, policy: OutboundPolicy, field: str) -> dict:
    if policy.directory_root is None:
        raise Invalid(
            "the directory transport is not enabled on this server",
            errors={f"{field}.transport": ["not enabled on this server (the operator sets a root for it)"]},
        )
    out: dict[str, Any] = {"transport": "directory"}
    subdir = settings.get("subdir")
    if subdir not in (None, ""):
        if not isinstance(subdir, str) or not SUBDIR_RE.match(subdir) or ".." in subdir:
            raise Invalid(
                "subdir is not valid",
                errors={f"{field}.subdir": ["one name (letters, digits, '.', '_', '-'), no '/' or '..'"]},
            )
        out["subdir"] = subdir
    return out


def _validate_sftp(
    session: Session, company_id: int, settings: Mapping, purpose: str, policy: OutboundPolicy, field: str
) -> dict:
    errors: dict[str, list[str]] = {}
    host = settings.get("host")
    if not isinstance(host, str) or not host.strip() or len(host) > 253 or any(c.isspace() for c in host.strip()):
        errors[f"{field}.host"] = ["a host name or address"]
        host = ""
    host = host.strip().lower()
    try:
        port = _port(settings.get("port"), field)
    except Invalid as exc:
        errors.update(exc.errors)
        port = 0
    what, variable = PURPOSES[purpose]
    if host and port and not policy.allows(purpose, host, port):
        errors[f"{field}.host"] = [
            f"{host}:{port} is not an allowed {what} host on this server (the operator lists them in {variable})"
        ]
    username = settings.get("username")
    if not isinstance(username, str) or not username.strip() or len(username) > 100:
        errors[f"{field}.username"] = ["required"]
    named = [key for key in ("password_secret", "private_key_secret") if settings.get(key) not in (None, "")]
    if len(named) != 1:
        errors[f"{field}.password_secret"] = ["name exactly one company secret: password_secret or private_key_secret"]
    for key in named:
        name = settings[key]
        if not isinstance(name, str) or not secrets.NAME_RE.match(name):
            errors[f"{field}.{key}"] = [secrets.NAME_RULE]
        elif not secrets.exists(session, company_id, name, hold=True):  # not deleted under the save
            errors[f"{field}.{key}"] = [
                f"no secret named {name!r} in this company (PUT /api/v1/company/secrets/{name})"
            ]
    fingerprint = settings.get("host_key_sha256")
    if fingerprint == ACCEPT_ANY_HOST_KEY or not isinstance(fingerprint, str) or not fingerprint:
        errors[f"{field}.host_key_sha256"] = ["required: the server's SHA256:... host key fingerprint"]
    for key in ("inbox", "outbox"):
        value = settings.get(key)
        if value not in (None, "") and (not isinstance(value, str) or not REMOTE_DIR_RE.match(value)):
            errors[f"{field}.{key}"] = ["a path on the server: letters, digits, '.', '_', '-', '/'"]
    timeout = settings.get("timeout")
    if timeout not in (None, "") and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 120
    ):
        errors[f"{field}.timeout"] = ["seconds, from 1 to 120"]
    if errors:
        raise Invalid("transport settings are not valid", errors=errors)
    out = {k: settings[k] for k in SFTP_KEYS if settings.get(k) not in (None, "")}
    out.update(transport="sftp", host=host, port=port, username=username.strip())
    try:
        # The fingerprint's own checks (SHA-256, base64) live with the transport.
        _build(out | {"password": "-"})
    except ValueError as exc:
        raise Invalid("transport settings are not valid", errors={f"{field}.host_key_sha256": [str(exc)]}) from exc
    return out


def record_change(
    session: Session, access: PracticeAccess, object_type: str, object_id: Any, before: Any, after: Any
) -> None:
    """Audit a transport change with what it was and what it is (secrets masked by the audit's one rule)."""
    audit.record_change(session, access, object_type, object_id, before or {}, after or {}, action="change_transport")


def secret_box(settings: Settings) -> secrets.SecretBox | None:
    """The master key's box, or None when the server has none (then only a transport that needs no stored
    credential can be built, and one that does is refused with a message saying why)."""
    try:
        return secrets.SecretBox.from_settings(settings)
    except secrets.SecretsUnavailable as exc:
        log.warning("stored credentials unavailable: %s", exc.message)
        return None


# --- connecting -----------------------------------------------------------------------------------------------------


def _refuse(message: str) -> TransportError:
    log.warning("connection refused before connecting: %s", message)
    return TransportError(message, transient=False, public=message)


def build_transport(
    session: Session,
    company_id: int,
    settings: Mapping[str, Any] | None,
    *,
    purpose: str,
    policy: OutboundPolicy,
    box: secrets.SecretBox | None,
) -> Transport:
    """The live transport for one of the company's stored settings; every rule of saving is checked again (an old
    row is refused here without connecting). Failures later carry only tenant-safe messages (SafeTransport)."""
    what, variable = PURPOSES[purpose]
    settings = dict(settings or {})
    if not settings:
        raise _refuse(f"no {what} transport is configured")
    legacy = sorted(k for k in REFUSED if k in settings)
    if legacy:
        raise _refuse(
            f"the {what} transport was saved with {', '.join(legacy)}, which is no longer used: a company admin "
            "stores the credential as a company secret (PUT /api/v1/company/secrets/<name>) and sets "
            "password_secret (or private_key_secret); a directory drop takes no path"
        )
    kind = settings.get("transport")
    if kind == "directory":
        return SafeTransport(_directory(session, company_id, settings, policy), what)
    if kind != "sftp":
        raise _refuse(f"the {what} transport {kind!r} is not one of sftp, directory")
    host = str(settings.get("host") or "").strip().lower()
    try:
        port = int(settings.get("port") or 22)
    except (TypeError, ValueError):
        raise _refuse(f"the {what} transport's port is not a number") from None
    if not host or not policy.allows(purpose, host, port):
        raise _refuse(f"{host}:{port} is not an allowed {what} host on this server (see {variable})")
    if settings.get("host_key_sha256") in (None, "", ACCEPT_ANY_HOST_KEY):
        raise _refuse(f"the {what} transport has no pinned host key (host_key_sha256)")
    resolved = {k: settings[k] for k in SFTP_KEYS if settings.get(k) not in (None, "")}
    resolved.update(host=host, port=port)
    for key, target in (("password_secret", "password"), ("private_key_secret", "private_key")):
        name = resolved.pop(key, None)
        if not name:
            continue
        if box is None:
            raise _refuse("stored credentials are not available on this server (MEDBILL_SECRETS_KEY)")
        try:
            resolved[target] = secrets.reveal(session, box, company_id, str(name))
        except DomainError as exc:
            log.warning("company %s: secret %r for the %s transport: %s", company_id, name, what, exc.message)
            raise TransportError(
                exc.message, transient=False, public=f"the company secret {name!r} named by {key} is not available"
            ) from None
    if "password" not in resolved and "private_key" not in resolved:
        raise _refuse(f"the {what} transport names no credential (password_secret or private_key_secret)")
    try:
        transport = _build(resolved)
    except ValueError as exc:
        log.warning("company %s: %s transport settings refused: %s", company_id, what, exc)
        # Our own validation messages (no remote data), except that a key parse error may quote the library.
        public = "the private key is not usable" if "private_key" in str(exc) else str(exc)
        raise TransportError(str(exc), transient=False, public=public) from None
    return SafeTransport(transport, what)


def _directory(session: Session, company_id: int, settings: Mapping, policy: OutboundPolicy) -> Transport:
    if policy.directory_root is None:
        raise _refuse("the directory transport is not enabled on this server")
    company = session.get(BillingCompany, company_id)
    root = policy.directory_root.resolve()
    company_dir = root / company.slug
    subdir = settings.get("subdir")
    if subdir not in (None, "") and (not isinstance(subdir, str) or not SUBDIR_RE.match(subdir) or ".." in subdir):
        raise _refuse("the directory transport's subdir is not a plain name")
    target = company_dir / subdir if subdir else company_dir
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("directory transport of company %s: cannot create %s: %s", company_id, target, exc)
        raise TransportError(str(exc), transient=False, public="the company's directory cannot be created") from None
    # Symlinks resolved: the company's directory (and the inbox and outbox in it) must really be below the root.
    real_company = company_dir.resolve()
    real = target.resolve()
    inside = real_company.is_relative_to(root) and real_company != root and real.is_relative_to(real_company)
    for box_dir in ("inbox", "outbox"):
        path = target / box_dir
        if path.exists() or path.is_symlink():
            inside = inside and path.resolve().is_relative_to(real_company)
    if not inside:
        log.warning("directory transport of company %s: %s leaves its company directory", company_id, target)
        raise _refuse("the company's directory leads outside its own area on this server")
    return _build({"transport": "directory", "path": str(real)})


class SafeTransport:
    """A transport whose failures name what went wrong in words a tenant may see: the underlying error (with host
    keys, banners, paths and exception text) is logged here and not passed on."""

    def __init__(self, inner: Transport, what: str) -> None:
        self._inner = inner
        self._what = what

    def __repr__(self) -> str:
        return f"SafeTransport({self._inner!r})"

    def _run(self, action: str, fn, *args):
        try:
            return fn(*args)
        except TransportError as exc:
            log.warning("%s %s failed: %s", self._what, action, exc)
            raise TransportError(exc.public, transient=exc.transient, public=exc.public) from None
        except ValueError as exc:  # a filename the transport refused: our own message
            raise TransportError(str(exc), transient=False, public=str(exc)) from None

    def send(self, filename: str, data: bytes) -> None:
        self._run("send", self._inner.send, filename, data)

    def fetch(self) -> list[RemoteFile]:
        return self._run("fetch", self._inner.fetch)

    def archive(self, name: str) -> None:
        self._run("archive", self._inner.archive, name)

    def check(self) -> None:
        self._run("check", self._inner.check)
