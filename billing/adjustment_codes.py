"""Claim Adjustment Reason Codes (CARC, X12 external code list 139) and Remittance Advice Remark Codes (RARC, code list
411) in words, for the denial queue.

An 835 says *why* a line was paid differently than billed with a group code and a CARC in CAS (``CAS*CO*45*...``) and
adds remark codes in LQ*HE, MOA and MIA. Billers should not have to look those up: ``describe_adjustment("CO", "45")``
gives "CO-45: Charge exceeds fee schedule/maximum allowable or contracted/legislated fee arrangement.".

The lists are data, not code: ``billing/data/carc.csv`` and ``billing/data/rarc.csv`` (columns ``code, description,
status, start_date, stop_date``), transcribed verbatim from the public X12 lists -- see ``billing/data/README.md`` for
the exact source, its date and how to refresh them. Deactivated codes are kept (``status == "deactivated"``) because
old remittances, reversals and secondary claims still carry them. They are read lazily, once, via
``importlib.resources``. An unknown code never raises: it renders as "CARC 999 (not in the code list of ...)" so a
remittance with a code newer than our copy of the list still shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from types import MappingProxyType

# Names the published lists the CSVs were transcribed from (see billing/data/README.md); bump it on every refresh.
CODE_LISTS_VERSION = "X12 CARC/RARC lists of 2026-08-17"

# Claim adjustment group codes (CAS01). X12 keeps these in the 835 standard itself, not in the external code lists.
GROUPS = {
    "CO": "Contractual obligation",
    "PR": "Patient responsibility",
    "OA": "Other adjustments",
    "PI": "Payer initiated reductions",
    "CR": "Correction and reversal",
}

STATUSES = frozenset({"active", "deactivated"})
_HEADER = ["code", "description", "status", "start_date", "stop_date"]
_USAGE = " Usage: "


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One code of a list as published: the full description (usage notes included), whether it is still in force,
    and its start/stop dates where the source gave them."""

    code: str
    description: str
    status: str
    start_date: date | None = None
    stop_date: date | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def summary(self) -> str:
        """The meaning without the X12 "Usage:" note (which tells payers how to send the code, not billers what it
        means): "Charge exceeds fee schedule/maximum allowable or contracted/legislated fee arrangement."."""
        head, _, _ = self.description.partition(_USAGE)
        return head.strip() or self.description


def _normalize(code: object) -> str:
    return str(code if code is not None else "").strip().upper()


def _parse_date(value: str, *, where: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: date {value!r} is not YYYY-MM-DD") from None


@cache
def _load(list_name: str) -> Mapping[str, CodeInfo]:
    filename = f"{list_name}.csv"
    text = resources.files("billing.data").joinpath(filename).read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != _HEADER:
        raise ValueError(f"{filename}: header must be {','.join(_HEADER)}, got {header!r}")
    codes: dict[str, CodeInfo] = {}
    for line_no, row in enumerate(reader, start=2):
        where = f"{filename} line {line_no}"
        if len(row) != len(_HEADER):
            raise ValueError(f"{where}: expected {len(_HEADER)} columns, got {len(row)}")
        code, description, status, start, stop = row
        code = _normalize(code)
        if not code or not description.strip():
            raise ValueError(f"{where}: code and description are required")
        if code in codes:
            raise ValueError(f"{where}: duplicate code {code}")
        if status not in STATUSES:
            raise ValueError(f"{where}: status must be one of {sorted(STATUSES)}, got {status!r}")
        codes[code] = CodeInfo(
            code=code,
            description=description.strip(),
            status=status,
            start_date=_parse_date(start, where=where),
            stop_date=_parse_date(stop, where=where),
        )
    return MappingProxyType(codes)


def carc_codes() -> Mapping[str, CodeInfo]:
    """Every Claim Adjustment Reason Code, in list order (numeric codes first, then A0, B1 ... Y3)."""
    return _load("carc")


def rarc_codes() -> Mapping[str, CodeInfo]:
    """Every Remittance Advice Remark Code, in list order (M..., MA..., N...)."""
    return _load("rarc")


def carc(code: object) -> CodeInfo | None:
    """The Claim Adjustment Reason Code ``code`` (e.g. "45", " a1 "), or None when it is not in the list."""
    return carc_codes().get(_normalize(code))


def rarc(code: object) -> CodeInfo | None:
    """The Remittance Advice Remark Code ``code`` (e.g. "N130", "ma130"), or None when it is not in the list."""
    return rarc_codes().get(_normalize(code))


def _not_listed(kind: str, code: str) -> str:
    return f"{kind} {code or '(blank)'} (not in the code list of {CODE_LISTS_VERSION})"


def _in_words(info: CodeInfo) -> str:
    return info.summary if info.active else f"{info.summary} (deactivated code)"


def describe_group(group: object) -> str:
    """A claim adjustment group code in words: "CO" -> "Contractual obligation"."""
    group = _normalize(group)
    return GROUPS.get(group) or f"Group {group or '(blank)'} (not a claim adjustment group code)"


def describe_adjustment(group: object, reason: object, *, group_in_words: bool = False) -> str:
    """A CAS adjustment for a biller: "CO-45: Charge exceeds fee schedule/maximum allowable or contracted/legislated
    fee arrangement.". With ``group_in_words`` the group is spelled out too: "CO-45 (Contractual obligation): ...".
    Unknown reason codes render as "CO-999: CARC 999 (not in the code list of ...)"; nothing here raises."""
    group, reason = _normalize(group), _normalize(reason)
    info = carc(reason)
    if not group:  # just a reason code, no CAS group
        return f"CARC {reason}: {_in_words(info)}" if info else _not_listed("CARC", reason)
    label = f"{group}-{reason} ({describe_group(group)})" if group_in_words else f"{group}-{reason}"
    return f"{label}: {_in_words(info) if info else _not_listed('CARC', reason)}"


def describe_remark(code: object) -> str:
    """A remark code (LQ*HE, MOA, MIA) for a biller: "N130: Consult plan benefit documents/guidelines for information
    about restrictions for this service.". Unknown codes render as "RARC X1 (not in the code list of ...)"."""
    code = _normalize(code)
    info = rarc(code)
    return f"{code}: {_in_words(info)}" if info else _not_listed("RARC", code)
