"""Login throttling on real Redis: failed sign-ins are limited per account+address, per account and per address, for
the API token endpoint and the portal login alike; past a limit the answer is 429 with Retry-After."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tenants.throttle import KEY_PREFIX, LoginLimits, LoginThrottle
from tests.conftest import PASSWORD
from tests.portal.test_portal import csrf_from

TOKEN_URL = "/api/v1/auth/token"
_others = itertools.count(20)


def api_login(client, email: str, password: str, address: str):
    return client.post(TOKEN_URL, json={"email": email, "password": password}, environ_base={"REMOTE_ADDR": address})


def portal_login(client, email: str, password: str, address: str):
    env = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=env))
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password}, environ_base=env)


@pytest.fixture()
def limits(monkeypatch, services):
    """Lower the limits of the running app for one test (the throttle reads them from the app's Settings)."""

    def apply(**changes) -> None:
        monkeypatch.setattr(services, "settings", services.settings.with_(**changes))

    return apply


def test_api_locks_an_account_at_one_address_after_five_failures(client, fresh_user, address):
    for _ in range(5):
        assert api_login(client, fresh_user, "wrong-password", address).status_code == 401
    # The sixth attempt is refused before the password is checked, even the right one.
    locked = api_login(client, fresh_user, PASSWORD, address)
    assert locked.status_code == 429
    body = locked.get_json()
    assert body["code"] == "too_many_requests" and "try again in 15 minutes" in body["message"]
    assert 800 < int(locked.headers["Retry-After"]) <= 900
    assert "access_token" not in body


def test_success_elsewhere_does_not_reset_a_locked_address(client, fresh_user, address, limits):
    limits(login_failures_per_account_address=2)
    other = "198.51.100.77"
    for _ in range(2):
        api_login(client, fresh_user, "wrong-password", address)
    # The real user, somewhere else, still signs in (the account-wide limit is higher)...
    assert api_login(client, fresh_user, PASSWORD, other).status_code == 200
    # ...and that does not give the guessing address its attempts back.
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 429
    assert api_login(client, fresh_user, "wrong-password", address).status_code == 429


def test_success_clears_only_its_own_address_count(client, fresh_user, address, limits):
    limits(login_failures_per_account_address=3)
    for _ in range(2):
        assert api_login(client, fresh_user, "wrong-password", address).status_code == 401
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 200
    # A user who mistypes and then gets it right starts over from this address.
    for _ in range(2):
        assert api_login(client, fresh_user, "wrong-password", address).status_code == 401
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 200


def test_account_limit_spans_addresses(client, fresh_user, limits):
    limits(login_failures_per_account=3)
    for i in range(3):
        assert api_login(client, fresh_user, "wrong-password", f"198.51.100.{10 + i}").status_code == 401
    # A distributed guesser exhausted the account's budget: a fourth address is refused too.
    assert api_login(client, fresh_user, PASSWORD, "198.51.100.99").status_code == 429


def test_address_limit_spans_accounts(client, fresh_user, address, limits):
    limits(login_failures_per_address=4)
    for i in range(4):
        assert api_login(client, f"nobody{i}@example.test", "pw", address).status_code == 401
    # Spraying many accounts from one address: that address is refused for every account...
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 429
    # ...while other addresses are not.
    assert api_login(client, fresh_user, PASSWORD, "192.0.2.200").status_code == 200


def test_lock_ends_with_the_window(client, fresh_user, address, limits):
    limits(login_window_seconds=3, login_failures_per_account_address=2)
    for _ in range(2):
        api_login(client, fresh_user, "wrong-password", address)
    locked = api_login(client, fresh_user, PASSWORD, address)
    assert locked.status_code == 429 and 1 <= int(locked.headers["Retry-After"]) <= 3
    time.sleep(int(locked.headers["Retry-After"]) + 0.5)
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 200


def test_portal_login_is_throttled_with_a_message(app, fresh_user, address):
    client = app.test_client()
    for _ in range(5):
        page = portal_login(client, fresh_user, "wrong-password", address)
        assert page.status_code == 200 and "Wrong email or password" in page.get_data(as_text=True)
    locked = portal_login(client, fresh_user, PASSWORD, address)
    text = locked.get_data(as_text=True)
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in text and "try again in 15 minutes" in text
    assert 800 < int(locked.headers["Retry-After"]) <= 900
    # Not signed in: the home page still sends the browser to the login page.
    assert client.get("/home", environ_base={"REMOTE_ADDR": address}).status_code == 302


def test_portal_and_api_share_the_count(app, client, fresh_user, address, limits):
    limits(login_failures_per_account_address=2)
    api_login(client, fresh_user, "wrong-password", address)
    browser = app.test_client()
    for _ in range(1):
        portal_login(browser, fresh_user, "wrong-password", address)
    assert api_login(client, fresh_user, PASSWORD, address).status_code == 429


def test_counters_keep_no_email_or_address_in_redis(client, services, fresh_user, address):
    api_login(client, fresh_user, "wrong-password", address)
    keys = [k.decode() for k in services.redis.scan_iter(match=KEY_PREFIX + "*")]
    assert len(keys) >= 3
    assert not [k for k in keys if fresh_user in k or address in k or fresh_user.split("@")[0] in k]


def test_forwarded_for_counts_only_behind_a_configured_proxy(settings, fresh_user):
    from medbill.app import create_app

    def attempt(app, forwarded: str, password: str = "wrong-password"):
        return app.test_client().post(
            TOKEN_URL,
            json={"email": fresh_user, "password": password},
            headers={"X-Forwarded-For": forwarded},
            environ_base={"REMOTE_ADDR": "10.9.8.7"},
        )

    lenient = settings.with_(login_failures_per_account_address=2, login_failures_per_account=100)
    direct = create_app(lenient)
    # Served directly, a forged X-Forwarded-For does not buy a fresh budget: the socket address counts.
    assert [attempt(direct, f"192.0.2.{i}").status_code for i in range(3)] == [401, 401, 429]
    proxied = create_app(lenient.with_(proxy_hops=1))
    # Behind the configured proxy, the client address it reports is the one throttled (one client's lock is not
    # everyone's behind the same proxy).
    assert [attempt(proxied, "192.0.2.50").status_code for _ in range(3)] == [401, 401, 429]
    assert attempt(proxied, "192.0.2.51", PASSWORD).status_code == 200
    for app in (direct, proxied):
        app.extensions["medbill"].db.engine.dispose()


def _at_once(n: int, attempt) -> list:
    """`attempt` run by n threads released together, so the checks really race; their results in any order."""
    barrier = threading.Barrier(n)

    def run(_):
        barrier.wait(timeout=30)
        return attempt()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_attempts_are_checked_at_most_up_to_the_limit(services, fresh_user, address):
    limits = LoginLimits(per_account_address=5, per_account=20, per_address=50, window_seconds=60)
    throttle = LoginThrottle(services.redis, limits)
    let_through = _at_once(40, lambda: throttle.retry_after(fresh_user, address))
    assert let_through.count(None) == 5  # counted in the same step as checked: no race lets a sixth through
    assert all(wait is not None and 1 <= wait <= 60 for wait in let_through if wait is not None)


def test_concurrent_wrong_passwords_on_the_api_get_at_most_five_checked(app, fresh_user, address):
    statuses = _at_once(40, lambda: api_login(app.test_client(), fresh_user, "wrong-password", address).status_code)
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == 5, statuses  # at most the limit were checked against the password


def test_a_success_gives_its_attempt_back_to_the_account_count(client, services, fresh_user, address, limits):
    limits(login_failures_per_account=3)
    for _ in range(2):
        assert api_login(client, fresh_user, "wrong-password", address).status_code == 401
    for _ in range(3):  # counted before the password was checked, then given back: never a failure
        assert api_login(client, fresh_user, PASSWORD, f"198.51.100.{next(_others)}").status_code == 200
    assert api_login(client, fresh_user, "wrong-password", "198.51.100.250").status_code == 401
    assert api_login(client, fresh_user, PASSWORD, "198.51.100.251").status_code == 429
