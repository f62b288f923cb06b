"""Appeal templates with bounded work: a template that would loop a billion times, build a gigabyte string or run
nested loops for minutes is refused when saved (422, saying which limit), within the render time limit, in a child
process; ordinary templates still render, and a template's Python errors are a clear 422, not a 500."""

from __future__ import annotations

import time

import pytest

from billing import appeals, letter_sandbox
from tests.billing.factories import billing_practice
from tests.conftest import login

CONTEXT = {"name": "Ann Lee", "items": ["a", "b"], "amount": "-12.50"}


def test_an_ordinary_template_renders_with_loops_filters_and_formatting():
    body = ("Dear {{ name }}, {% for i in range(3) %}{{ i }}{% endfor %} {{ items|join(', ') }} {{ 'ab' * 2 }} "
            "{{ '%05.1f' % 3.14159 }} {{ 'x'|center(5) }} {{ amount }}")  # fmt: skip
    assert letter_sandbox.render(body, CONTEXT) == "Dear Ann Lee, 012 a, b abab 003.1   x   -12.50"


@pytest.mark.parametrize(
    "body,words",
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "range() of more than"),
        ("{{ 'x' * 10**9 }}", "repeated string"),
        ("{{ [1] * 10**9 }}", "repeated string or list"),
        ("{{ 2 ** (10 ** 9) }}", "a power of more than"),
        ("{{ 'x'|center(10**9) }}", "a number above"),
        ("{{ 'x'.ljust(10**9) }}", "a number above"),
        ("{{ '%0999999999d' % 1 }}", "format width"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
         "a letter of more than"),
        ("{{ lipsum(100000) }}", "lipsum"),
    ],
)
def test_work_past_a_cap_is_refused_saying_which(body, words):
    with pytest.raises(letter_sandbox.TemplateFailure) as refused:
        letter_sandbox.render(body, CONTEXT)
    assert words in refused.value.message


def test_memory_past_the_childs_limit_ends_the_child_not_the_caller():
    body = "{% set ns = namespace(x='x') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}"
    with pytest.raises(letter_sandbox.TemplateFailure) as refused:
        letter_sandbox.render(body, CONTEXT)
    assert refused.value.kind == "resources" and "MB" in refused.value.message


def test_a_long_render_is_stopped_at_the_time_limit():
    body = "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}" \
           "{% endfor %}"  # fmt: skip
    started = time.monotonic()
    with pytest.raises(letter_sandbox.TemplateFailure) as refused:
        letter_sandbox.render(body, CONTEXT, seconds=1.5)
    assert refused.value.kind == "time" and "longer than 1.5 s" in refused.value.message
    assert time.monotonic() - started < 4


def test_the_child_gets_none_of_the_servers_settings_and_no_internals():
    assert letter_sandbox._child_env().keys() <= {"PYTHONPATH", "PYTHONIOENCODING", "LANG", "PATH",
                                                  "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    with pytest.raises(letter_sandbox.TemplateFailure, match="unsafe"):
        letter_sandbox.render("{{ ''.__class__.__mro__ }}", {})


@pytest.fixture(scope="module")
def practice(services, factory):
    return billing_practice(services, factory)


@pytest.mark.parametrize(
    "body,words",
    [
        ("{% for i in range(10**9) %}{{ argument }}{% endfor %}", "range() of more than"),
        ("{{ 'x' * 10**9 }}", "repeated string"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ claim.number + 1 }}", "TypeError"),
    ],
)
def test_saving_a_template_past_a_limit_or_failing_is_a_422_and_nothing_is_saved(client, practice, body, words):
    headers = login(client, practice.biller_email)
    url = f"/api/v1/practices/{practice.slug}/appeal-templates/coding"
    response = client.put(url, headers=headers, json={"body": body})
    assert response.status_code == 422, response.get_json()
    assert words in response.get_json()["message"]
    assert client.get(url, headers=headers).get_json()["source"] == "default"


def test_a_template_saved_in_a_web_request_is_checked_within_the_time_limit(client, practice):
    headers = login(client, practice.biller_email)
    body = "{{ argument }}{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}" \
           "{% endfor %}{% endfor %}{% endfor %}"  # fmt: skip
    started = time.monotonic()
    response = client.put(f"/api/v1/practices/{practice.slug}/appeal-templates/timely_filing", headers=headers,
                          json={"body": body})  # fmt: skip
    assert response.status_code == 422
    assert f"longer than {letter_sandbox.RENDER_SECONDS:g} s" in response.get_json()["message"]
    assert time.monotonic() - started < letter_sandbox.RENDER_SECONDS + 3


def test_the_project_templates_still_render_with_the_sample_values():
    for family in appeals.FAMILIES:
        text = appeals._render(appeals.default_template(family), appeals.sample_context())
        assert "Ann Lee" in text
