"""Login throttling in Redis: failed sign-ins are counted per account+address, per account and per client address in
fixed windows; once a count reaches its limit, sign-in attempts that match it are refused (HTTP 429 with Retry-After)
without the password even being checked, until the window ends.

Why three counters: account+address stops guessing one user's password from one place, and is the only one a
successful sign-in clears (so the real user is not locked out by their own typos); the account counter (across
addresses) stops a spread-out attack on one user; the address counter stops one client spraying many accounts. A
success from one address never clears another address's counters, nor the account-wide one, so an attacker who
also holds a valid login cannot reset their own budget. Keys hold SHA-256 digests, never emails or addresses.

Why the check and the count are one Lua script: checked and counted in two steps, concurrent wrong passwords all
passed the check before any of them was counted (40 at once got 12 checked against a limit of 5). The script counts
the attempt before its password is verified, so at most the limit are ever checked; a success gives its attempt back
(on the account-wide and address counters) and clears its own account+address count."""

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
        """Seconds until this account may try again from this address, or None if it may try now, in which case
        this attempt is already counted as a failure (one atomic step with the check: see the module docstring);
        call `succeeded` if the password turns out right."""
        keys = self._keys(email, address)
        blocked, ttl = self.redis.eval(
            _RESERVE, len(keys), *(key for key, _ in keys), self.limits.window_seconds, *(limit for _, limit in keys)
        )
        if not blocked:
            return None
        wait = max(1, int(ttl))
        log.warning(
            "sign-in refused, too many failures: account %s from %s, retry in %ds", _account(email), address, wait
        )
        return wait

    def failed(self, email: str, address: str | None) -> None:
        """A wrong password: already counted when `retry_after` let the attempt through, so only logged here."""
        count = self.redis.get(self._keys(email, address)[0][0])
        log.info("failed sign-in: account %s from %s (%s from there)", _account(email), address, int(count or 0))

    def succeeded(self, email: str, address: str | None) -> None:
        """Clears this account's count from this address and gives this attempt back to the account-wide and address
        counters (see the module docstring for why nothing more)."""
        keys = [key for key, _ in self._keys(email, address)]
        self.redis.eval(_SUCCEEDED, len(keys), *keys)


# KEYS: the account+address, account and address counters; ARGV[1]: the window in seconds, ARGV[2..]: the limits.
# Returns {0, 0} and counts the attempt on every counter if no limit is reached, else {1, seconds left of the
# longest-blocking window}.
_RESERVE = """
local blocked, wait = false, 1
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    blocked, wait = true, math.max(wait, redis.call('TTL', key))
  end
end
if blocked then
  return {1, wait}
end
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'EX', ARGV[1], 'NX')
  redis.call('INCR', key)
end
return {0, 0}
"""

# KEYS as above: the account+address counter goes, the other two lose the attempt `_RESERVE` counted.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 0
"""


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
