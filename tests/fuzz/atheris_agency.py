"""atheris (libFuzzer) target for agency payment files (billing.agency_formats.parse, the default CSV report layout
and a fixed-width one); run by hand, not by pytest:

    python -m tests.fuzz.atheris_agency -atheris_runs=200000

Any exception other than an Invalid whose errors name the file, the header or a line is a crash."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from billing import agency_formats
    from medbill.errors import Invalid

CSV_FORMAT = agency_formats.validate_format(agency_formats.DEFAULT_REPORT_FORMAT)


def _fixed_format():
    from tests.fuzz.test_agency_fuzz import FIXED

    return agency_formats.validate_format(FIXED)


FORMATS = [CSV_FORMAT]


def test_one_input(data: bytes) -> None:
    fmt = FORMATS[data[0] % len(FORMATS)] if data else CSV_FORMAT
    try:
        agency_formats.parse(fmt, data[1:])
    except Invalid as exc:
        for where, messages in exc.errors.items():
            if not (where in ("file", "header") or where.startswith("line ")) or not messages:
                raise AssertionError(f"unclear error: {exc.errors}") from exc


def main() -> None:
    FORMATS.append(_fixed_format())
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
