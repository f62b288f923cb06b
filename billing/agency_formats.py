"""Collection agency file formats: each agency takes placements (and sends back payment reports) in a layout of its
own, either CSV with a column mapping or fixed-width records with a layout definition. This module owns the catalogue
of fields we can put in such a file, the validation of a configured format (errors name the field at fault), and the
pure functions that write records in a format and read them back. Nothing here touches a database or storage.

A format is a plain dict (stored as JSON beside the agency's terms):

    {"type": "csv", "rows": "account", "date_format": "%m/%d/%Y", "money": "decimal", "delimiter": ",",
     "header": true,
     "columns": [{"field": "account_number", "heading": "Acct No"}, {"constant": "P", "heading": "Type"}]}

    {"type": "fixed", "rows": "service_date", "date_format": "%Y%m%d", "money": "cents", "line_ending": "crlf",
     "record_length": 200,
     "fields": [{"field": "account_number", "start": 1, "length": 20, "align": "left", "pad": " "}, ...]}

`rows` is "account" (one record per placed account; balances by date of service in one `balances_by_dos` field) or
"service_date" (one record per date of service with a balance, the account's fields repeated on each)."""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.money import money
from integrations import csvsafe
from medbill.errors import Invalid

# field name -> kind. Kinds: text, date, money, int, dos_list (date=amount;date=amount).
ACCOUNT_FIELDS: dict[str, str] = {
    "account_number": "text",
    "placement_id": "int",
    "placed_date": "date",
    "total_placed": "money",
    "patient_balance": "money",
    "oldest_service_date": "date",
    "last_payment_date": "date",
    "last_payment_amount": "money",
    "practice_name": "text",
    # placed (a placement file), updated (a new balance) or recalled (the account is returned): updates files.
    "status": "text",
    "patient_first_name": "text",
    "patient_middle_name": "text",
    "patient_last_name": "text",
    "patient_date_of_birth": "date",
    "patient_sex": "text",
    "patient_address_line1": "text",
    "patient_address_line2": "text",
    "patient_city": "text",
    "patient_state": "text",
    "patient_postal_code": "text",
    "patient_phone": "text",
    "patient_email": "text",
    "guarantor_relationship": "text",
    "guarantor_first_name": "text",
    "guarantor_last_name": "text",
    "guarantor_address_line1": "text",
    "guarantor_address_line2": "text",
    "guarantor_city": "text",
    "guarantor_state": "text",
    "guarantor_postal_code": "text",
    "guarantor_phone": "text",
    "insurance_payer_name": "text",
    "insurance_payer_id": "text",
    "insurance_member_id": "text",
    "insurance_group_number": "text",
}
ACCOUNT_ONLY_FIELDS: dict[str, str] = {"balances_by_dos": "dos_list"}
SERVICE_FIELDS: dict[str, str] = {"service_date": "date", "service_balance": "money"}
# What an agency sends back: payments it collected on our accounts.
REPORT_FIELDS: dict[str, str] = {
    "account_number": "text",
    "payment_date": "date",
    "payment_amount": "money",
    "payment_reference": "text",
}
REPORT_REQUIRED = ("account_number", "payment_date", "payment_amount", "payment_reference")
# Values that must never be cut short to fit a fixed-width field: a shortened amount or account is a wrong one.
EXACT_KINDS = frozenset({"date", "money", "int", "dos_list"})
EXACT_FIELDS = frozenset({"account_number", "payment_reference"})
ROW_MODES = ("account", "service_date")
PURPOSES = ("export", "report")
MONEY_STYLES = ("decimal", "cents")
LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}
_SAMPLE_DATE = date(2031, 12, 28)
MAX_COLUMNS = 200
MAX_RECORD_LENGTH = 10_000
MAX_MONEY = Decimal("9999999999.99")  # MoneyColumn is Numeric(12, 2)

DEFAULT_FORMAT: dict[str, Any] = {
    "type": "csv",
    "rows": "account",
    "date_format": "%Y-%m-%d",
    "money": "decimal",
    "delimiter": ",",
    "header": True,
    "columns": [{"field": name, "heading": name} for name in (*ACCOUNT_FIELDS, "balances_by_dos")],
}

# What an agency's payment file looks like unless the practice or the agency configured another layout.
DEFAULT_REPORT_FORMAT: dict[str, Any] = {
    "type": "csv",
    "purpose": "report",
    "date_format": "%Y-%m-%d",
    "money": "decimal",
    "columns": [{"field": name, "heading": name} for name in REPORT_REQUIRED],
}


@dataclass(frozen=True)
class Column:
    """One output column (CSV) or field (fixed-width). `field` is None for a constant."""

    field: str | None
    kind: str
    heading: str = ""
    constant: str = ""
    start: int = 0  # fixed-width: 1-based position
    length: int = 0
    align: str = "left"
    pad: str = " "


@dataclass(frozen=True)
class AgencyFormat:
    type: str  # csv | fixed
    purpose: str
    rows: str
    date_format: str
    money: str
    columns: tuple[Column, ...]
    delimiter: str = ","
    header: bool = True
    line_ending: str = "\r\n"
    record_length: int = 0
    encoding: str = "utf-8"

    @property
    def fields(self) -> list[str]:
        return [c.field for c in self.columns if c.field]

    @property
    def extension(self) -> str:
        return "csv" if self.type == "csv" else "txt"

    @property
    def content_type(self) -> str:
        return "text/csv" if self.type == "csv" else "text/plain"


# --- validation -----------------------------------------------------------------------------------------------------


def _catalogue(purpose: str, rows: str) -> dict[str, str]:
    if purpose == "report":
        return REPORT_FIELDS
    extra = ACCOUNT_ONLY_FIELDS if rows == "account" else SERVICE_FIELDS
    return ACCOUNT_FIELDS | extra


def _check_date_format(fmt: Any) -> str | None:
    """Why `fmt` is not a usable date format, or None. It must write and read back a date unchanged."""
    if not isinstance(fmt, str) or not fmt or len(fmt) > 40:
        return "a strftime pattern such as %Y-%m-%d or %m/%d/%Y"
    if not fmt.isprintable():
        return "printable characters only (no line breaks, tabs or control characters)"
    try:
        written = _SAMPLE_DATE.strftime(fmt)
        read = datetime.strptime(written, fmt).date()
    except (ValueError, TypeError):
        return f"{fmt!r} cannot be read back; use day, month and year, e.g. %m/%d/%Y"
    if read != _SAMPLE_DATE:
        return f"{fmt!r} does not hold a whole date (day, month and four- or two-digit year)"
    if any(ch in written for ch in ";="):
        return "must not contain ';' or '=' (they separate balances by date of service)"
    return None


def validate_format(config: Any) -> AgencyFormat:
    """Check a configured format and return it normalised; raises Invalid naming every field at fault."""
    errors: dict[str, list[str]] = {}

    def err(where: str, message: str) -> None:
        errors.setdefault(where, []).append(message)

    if not isinstance(config, dict):
        raise Invalid("agency file format must be an object", errors={"format": ["an object with 'type'"]})
    ftype = config.get("type")
    if ftype not in ("csv", "fixed"):
        err("type", "csv or fixed")
    purpose = config.get("purpose", "export")
    if purpose not in PURPOSES:
        err("purpose", f"one of {', '.join(PURPOSES)}")
        purpose = "export"
    rows = config.get("rows", "account")
    if rows not in ROW_MODES:
        err("rows", f"one of {', '.join(ROW_MODES)}")
        rows = "account"
    if purpose == "report":
        rows = "account"
    date_format = config.get("date_format", "%Y-%m-%d" if ftype == "csv" else "%Y%m%d")
    problem = _check_date_format(date_format)
    if problem:
        err("date_format", problem)
        date_format = "%Y-%m-%d"
    money_style = config.get("money", "decimal")
    if money_style not in MONEY_STYLES:
        err("money", "decimal (123.45) or cents (12345, implied decimal point)")
    catalogue = _catalogue(purpose, rows)
    list_key = "columns" if ftype == "csv" else "fields"
    raw_columns = config.get(list_key)
    columns: list[Column] = []
    if not isinstance(raw_columns, list) or not raw_columns:
        err(list_key, "a non-empty list")
        raw_columns = []
    elif len(raw_columns) > MAX_COLUMNS:
        err(list_key, f"at most {MAX_COLUMNS}")
        raw_columns = []
    seen_fields: set[str] = set()
    seen_headings: set[str] = set()
    for i, raw in enumerate(raw_columns):
        where = f"{list_key}[{i}]"
        if not isinstance(raw, dict):
            err(where, "an object with 'field' (or 'constant')")
            continue
        name = raw.get("field")
        constant = raw.get("constant")
        if name is None and constant is None:
            err(f"{where}.field", "required (or give a 'constant')")
            continue
        if name is not None and constant is not None:
            err(where, "give either 'field' or 'constant', not both")
            continue
        kind = "text"
        if name is not None:
            if name not in catalogue:
                hint = ""
                if name in SERVICE_FIELDS:
                    hint = " (only with rows: service_date)"
                elif name in ACCOUNT_ONLY_FIELDS:
                    hint = " (only with rows: account)"
                err(f"{where}.field", f"unknown field {name!r}{hint}; one of {', '.join(catalogue)}")
                continue
            if name in seen_fields:
                err(f"{where}.field", f"{name!r} appears twice")
                continue
            seen_fields.add(name)
            kind = catalogue[name]
        elif not isinstance(constant, str) or len(constant) > 200:
            err(f"{where}.constant", "a string of at most 200 characters")
            continue
        elif not constant.isprintable():  # a line break would split a fixed-width record (or a CSV row) in two
            err(f"{where}.constant", "printable characters only (no line breaks, tabs or control characters)")
            continue
        heading = raw.get("heading", name or "")
        col = {"field": name, "kind": kind, "constant": constant or ""}
        if ftype == "csv":
            if not isinstance(heading, str) or not heading.strip() or len(heading) > 100:
                err(f"{where}.heading", "a non-empty heading of at most 100 characters")
                continue
            if heading in seen_headings:
                err(f"{where}.heading", f"heading {heading!r} appears twice")
                continue
            seen_headings.add(heading)
            columns.append(Column(heading=heading, **col))
        else:
            start, length = raw.get("start"), raw.get("length")
            align, pad = raw.get("align", "right" if kind in ("money", "int") else "left"), raw.get("pad", " ")
            bad = False
            if not isinstance(start, int) or isinstance(start, bool) or start < 1:
                err(f"{where}.start", "a position from 1")
                bad = True
            if not isinstance(length, int) or isinstance(length, bool) or length < 1:
                err(f"{where}.length", "a length of at least 1")
                bad = True
            if align not in ("left", "right"):
                err(f"{where}.align", "left or right")
                bad = True
            if not isinstance(pad, str) or len(pad) != 1 or not pad.isprintable():
                err(f"{where}.pad", "one printable character, e.g. ' ' or '0'")
                bad = True
            if bad:
                continue
            if start + length - 1 > MAX_RECORD_LENGTH:
                err(f"{where}.length", f"records are at most {MAX_RECORD_LENGTH} characters")
                continue
            label = name or f"constant {constant!r}"
            if constant is not None and len(constant) > length:
                err(f"{where}.constant", f"{constant!r} is longer than its length {length}")
                continue
            if kind == "date" and len(_SAMPLE_DATE.strftime(date_format)) > length:
                err(
                    f"{where}.length",
                    f"{label}: dates in {date_format!r} need {len(_SAMPLE_DATE.strftime(date_format))}",
                )
                continue
            columns.append(Column(start=start, length=length, align=align, pad=pad, **col))
    if ftype == "fixed" and columns:
        ordered = sorted(columns, key=lambda c: c.start)
        for before, after in zip(ordered, ordered[1:], strict=False):
            if after.start < before.start + before.length:
                a = before.field or f"constant {before.constant!r}"
                b = after.field or f"constant {after.constant!r}"
                err(
                    list_key,
                    f"{b} (from {after.start}) overlaps {a} ({before.start}-{before.start + before.length - 1})",
                )
        columns = ordered
    required = REPORT_REQUIRED if purpose == "report" else ("account_number",)
    if raw_columns and not errors.get(list_key):
        for name in required:
            if name not in seen_fields:
                err(list_key, f"must include the field {name!r}")
    if rows == "service_date" and purpose == "export" and raw_columns:
        for name in SERVICE_FIELDS:
            if name not in seen_fields:
                err(list_key, f"rows: service_date needs the field {name!r}")
    extra: dict[str, Any] = {}
    if ftype == "csv":
        delimiter = config.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
            err("delimiter", "one character, e.g. ',' '|' or a tab")
        else:
            extra["delimiter"] = delimiter
        header = config.get("header", True)
        if not isinstance(header, bool):
            err("header", "true or false")
        else:
            extra["header"] = header
        encoding = config.get("encoding", "utf-8")
    else:
        ending = config.get("line_ending", "crlf")
        if ending not in LINE_ENDINGS:
            err("line_ending", "crlf or lf")
        else:
            extra["line_ending"] = LINE_ENDINGS[ending]
        end = max((c.start + c.length - 1 for c in columns), default=0)
        record_length = config.get("record_length", end)
        if not isinstance(record_length, int) or isinstance(record_length, bool) or record_length < end:
            err("record_length", f"a whole number of at least {end} (the end of the last field)")
        elif record_length > MAX_RECORD_LENGTH:
            err("record_length", f"at most {MAX_RECORD_LENGTH}")
        else:
            extra["record_length"] = record_length
        encoding = config.get("encoding", "ascii")
    if encoding not in ("utf-8", "ascii", "latin-1"):
        err("encoding", "utf-8, ascii or latin-1")
    else:
        extra["encoding"] = encoding
    if errors:
        raise Invalid("agency file format is not valid", errors=errors)
    return AgencyFormat(
        type=ftype,
        purpose=purpose,
        rows=rows,
        date_format=date_format,
        money=money_style,
        columns=tuple(columns),
        **extra,
    )


# --- writing --------------------------------------------------------------------------------------------------------


class FormatError(Invalid):
    """A value that does not fit the agency's format (an amount too long for its field...)."""


def _money_text(value: Decimal, style: str) -> str:
    amount = money(value)
    if style == "cents":
        return str(int(amount * 100))
    return f"{amount:.2f}"


def _value_text(fmt: AgencyFormat, kind: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if kind == "date":
        return value.strftime(fmt.date_format)
    if kind == "money":
        return _money_text(value, fmt.money)
    if kind == "int":
        return str(int(value))
    if kind == "dos_list":
        return ";".join(f"{d.strftime(fmt.date_format)}={_money_text(a, fmt.money)}" for d, a in value)
    return " ".join(str(value).split())  # no line breaks or tabs inside a value


# Every character some reader takes as the end of a line: none may reach a fixed-width record (one record, one line).
_LINE_BREAKS = str.maketrans(dict.fromkeys("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _one_line(text: str) -> str:
    """`text` with any line break replaced by a space (one for one, so that widths stay exact). Values are already
    written on one line and validation refuses breaks in constants and date formats; this keeps a format stored
    before those checks from splitting a record."""
    return text.translate(_LINE_BREAKS)


def _csv_cell(fmt: AgencyFormat, col: Column, record: dict) -> str:
    """A CSV cell: text (a text field or a constant) is left to csvsafe to neutralise; dates, amounts and counts are
    marked as numbers so that a negative balance stays -12.50."""
    if col.field is None:
        return _encode(col.constant, fmt.encoding)
    text = _encode(_value_text(fmt, col.kind, record.get(col.field)), fmt.encoding)
    return text if col.kind == "text" else csvsafe.Number(text)


def _encode(text: str, encoding: str) -> str:
    """Text as the agency's system can take it: accents dropped for ASCII files, so that widths stay exact."""
    if encoding == "utf-8":
        return text
    folded = unicodedata.normalize("NFKD", text)
    return folded.encode(encoding, "ignore").decode(encoding)


def records_of(fmt: AgencyFormat, accounts: list[dict]) -> list[dict]:
    """The records of a file: one per account, or one per date of service with a balance."""
    if fmt.rows == "account" or fmt.purpose == "report":
        out = []
        for account in accounts:
            record = dict(account)
            record["balances_by_dos"] = [(s["service_date"], s["service_balance"]) for s in account.get("services", [])]
            out.append(record)
        return out
    return [account | service for account in accounts for service in account.get("services", [])]


def _fit(fmt: AgencyFormat, col: Column, text: str, record: dict) -> str:
    if len(text) > col.length:
        if col.kind in EXACT_KINDS or col.field in EXACT_FIELDS:
            raise FormatError(
                f"{col.field} of account {record.get('account_number')!r} does not fit its fixed-width field",
                errors={col.field: [f"{text!r} is {len(text)} characters; the layout allows {col.length}"]},
            )
        text = text[: col.length]
    if text == "":
        return " " * col.length
    if col.align == "right":
        if col.pad == "0" and text.startswith("-"):
            return "-" + text[1:].rjust(col.length - 1, "0")
        return text.rjust(col.length, col.pad)
    return text.ljust(col.length, col.pad)


def render(fmt: AgencyFormat, accounts: list[dict]) -> bytes:
    """The file for `accounts` (dicts of field -> value; `services`: list of {service_date, service_balance})."""
    records = records_of(fmt, accounts)
    if fmt.type == "csv":
        buf = io.StringIO()
        writer = csvsafe.writer(buf, delimiter=fmt.delimiter, lineterminator="\r\n")
        if fmt.header:
            writer.writerow([c.heading for c in fmt.columns])
        for record in records:
            writer.writerow([_csv_cell(fmt, c, record) for c in fmt.columns])
        return buf.getvalue().encode(fmt.encoding)
    lines = []
    for record in records:
        line = [" "] * fmt.record_length
        for c in fmt.columns:
            text = c.constant if c.field is None else _value_text(fmt, c.kind, record.get(c.field))
            fitted = _fit(fmt, c, _one_line(_encode(text, fmt.encoding)), record)
            line[c.start - 1 : c.start - 1 + c.length] = fitted
        lines.append("".join(line))
    return "".join(line + fmt.line_ending for line in lines).encode(fmt.encoding)


# --- reading --------------------------------------------------------------------------------------------------------


def _parse_value(fmt: AgencyFormat, kind: str, text: str, where: str, errors: dict[str, list[str]]) -> Any:
    text = text.strip()
    if text == "":
        return None
    try:
        if kind == "date":
            return datetime.strptime(text, fmt.date_format).date()
        if kind == "money":
            if fmt.money == "cents":
                if not text.lstrip("-").isascii() or not text.lstrip("-").isdigit():
                    raise ValueError
                amount = money(Decimal(int(text)) / 100)
            else:
                amount = money(Decimal(text))
            if abs(amount) > MAX_MONEY:  # would not fit the ledger's Numeric(12, 2)
                raise ValueError
            return amount
        if kind == "int":
            return int(text)
        if kind == "dos_list":
            out = []
            for part in text.split(";"):
                day, _, amount = part.partition("=")
                out.append(
                    (datetime.strptime(day, fmt.date_format).date(), _parse_value(fmt, "money", amount, where, errors))
                )
            return out
    except (ValueError, InvalidOperation):
        errors.setdefault(where, []).append(f"{text!r} is not a {kind} in this format")
        return None
    return text


def _fixed_text(col: Column, raw: str) -> str:
    if raw.strip() == "":
        return ""
    if col.pad != " ":
        if col.align == "right":
            negative = raw.startswith("-") and col.pad == "0"
            body = raw[1:] if negative else raw
            stripped = body.lstrip(col.pad)
            if stripped == "" and col.kind in ("money", "int"):
                stripped = "0"
            return ("-" if negative else "") + stripped
        return raw.rstrip(col.pad)
    return raw.strip()


def parse(fmt: AgencyFormat, data: bytes) -> list[dict]:
    """Records of a file in `fmt`, as dicts of field -> typed value (dates, Decimals). Raises Invalid naming the
    line and field of every value that cannot be read."""
    try:
        text = data.decode(fmt.encoding)
    except UnicodeDecodeError as exc:
        raise Invalid("file is not in the agency's encoding", errors={"file": [f"not {fmt.encoding}: {exc}"]}) from exc
    text = text.removeprefix("\ufeff")
    errors: dict[str, list[str]] = {}
    records: list[dict] = []
    if fmt.type == "csv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
        try:
            rows = [r for r in reader if any(cell.strip() for cell in r)]
        except csv.Error as exc:  # e.g. a field past the csv module's size limit (an unclosed quote runs on)
            raise Invalid("file is not readable CSV", errors={f"line {reader.line_num}": [str(exc)]}) from exc
        positions = {c.heading: i for i, c in enumerate(fmt.columns)}
        if fmt.header:
            if not rows:
                raise Invalid("file is empty", errors={"file": ["no header line"]})
            heading_row = [h.strip() for h in rows[0]]
            missing = [c.heading for c in fmt.columns if c.field and c.heading not in heading_row]
            if missing:
                raise Invalid("file does not have the agency's columns", errors={"header": [f"missing {missing}"]})
            positions = {h: i for i, h in enumerate(heading_row)}
            rows = rows[1:]
            first_line = 2
        else:
            first_line = 1
        for n, row in enumerate(rows, start=first_line):
            record: dict[str, Any] = {}
            for c in fmt.columns:
                if c.field is None:
                    continue
                i = positions[c.heading]
                cell = row[i] if i < len(row) else ""
                record[c.field] = _parse_value(fmt, c.kind, cell, f"line {n}: {c.field}", errors)
            records.append(record)
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            # Some systems trim trailing blanks: a short line reads as if padded.
            line = line.ljust(fmt.record_length)
            if len(line) > fmt.record_length:
                errors.setdefault(f"line {n}", []).append(f"{len(line)} characters; records are {fmt.record_length}")
                continue
            record = {}
            for c in fmt.columns:
                raw = line[c.start - 1 : c.start - 1 + c.length]
                if c.field is None:
                    continue
                record[c.field] = _parse_value(fmt, c.kind, _fixed_text(c, raw), f"line {n}: {c.field}", errors)
            records.append(record)
    if errors:
        raise Invalid("file does not match the agency's format", errors=errors)
    return records


def accounts_from_records(fmt: AgencyFormat, records: list[dict]) -> list[dict]:
    """Records read back into accounts (the shape `render` takes): service rows grouped by account number."""
    if fmt.rows == "account" or fmt.purpose == "report":
        out = []
        for record in records:
            account = dict(record)
            if "balances_by_dos" in account:
                pairs = account.pop("balances_by_dos") or []
                account["services"] = [{"service_date": d, "service_balance": a} for d, a in pairs]
            out.append(account)
        return out
    grouped: dict[str, dict] = {}
    for record in records:
        account = {k: v for k, v in record.items() if k not in SERVICE_FIELDS}
        entry = grouped.setdefault(record["account_number"], account | {"services": []})
        entry["services"].append({k: record[k] for k in SERVICE_FIELDS})
    return list(grouped.values())


def describe_fields() -> dict[str, dict[str, str]]:
    """The catalogue for people configuring a format (API, portal)."""
    return {
        "account": dict(ACCOUNT_FIELDS),
        "account_rows_only": dict(ACCOUNT_ONLY_FIELDS),
        "service_date_rows_only": dict(SERVICE_FIELDS),
        "report": dict(REPORT_FIELDS),
    }
