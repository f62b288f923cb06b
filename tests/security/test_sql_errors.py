"""A failing SQL statement's error names the statement, never the values bound to it: patient data in a failed
statement must not reach an exception message, a log line or a failed job's record in Redis through SQLAlchemy's
parameter listing. (What PostgreSQL itself quotes, e.g. a unique key's value, is masked by the log formatter.)"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def test_sql_errors_carry_no_bound_values(services):
    secret = "Zebediah-Quaxley-1961-04-05"
    with services.db.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text("SELECT length(:value) / 0"), {"value": secret})
    message = str(caught.value)
    assert "division by zero" in message and "length(" in message
    assert secret not in message and "parameters hidden" in message
