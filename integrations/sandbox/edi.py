"""The sandbox's own X12 plumbing: reading any interchange a client sends and writing the ones it answers with.

Owns:
- ``read_interchanges``: split raw bytes into interchanges / functional groups / transaction sets, reading every
  delimiter from the ISA (fixed-width or collapsed), tolerating a byte-order mark, indentation and line breaks;
- ``Segment``: one segment as a list of elements, with component access using the sender's component separator;
- ``X12Out`` and ``envelope``: segment builders for outbound files (fixed delimiters ``* ^ : ~``, trailing empty
  elements dropped, delimiter characters removed from values, SE/GE/IEA counts and control numbers computed);
- ``money``: the one way amounts are printed (Decimal cents, no trailing zeros, never float).

Deliberately independent of medbill's own X12 code: the sandbox stands for the outside world and must be able to
disagree with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = [
    "CENT",
    "Delimiters",
    "Group",
    "Interchange",
    "Segment",
    "Transaction",
    "X12Error",
    "X12Out",
    "envelope",
    "money",
    "parse_amount",
    "read_interchanges",
]

CENT = Decimal("0.01")
OUT_ELEMENT = "*"
OUT_REPETITION = "^"
OUT_COMPONENT = ":"
OUT_TERMINATOR = "~"
_OUT_DELIMS = (OUT_ELEMENT, OUT_REPETITION, OUT_COMPONENT, OUT_TERMINATOR)


class X12Error(ValueError):
    """The bytes cannot be read as X12 (no ISA, broken envelope)."""


@dataclass(frozen=True)
class Delimiters:
    element: str
    component: str
    repetition: str
    terminator: str


@dataclass
class Segment:
    """One segment; ``elements[0]`` is the segment id. ``position`` counts from ST = 1 (0 outside a transaction)."""

    elements: list[str]
    component: str = ":"
    position: int = 0

    @property
    def id(self) -> str:
        return self.elements[0].upper()

    def get(self, index: int, default: str = "") -> str:
        """Element ``index`` (1-based, as in ``CLM02``), stripped; ``default`` when absent."""
        if index < len(self.elements):
            value = self.elements[index].strip()
            return value if value else default
        return default

    def comp(self, index: int, sub: int, default: str = "") -> str:
        """Component ``sub`` (1-based) of element ``index``."""
        parts = self.get(index).split(self.component)
        if sub - 1 < len(parts):
            value = parts[sub - 1].strip()
            return value if value else default
        return default

    def comps(self, index: int) -> list[str]:
        return [p.strip() for p in self.get(index).split(self.component)]


@dataclass
class Transaction:
    st: Segment
    segments: list[Segment]  # ST .. SE inclusive
    se: Segment | None

    @property
    def control_number(self) -> str:
        return self.st.get(2)

    @property
    def set_id(self) -> str:
        return self.st.get(1)

    @property
    def version(self) -> str:
        return self.st.get(3)


@dataclass
class Group:
    gs: Segment
    transactions: list[Transaction] = field(default_factory=list)
    ge: Segment | None = None

    @property
    def control_number(self) -> str:
        return self.gs.get(6)


@dataclass
class Interchange:
    isa: Segment
    delimiters: Delimiters
    groups: list[Group] = field(default_factory=list)
    iea: Segment | None = None

    def isa_value(self, index: int) -> str:
        # Sender/receiver ids are space-padded (sometimes on the left, see MANIFEST): keep the trimmed value.
        return self.isa.get(index)


def _find_delimiters(text: str, start: int) -> tuple[Delimiters, int]:
    """Delimiters of the ISA at ``start`` and the index just past its terminator.

    The fixed-width rule (terminator at offset 105) fails on collapsed ISAs seen in the wild, so walk the 16 element
    separators instead: ISA16 is the single character after the 16th one and the terminator follows it.
    """
    if len(text) < start + 4:
        raise X12Error("file too short to hold an ISA segment")
    element = text[start + 3]
    if element.isalnum() or element == " ":
        raise X12Error(f"invalid element separator {element!r} after ISA")
    pos = start
    for _ in range(16):
        pos = text.find(element, pos + 1)
        if pos < 0:
            raise X12Error("ISA segment is incomplete (fewer than 16 elements)")
    if pos + 2 >= len(text):
        raise X12Error("ISA segment is incomplete (no component separator or segment terminator)")
    component = text[pos + 1]
    terminator = text[pos + 2]
    isa_elements = text[start : pos + 2].split(element)
    repetition = isa_elements[11] if len(isa_elements) > 11 and len(isa_elements[11]) == 1 else "^"
    return Delimiters(element, component, repetition, terminator), pos + 3


def _split_segments(text: str, delims: Delimiters) -> list[list[str]]:
    out = []
    for raw in text.split(delims.terminator):
        # Line breaks and indentation between segments are layout, not data (unless the terminator is a newline).
        raw = raw.strip("\r\n\t ")
        if raw:
            out.append(raw.split(delims.element))
    return out


def read_interchanges(data: bytes) -> list[Interchange]:
    """Every interchange in ``data``. Raises ``X12Error`` when not even one ISA can be read."""
    text = data.decode("latin-1")
    if text.startswith("\u00ef\u00bb\u00bf"):  # UTF-8 BOM decoded as latin-1
        text = text[3:]
    start = text.find("ISA")
    if start < 0:
        raise X12Error("no ISA segment: not an X12 interchange")
    if text[:start].strip():
        raise X12Error("data before the first ISA segment")
    interchanges: list[Interchange] = []
    while True:
        delims, _ = _find_delimiters(text, start)
        # Interchanges may be concatenated, each with its own delimiters: read one, then look for the next ISA.
        following = re.compile(re.escape(delims.terminator) + r"[\r\n\t ]*ISA" + re.escape(delims.element))
        match = following.search(text, start + 3)
        if match is None:
            interchanges.append(_read_one(text[start:], delims))
            return interchanges
        interchanges.append(_read_one(text[start : match.start() + len(delims.terminator)], delims))
        start = match.end() - 4


def _read_one(chunk: str, delims: Delimiters) -> Interchange:
    rows = _split_segments(chunk, delims)
    isa = Segment(rows[0], delims.component)
    ic = Interchange(isa=isa, delimiters=delims)
    group: Group | None = None
    txn: Transaction | None = None
    for row in rows[1:]:
        seg = Segment(row, delims.component)
        sid = seg.id
        if sid == "GS":
            group = Group(gs=seg)
            ic.groups.append(group)
        elif sid == "GE":
            if group is not None:
                group.ge = seg
            group = None
        elif sid == "IEA":
            ic.iea = seg
        elif sid == "ST":
            if group is None:
                raise X12Error("ST segment outside a functional group (no GS)")
            seg.position = 1
            txn = Transaction(st=seg, segments=[seg], se=None)
            group.transactions.append(txn)
        elif txn is not None:
            seg.position = len(txn.segments) + 1
            txn.segments.append(seg)
            if sid == "SE":
                txn.se = seg
                txn = None
    if not ic.groups:
        raise X12Error("interchange holds no functional group (GS)")
    return ic


def parse_amount(value: str) -> Decimal:
    """An X12 amount as Decimal (never float); raises ``ValueError`` on garbage."""
    try:
        amount = Decimal(value.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return amount


def money(amount: Decimal) -> str:
    """Cents, without trailing zeros: 100, 100.5, 100.55, -12.3, 0 (the X12 R type allows all of these)."""
    q = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if q == 0:
        return "0"
    text = f"{q:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _clean(value: object) -> str:
    text = "" if value is None else str(value)
    for d in _OUT_DELIMS:
        text = text.replace(d, " ")
    # Only the basic character set travels safely; anything else becomes a space.
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text).strip()


class X12Out:
    """Collects the segments of one transaction set (between ST and SE) or one envelope."""

    def __init__(self) -> None:
        self.segments: list[str] = []

    def seg(self, sid: str, *elements: object) -> None:
        values: list[str] = []
        for el in elements:
            if isinstance(el, tuple | list):
                parts = [_clean(p) for p in el]
                while parts and not parts[-1]:
                    parts.pop()
                values.append(OUT_COMPONENT.join(parts))
            elif isinstance(el, Decimal):
                values.append(money(el))
            else:
                values.append(_clean(el))
        # Trailing empty elements are a syntax error for strict validators (pyx12 flags a trailing '*').
        while values and not values[-1]:
            values.pop()
        self.segments.append(OUT_ELEMENT.join([sid, *values]))

    def __len__(self) -> int:
        return len(self.segments)


def _isa_id(value: str) -> str:
    return _clean(value)[:15].ljust(15)


def envelope(
    *,
    sender_qualifier: str,
    sender_id: str,
    receiver_qualifier: str,
    receiver_id: str,
    gs_sender: str,
    gs_receiver: str,
    functional_id: str,
    version: str,
    control_number: int,
    when: datetime,
    usage: str,
    transactions: list[tuple[str, X12Out]],
) -> str:
    """One ISA/GS/.../GE/IEA interchange around ``transactions`` ([(set id, body)], body = segments after ST).

    ST02 is numbered 0001.. in the group; ST03 is written only for sets whose guide uses it (not the 835).
    """
    icn = f"{control_number % 1_000_000_000:09d}"
    lines = [
        OUT_ELEMENT.join(
            [
                "ISA",
                "00",
                " " * 10,
                "00",
                " " * 10,
                (sender_qualifier or "ZZ")[:2].ljust(2),
                _isa_id(sender_id),
                (receiver_qualifier or "ZZ")[:2].ljust(2),
                _isa_id(receiver_id),
                when.strftime("%y%m%d"),
                when.strftime("%H%M"),
                OUT_REPETITION,
                "00501",
                icn,
                "0",
                usage if usage in ("P", "T") else "T",
                OUT_COMPONENT,
            ]
        )
    ]
    gs = X12Out()
    gs.seg(
        "GS",
        functional_id,
        gs_sender[:15] or "SANDBOX",
        gs_receiver[:15] or "SUBMITTER",
        when.strftime("%Y%m%d"),
        when.strftime("%H%M"),
        str(control_number % 1_000_000_000),
        "X",
        version,
    )
    lines.extend(gs.segments)
    for n, (set_id, body) in enumerate(transactions, start=1):
        st02 = f"{n:04d}"
        st = X12Out()
        if set_id == "835":
            st.seg("ST", set_id, st02)
        else:
            st.seg("ST", set_id, st02, version)
        lines.extend(st.segments)
        lines.extend(body.segments)
        se = X12Out()
        se.seg("SE", str(len(body) + 2), st02)
        lines.extend(se.segments)
    tail = X12Out()
    tail.seg("GE", str(len(transactions)), str(control_number % 1_000_000_000))
    tail.seg("IEA", "1", icn)
    lines.extend(tail.segments)
    return "".join(line + OUT_TERMINATOR + "\n" for line in lines)
