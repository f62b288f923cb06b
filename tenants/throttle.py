"""Login throttling in Redis: failed sign-ins are counted per account+address, per account and per client address in
fixed windows; once a count reaches its limit, sign-in attempts that match it are refused (HTTP 429 with Retry-After)
without the password even being checked, until the window ends.

Why three counters: account+address stops guessing one user's password from one place, and is the only one a
successful sign-in clears (so the real user is not locked out by their own typos); the account counter (across
addresses) stops a spread-out attack on one user; the address counter stops one client spraying many accounts. A
success from one address never clears another address's counters, nor the account-wide one, so an attacker who
also holds a valid login cannot reset their own budget. Keys hold SHA-256 digests, never emails or addresses."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from redis import Redis

KEY_PREFIX = "medbill:login-fail:"
# Security events name the account by its key digest (never the email) so operators can correlate attempts.
log = logging.getLogger("medbill.auth")


@dataclass(frozen=True)
class LoginLimits:
    per_account_address: int = 5
    per_account: int = 20
    per_address: int = 50
    window_seconds: int = 900


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _account(email: str) -> str:
    return _digest(email.strip().lower())[:12]


class LoginThrottle:
    def __init__(self, redis: Redis, limits: LoginLimits) -> None:
        self.redis = redis
        self.limits = limits

    def _keys(self, email: str, address: str | None) -> list[tuple[str, int]]:
        account = _digest(email.strip().lower())  # _account() is its first 12 characters
        addr = _digest(address or "unknown")
        return [
            (f"{KEY_PREFIX}acct-addr:{account}:{addr}", self.limits.per_account_address),
            (f"{KEY_PREFIX}acct:{account}", self.limits.per_account),
            (f"{KEY_PREFIX}addr:{addr}", self.limits.per_address),
        ]

    def retry_after(self, email: str, address: str | None) -> int | None:
        """Seconds until this account may try again from this address, or None if it may try now."""
        keys = self._keys(email, address)
        counts = self.redis.mget([key for key, _ in keys])
        blocked = [key for (key, limit), count in zip(keys, counts, strict=True) if count and int(count) >= limit]
        if not blocked:
            return None
        ttls = [self.redis.ttl(key) for key in blocked]
        wait = max(1, *(t for t in ttls if t and t > 0))
        log.warning(
            "sign-in refused, too many failures: account %s from %s, retry in %ds", _account(email), address, wait
        )
        return wait

    def failed(self, email: str, address: str | None) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for key, _ in self._keys(email, address):
            # SET NX EX starts the window on the first failure; INCR keeps the key's expiry.
            pipe.set(key, 0, ex=self.limits.window_seconds, nx=True)
            pipe.incr(key)
        counts = pipe.execute()[1::2]
        log.info("failed sign-in: account %s from %s (%d from there)", _account(email), address, counts[0])

    def succeeded(self, email: str, address: str | None) -> None:
        """Clears only this account's count from this address (see the module docstring for why)."""
        self.redis.delete(self._keys(email, address)[0][0])


def for_services(services) -> LoginThrottle:
    """The throttle of a running app (its Redis, the limits from its Settings)."""
    st = services.settings
    limits = LoginLimits(
        per_account_address=st.login_failures_per_account_address,
        per_account=st.login_failures_per_account,
        per_address=st.login_failures_per_address,
        window_seconds=st.login_window_seconds,
    )
    return LoginThrottle(services.redis, limits)


def minutes_text(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute" + ("" if minutes == 1 else "s")
