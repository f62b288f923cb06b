"""Hostile X12: the real samples mutated (bytes, truncations, repeats, delimiter swaps) and random bytes, fed to the
one tokenizer, the 835/999/277CA parsers and billing.edi_intake.intake. The only failure allowed is a clear one: an
X12Error that names its segment (or says the data holds no segments / no set of the kind), and from intake an
Invalid carrying that message; never another exception type. A refused file changes no row of the practice or of
the shared registry."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select

import billing.models  # noqa: F401 - registers every tenant table on TenantBase
from billing.edi_intake import ALL_KINDS, intake
from integrations.storage import practice_key
from integrations.x12.ack277 import parse_277ca
from integrations.x12.ack999 import parse_999
from integrations.x12.reader import X12Error, parse_envelopes, read_segments
from integrations.x12.remit835 import parse_835
from medbill.errors import Invalid
from tenants.orm import SharedBase, TenantBase
from tests.fuzz.mutations import X12_SAMPLES, mutated

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PARSERS = (parse_835, parse_999, parse_277ca)


def assert_clear(exc: X12Error) -> None:
    text = str(exc)
    assert text and exc.message, "an X12Error without a message"
    # Located (segment ordinal, id) unless it speaks of the data as a whole.
    assert exc.segment_position is not None or exc.segment_id or text.startswith("no "), text


def check_parsers(data: bytes) -> None:
    try:
        segments = read_segments(data)
    except X12Error as exc:
        assert_clear(exc)
        segments = None
    if segments is not None:
        for strict in (True, False):
            try:
                parse_envelopes(segments, check_counts=strict, check_control_numbers=strict)
            except X12Error as exc:
                assert_clear(exc)
    for parse in PARSERS:
        try:
            parse(data)
        except X12Error as exc:
            assert_clear(exc)


def test_samples_are_present():
    assert {name.split("/")[0] for name in X12_SAMPLES} >= {"835", "999", "277ca"}


@FUZZ
@given(data=mutated(X12_SAMPLES))
def test_mutated_samples_fail_only_with_located_x12_errors(data):
    check_parsers(data)


@FUZZ
@given(data=mutated(X12_SAMPLES))
def test_mutated_samples_as_text_fail_only_with_located_x12_errors(data):
    # Callers also hand the parsers str (a decoded upload): the same rules hold.
    check_parsers(data.decode("latin-1"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"ISA",
        b"ISA*",
        b"ST*835*0001~",
        b"ST*835",
        b"ISA*00*" + b" " * 10 + b"*00*",
        b"\xef\xbb\xbf\x00\x1a",
        b"ST*999*1~AK1~SE*2*1~",
        b"ST*277*1~SE*2*1~",
    ],
)
def test_degenerate_files(data):
    check_parsers(data)


def test_superscript_digits_in_counts_and_control_numbers_are_x12_errors():
    """Found by atheris: SE02 '1\xb234' (latin-1 '1²34') passed str.isdigit() and crashed int() (ValueError)."""
    sample = X12_SAMPLES["999/imsweb-x12-parser__x12_999_accepted.txt"].decode("latin-1")
    se = next(seg for seg in sample.replace("\n", "").split("~") if seg.startswith("SE*"))
    broken = sample.replace(se, se[: se.rindex("*") + 1] + "1\xb234", 1).encode("latin-1")
    check_parsers(broken)  # the control numbers differ: a warning or an X12Error, never a ValueError
    counted = sample.replace(se, "SE*\xb2*" + se.split("*")[2], 1).encode("latin-1")
    with pytest.raises(X12Error) as refused:
        parse_999(counted)
    assert "not a number" in str(refused.value) and refused.value.segment_id == "SE"


def test_superscript_digits_in_claim_ids_are_not_ids():
    from billing.acknowledgements import _control
    from billing.posting import _claim_id

    assert _control("1\u00b2") is None and _control("12") == 12
    assert _claim_id("1\u00b2") is None and _claim_id("12") == 12


# --- intake: refused files leave nothing behind ------------------------------------------------------------------


@pytest.fixture(scope="module")
def remitted(services, factory, tmp_path_factory):
    """A practice whose claims the sandbox acknowledged and remitted: its 835 routes to it by the payee NPI."""
    from tests.api.test_remittances_api import sandbox_era

    bp, era = sandbox_era(services, factory, tmp_path_factory, claims=2)
    return bp, era.encode()


def row_counts(services, slug: str) -> dict[str, int]:
    counts = {}
    with services.db.tenant_session(slug) as s:
        for table in TenantBase.metadata.sorted_tables:
            counts[table.name] = s.scalar(select(func.count()).select_from(table))
    with services.db.shared_session() as s:
        for table in SharedBase.metadata.sorted_tables:
            counts[f"shared.{table.name}"] = s.scalar(select(func.count()).select_from(table))
    return counts


def test_intake_refuses_mutated_835s_and_posts_nothing_of_them(services, remitted):
    bp, era = remitted
    key = practice_key(bp.slug, "remittances", "fuzz.835")
    refused = 0

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated({"era": era}))
    def run(data):
        nonlocal refused
        before = row_counts(services, bp.slug)
        try:
            intake(services.db, data, storage_key=key, slugs=[bp.slug], kinds=ALL_KINDS)
        except Invalid as exc:
            refused += 1
            assert exc.errors.get("file"), exc.errors
            assert row_counts(services, bp.slug) == before, "a refused file left rows behind"

    run()
    assert refused > 0


def test_a_truncated_835_is_refused_whole(services, remitted):
    """Cut before the last claim's end: the claims before the cut must not post."""
    bp, era = remitted
    cut = era[: era.rindex(b"CLP*") + 20]
    before = row_counts(services, bp.slug)
    with pytest.raises(Invalid) as refused:
        intake(services.db, cut, storage_key="test/cut.835", slugs=[bp.slug], kinds=ALL_KINDS)
    assert "segment" in refused.value.errors["file"][0]
    assert row_counts(services, bp.slug) == before
