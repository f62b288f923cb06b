"""The portal during an outage: a signed-in page whose database is unreachable answers 503 with the portal's own
page (what happened, that nothing was lost, when to retry), never a 500 or a stack trace."""

from __future__ import annotations

from tests.faults.test_outages import _app
from tests.portal.test_portal import portal_login
from tests.s3server import free_port


def test_a_portal_page_answers_503_while_the_database_is_away(client, settings, world):
    portal_login(client, world.users["biller_x"])
    cookie = client.get_cookie("medbill_session")
    assert cookie is not None
    away = _app(settings, database_url=settings.database_url.replace(":5432/", f":{free_port()}/"))
    tab = away.test_client()
    tab.set_cookie("medbill_session", cookie.value)
    response = tab.get(f"/practices/{world.practices['A']}/patients")
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "Temporarily unavailable" in page and "database" in page and "Nothing was lost" in page
    assert "Traceback" not in page and "psycopg" not in page
