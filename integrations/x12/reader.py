"""The one X12 tokenizer: owns reading delimiters, splitting data into segments and checking ISA/GS/ST envelopes.

Every X12 reader in medbill (999, 277CA, 835) goes through `read_segments` and `parse_envelopes`; nothing else
splits X12 text. Errors are `X12Error`s that name the segment (its 1-based ordinal in the file) and element.

Delimiters are read from each ISA, never assumed:
- fixed-width ISA (106 characters): element separator = 4th character, repetition separator = ISA11, component
  separator = ISA16, segment terminator = the character right after ISA16;
- an ISA whose padding was collapsed: the ISA is split on the element separator (16 elements), ISA16 is the single
  character after the 16th separator and the terminator is the character after it;
- every ISA re-reads the delimiters, so concatenated interchanges may each use their own;
- ISA11 is only a repetition separator when it is not alphanumeric (00401 files and some 00501 files carry 'U').

Files with no ISA/GS (ST..SE only) use this heuristic, since nothing declares the delimiters:
- element separator = the character right after "ST";
- segment terminator = the first character after ST01/ST02/ST03 that is neither alphanumeric nor the element
  separator (normally '~' or a line break; CR LF counts as a line break);
- component separator = the first non-alphanumeric character after the qualifier in the first SVC, SV1, SV2, SV3,
  STC or HI composite (e.g. 'HC:99213'), else ':';
- no repetition separator.

Blank characters (spaces, tabs, CR, LF, a byte-order mark, NUL, Ctrl-Z) around segments are dropped, unless the
file uses one of them as a delimiter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

__all__ = [
    "Delimiters",
    "FunctionalGroup",
    "Interchange",
    "Segment",
    "TransactionSet",
    "X12Error",
    "parse_amount",
    "parse_date",
    "parse_envelopes",
    "read_segments",
]


class X12Error(Exception):
    """A defect in X12 data, located by segment ordinal (1-based, counted over the whole file) and element."""

    def __init__(
        self,
        message: str,
        segment_position: int | None = None,
        segment_id: str | None = None,
        element: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.segment_position = segment_position
        self.segment_id = segment_id
        self.element = element

    @classmethod
    def at(cls, segment: Segment | None, message: str, element: int | None = None) -> X12Error:
        if segment is None:
            return cls(message, element=element)
        return cls(message, segment.position, segment.id, element)

    def __str__(self) -> str:
        where: list[str] = []
        if self.segment_position is not None:
            where.append(f"segment {self.segment_position}" + (f" ({self.segment_id})" if self.segment_id else ""))
        elif self.segment_id:
            where.append(f"segment {self.segment_id}")
        if self.element is not None:
            where.append(f"element {self.element}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class Delimiters:
    element: str = "*"
    component: str = ":"
    repetition: str | None = "^"
    segment: str = "~"


@dataclass(frozen=True)
class Segment:
    """One segment. `elements[0]` is the segment id, so `elements[n]` is element n (1-based, as in X12)."""

    id: str
    elements: list[str]
    position: int
    delimiters: Delimiters = field(default_factory=Delimiters, repr=False, compare=False)

    def el(self, n: int) -> str:
        """Element n (1-based); '' when absent."""
        return self.elements[n] if 0 < n < len(self.elements) else ""

    def components(self, n: int) -> list[str]:
        value = self.el(n)
        return value.split(self.delimiters.component) if value else []

    def component(self, n: int, k: int) -> str:
        """Component k (1-based) of element n; '' when absent."""
        parts = self.components(n)
        return parts[k - 1] if 0 < k <= len(parts) else ""

    def repetitions(self, n: int) -> list[str]:
        value = self.el(n)
        if not value:
            return []
        return value.split(self.delimiters.repetition) if self.delimiters.repetition else [value]

    def amount(self, n: int) -> Decimal | None:
        """Element n as a Decimal amount, None when empty."""
        value = self.el(n)
        return parse_amount(value, self, n) if value else None

    def date(self, n: int) -> date | None:
        """Element n as a CCYYMMDD date, None when empty."""
        value = self.el(n)
        return parse_date(value, self, n) if value else None

    @property
    def element_count(self) -> int:
        """Number of elements after the segment id (trailing empty elements are usually omitted)."""
        return len(self.elements) - 1

    def __str__(self) -> str:
        return self.delimiters.element.join(self.elements)


@dataclass(frozen=True)
class TransactionSet:
    id_code: str
    control_number: str
    implementation_ref: str
    segments: list[Segment]  # ST through SE inclusive

    @property
    def header(self) -> Segment:
        return self.segments[0]

    @property
    def trailer(self) -> Segment:
        return self.segments[-1]

    @property
    def body(self) -> list[Segment]:
        return self.segments[1:-1]


@dataclass(frozen=True)
class FunctionalGroup:
    functional_id: str
    sender_id: str
    receiver_id: str
    date: str
    time: str
    control_number: str
    version: str
    transactions: list[TransactionSet]
    header: Segment | None = None  # None for the synthetic group of an ST-only file
    synthetic: bool = False


@dataclass(frozen=True)
class Interchange:
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str  # ISA09, YYMMDD as sent
    time: str  # ISA10, HHMM as sent
    control_number: str
    usage_indicator: str  # P production, T test
    version: str  # ISA12
    groups: list[FunctionalGroup]
    delimiters: Delimiters
    header: Segment | None = None  # None for the synthetic interchange of an ST-only file
    synthetic: bool = False
    # Trailer mismatches tolerated by parse_envelopes(check_counts=False / check_control_numbers=False).
    warnings: list[X12Error] = field(default_factory=list)

    @property
    def transactions(self) -> list[TransactionSet]:
        return [ts for group in self.groups for ts in group.transactions]


# ---------------------------------------------------------------------------------------------------------------
# values

_AMOUNT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE = re.compile(r"\d{8}")


def parse_amount(text: str, seg: Segment | None = None, n: int | None = None) -> Decimal:
    """An X12 'R' value as a Decimal; X12Error naming the segment and element otherwise."""
    value = text.strip()
    if not _AMOUNT.fullmatch(value):
        raise X12Error.at(seg, f"not a decimal amount: {text!r}", n)
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise X12Error.at(seg, f"not a decimal amount: {text!r}", n) from exc


def parse_date(text: str, seg: Segment | None = None, n: int | None = None) -> date:
    """A CCYYMMDD date; X12Error naming the segment and element otherwise (including impossible dates)."""
    value = text.strip()
    if not _DATE.fullmatch(value):
        raise X12Error.at(seg, f"not a date (CCYYMMDD): {text!r}", n)
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as exc:
        raise X12Error.at(seg, f"not a valid date: {text!r}", n) from exc


def is_number(value: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' or '①', which int() refuses."""
    return value.isascii() and value.isdigit()


def _count(seg: Segment, n: int) -> int:
    value = seg.el(n).strip()
    if not is_number(value):
        raise X12Error.at(seg, f"not a number: {seg.el(n)!r}", n)
    return int(value)


def _same_control_number(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    # Leading zeros are padding, not identity: '000000286' and '286' name the same interchange.
    return a == b or (is_number(a) and is_number(b) and int(a) == int(b))


# ---------------------------------------------------------------------------------------------------------------
# tokenizer

_BLANKS = " \t\r\n\x0b\x0c\x00\x1a\ufeff"
# Offsets of the 16 element separators in a fixed-width ISA; ISA16 is at 104, the terminator at 105.
_ISA_SEPARATOR_OFFSETS = (3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103)
_SEGMENT_ID = re.compile(r"[A-Z0-9]{2,3}")
_COMPOSITE_SEGMENTS = frozenset({"SVC", "SV1", "SV2", "SV3", "STC", "HI"})
_COMPONENT_AFTER_QUALIFIER = re.compile(r"[A-Za-z0-9]{1,3}([^A-Za-z0-9 \t\r\n])")
# Python counts the information separators \x1c-\x1f as whitespace; X12 uses them as delimiters, so test explicitly.
_LINE_BLANKS = " \t\r\n"


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy payer files in Latin-1/CP1252 still tokenize; latin-1 maps every byte, so nothing is lost.
        return data.decode("latin-1")


def _blank_set(delimiters: Delimiters | None) -> str:
    if delimiters is None:
        return _BLANKS
    used = {delimiters.element, delimiters.component, delimiters.segment, delimiters.repetition or ""}
    return "".join(ch for ch in _BLANKS if ch not in used)


def _isa_delimiters(text: str, start: int, position: int) -> tuple[Delimiters, int]:
    """The ISA's delimiters and the index of the ISA's own terminator."""

    def fail(message: str) -> X12Error:
        return X12Error(message, position, "ISA")

    element = text[start + 3]
    if element.isalnum() or element in _LINE_BLANKS:
        raise fail(f"cannot read the element separator from the ISA: {element!r}")
    if all(start + offset < len(text) and text[start + offset] == element for offset in _ISA_SEPARATOR_OFFSETS):
        if start + 105 >= len(text):
            raise fail("ISA is truncated: no segment terminator after ISA16")
        repetition: str | None = text[start + 82]
        component, end = text[start + 104], start + 105
    else:
        separators: list[int] = []
        index = start + 3
        while len(separators) < 16:
            index = text.find(element, index)
            if index < 0:
                raise fail("ISA is truncated: fewer than 16 elements")
            separators.append(index)
            index += 1
        last = separators[15]
        if last + 2 >= len(text):
            raise fail("ISA is truncated: no segment terminator after ISA16")
        component, end = text[last + 1], last + 2
        isa11 = text[separators[10] + 1 : separators[11]].strip()
        repetition = isa11 if len(isa11) == 1 else None
    terminator = text[end]
    if component.isalnum() or terminator.isalnum() or len({element, component, terminator}) != 3:
        raise fail(
            f"cannot read delimiters from the ISA (element {element!r}, component {component!r}, "
            f"terminator {terminator!r})"
        )
    if terminator == "\r" and text[end + 1 : end + 2] == "\n" and "\n" not in (element, component):
        # A CR LF terminator: split on LF and let the CR be stripped as a blank.
        terminator, end = "\n", end + 1
    if repetition is not None and (
        repetition.isalnum() or repetition in _LINE_BLANKS or repetition in (element, component, terminator)
    ):
        repetition = None  # 00401's 'U' (standards identifier) and look-alikes: no repetition separator
    return Delimiters(element=element, component=component, repetition=repetition, segment=terminator), end


def _st_only_delimiters(text: str, start: int) -> Delimiters:
    element = text[start + 2]
    if element.isalnum() or element in _LINE_BLANKS:
        raise X12Error("cannot read the element separator after ST", 1, "ST")
    index = start + 3
    while index < len(text) and (text[index].isalnum() or text[index] == element):
        index += 1
    if index >= len(text):
        raise X12Error("no segment terminator after the ST segment", 1, "ST")
    terminator = text[index]
    if terminator == "\r" and text[index + 1 : index + 2] == "\n":
        terminator = "\n"
    component = ":"
    for piece in text[start:].split(terminator):
        parts = piece.strip(_BLANKS).split(element, 2)
        if len(parts) > 1 and parts[0] in _COMPOSITE_SEGMENTS:
            match = _COMPONENT_AFTER_QUALIFIER.match(parts[1])
            if match and match.group(1) not in (element, terminator):
                component = match.group(1)
                break
    return Delimiters(element=element, component=component, repetition=None, segment=terminator)


def _starts_isa(text: str, pos: int) -> bool:
    return text.startswith("ISA", pos) and pos + 3 < len(text) and not text[pos + 3].isalnum()


def read_segments(data: bytes | str) -> list[Segment]:
    """Split X12 data into segments, reading the delimiters from each ISA (or guessing them for ST-only data)."""
    text = _decode(data)
    segments: list[Segment] = []
    delimiters: Delimiters | None = None
    blanks = _blank_set(None)
    pos, size = 0, len(text)
    while True:
        while pos < size and text[pos] in blanks:
            pos += 1
        if pos >= size:
            break
        position = len(segments) + 1
        end = -1
        if _starts_isa(text, pos):
            # The ISA's own terminator is located by position: a blank could be a terminator and ISA pads with blanks.
            delimiters, end = _isa_delimiters(text, pos, position)
            blanks = _blank_set(delimiters)
        elif delimiters is None:
            if text.startswith("ST", pos) and pos + 2 < size:
                delimiters = _st_only_delimiters(text, pos)
                blanks = _blank_set(delimiters)
            else:
                raise X12Error(f"data does not start with an ISA or ST segment: {text[pos : pos + 20]!r}", position)
        if end < 0:
            end = text.find(delimiters.segment, pos)
        if end < 0:  # the last segment may lack its terminator
            end = size
        raw = text[pos:end].rstrip(blanks)
        pos = end + 1
        if not raw:
            continue
        elements = raw.split(delimiters.element)
        segment_id = elements[0]
        if not _SEGMENT_ID.fullmatch(segment_id):
            raise X12Error(f"not a segment identifier: {segment_id[:20]!r}", position)
        segments.append(Segment(segment_id, elements, position, delimiters))
    return segments


# ---------------------------------------------------------------------------------------------------------------
# envelopes

_ENVELOPE_IDS = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})


def _need(seg: Segment, count: int, what: str) -> None:
    if seg.element_count < count:
        raise X12Error.at(seg, f"{what} has {seg.element_count} elements, expected at least {count}")


class _EnvelopeReader:
    """State machine over the segments; raises on the first envelope defect."""

    def __init__(self, synthetic: bool, check_counts: bool, check_control_numbers: bool) -> None:
        self.synthetic = synthetic
        self.check_counts = check_counts
        self.check_control_numbers = check_control_numbers
        self.warnings: list[X12Error] = []
        self.interchanges: list[Interchange] = []
        self.isa: Segment | None = None
        self.gs: Segment | None = None
        self.st: Segment | None = None
        self.groups: list[FunctionalGroup] = []
        self.transactions: list[TransactionSet] = []
        self.body: list[Segment] = []

    def _mismatch(self, error: X12Error, *, is_count: bool) -> None:
        if self.check_counts if is_count else self.check_control_numbers:
            raise error
        self.warnings.append(error)

    def feed(self, seg: Segment) -> None:
        if self.st is not None:
            if seg.id == "SE":
                self._close_transaction(seg)
            elif seg.id in _ENVELOPE_IDS:
                raise X12Error.at(
                    seg,
                    f"{seg.id} inside transaction set {self.st.el(2)!r} (ST at segment {self.st.position}), "
                    "which has no SE",
                )
            else:
                self.body.append(seg)
            return
        if self.synthetic and seg.id in ("ISA", "IEA", "GS", "GE"):
            raise X12Error.at(seg, f"{seg.id} in a file that began without ISA/GS")
        handler = {
            "ISA": self._open_interchange,
            "GS": self._open_group,
            "ST": self._open_transaction,
            "GE": self._close_group,
            "IEA": self._close_interchange,
        }.get(seg.id)
        if handler is not None:
            handler(seg)
        elif seg.id == "SE":
            raise X12Error.at(seg, "SE without a matching ST")
        else:
            raise X12Error.at(seg, "segment outside any transaction set (between envelopes)")

    def _open_interchange(self, seg: Segment) -> None:
        if self.isa is not None:
            raise X12Error.at(seg, f"ISA before the IEA of the interchange begun at segment {self.isa.position}")
        _need(seg, 16, "ISA")
        self.isa, self.groups = seg, []

    def _open_group(self, seg: Segment) -> None:
        if self.isa is None:
            raise X12Error.at(seg, "GS outside any interchange (no ISA)")
        if self.gs is not None:
            raise X12Error.at(seg, f"GS before the GE of the group begun at segment {self.gs.position}")
        _need(seg, 8, "GS")
        self.gs, self.transactions = seg, []

    def _open_transaction(self, seg: Segment) -> None:
        if self.gs is None and not self.synthetic:
            raise X12Error.at(seg, "ST outside any functional group (no GS)")
        _need(seg, 2, "ST")
        self.st, self.body = seg, []

    def _close_transaction(self, se: Segment) -> None:
        st = self.st
        assert st is not None
        segments = [st, *self.body, se]
        declared = _count(se, 1)
        if declared != len(segments):
            self._mismatch(
                X12Error.at(
                    se, f"SE01 says {declared} segments but the transaction set has {len(segments)} (ST through SE)", 1
                ),
                is_count=True,
            )
        if not _same_control_number(se.el(2), st.el(2)):
            self._mismatch(
                X12Error.at(se, f"SE02 {se.el(2)!r} does not match ST02 {st.el(2)!r} (segment {st.position})", 2),
                is_count=False,
            )
        self.transactions.append(TransactionSet(st.el(1), st.el(2), st.el(3), segments))
        self.st, self.body = None, []

    def _close_group(self, ge: Segment) -> None:
        gs = self.gs
        if gs is None:
            raise X12Error.at(ge, "GE without a matching GS")
        declared = _count(ge, 1)
        if declared != len(self.transactions):
            self._mismatch(
                X12Error.at(ge, f"GE01 says {declared} transaction sets but the group has {len(self.transactions)}", 1),
                is_count=True,
            )
        if not _same_control_number(ge.el(2), gs.el(6)):
            self._mismatch(
                X12Error.at(ge, f"GE02 {ge.el(2)!r} does not match GS06 {gs.el(6)!r} (segment {gs.position})", 2),
                is_count=False,
            )
        self.groups.append(
            FunctionalGroup(
                functional_id=gs.el(1),
                sender_id=gs.el(2).strip(),
                receiver_id=gs.el(3).strip(),
                date=gs.el(4),
                time=gs.el(5),
                control_number=gs.el(6).strip(),
                version=gs.el(8).strip(),
                transactions=self.transactions,
                header=gs,
            )
        )
        self.gs, self.transactions = None, []

    def _close_interchange(self, iea: Segment) -> None:
        isa = self.isa
        if isa is None:
            raise X12Error.at(iea, "IEA without a matching ISA")
        if self.gs is not None:
            raise X12Error.at(iea, f"IEA before the GE of the group begun at segment {self.gs.position}")
        declared = _count(iea, 1)
        if declared != len(self.groups):
            self._mismatch(
                X12Error.at(
                    iea, f"IEA01 says {declared} functional groups but the interchange has {len(self.groups)}", 1
                ),
                is_count=True,
            )
        if not _same_control_number(iea.el(2), isa.el(13)):
            self._mismatch(
                X12Error.at(
                    iea, f"IEA02 {iea.el(2)!r} does not match ISA13 {isa.el(13)!r} (segment {isa.position})", 2
                ),
                is_count=False,
            )
        self.interchanges.append(
            Interchange(
                sender_qualifier=isa.el(5).strip(),
                sender_id=isa.el(6).strip(),
                receiver_qualifier=isa.el(7).strip(),
                receiver_id=isa.el(8).strip(),
                date=isa.el(9).strip(),
                time=isa.el(10).strip(),
                control_number=isa.el(13).strip(),
                usage_indicator=isa.el(15).strip(),
                version=isa.el(12).strip(),
                groups=self.groups,
                delimiters=isa.delimiters,
                header=isa,
                warnings=self.warnings,
            )
        )
        self.isa, self.groups, self.warnings = None, [], []

    def finish(self, last: Segment) -> list[Interchange]:
        if self.st is not None:
            raise X12Error.at(
                last,
                f"data ends here but transaction set {self.st.el(2)!r} (ST at segment {self.st.position}) has no SE "
                "(truncated?)",
            )
        if self.synthetic:
            st_refs = [ts.implementation_ref for ts in self.transactions if ts.implementation_ref]
            group = FunctionalGroup(
                functional_id="",
                sender_id="",
                receiver_id="",
                date="",
                time="",
                control_number="",
                version=st_refs[0] if st_refs else "",
                transactions=self.transactions,
                synthetic=True,
            )
            return [
                Interchange(
                    sender_qualifier="",
                    sender_id="",
                    receiver_qualifier="",
                    receiver_id="",
                    date="",
                    time="",
                    control_number="",
                    usage_indicator="",
                    version="",
                    groups=[group],
                    delimiters=last.delimiters,
                    synthetic=True,
                    warnings=self.warnings,
                )
            ]
        if self.gs is not None:
            raise X12Error.at(
                last, f"data ends here but the group begun at segment {self.gs.position} has no GE (truncated?)"
            )
        if self.isa is not None:
            raise X12Error.at(
                last, f"data ends here but the interchange begun at segment {self.isa.position} has no IEA (truncated?)"
            )
        return self.interchanges


def parse_envelopes(
    segments: Sequence[Segment], *, check_counts: bool = True, check_control_numbers: bool = True
) -> list[Interchange]:
    """Group segments into Interchange > FunctionalGroup > TransactionSet, checking every count and control number.

    SE01/GE01/IEA01 counts and SE02/GE02/IEA02 control numbers raise X12Error on mismatch; with `check_counts=False`
    or `check_control_numbers=False` that kind of mismatch is recorded in `Interchange.warnings` instead (real payer
    files carry such trailer defects around intact content). Structural defects always raise: a missing SE/GE/IEA
    (truncated data), a segment outside any transaction set, an envelope segment out of order.
    ST-only data (no ISA/GS) yields one synthetic interchange holding one synthetic group (`synthetic=True`).
    """
    if not segments:
        raise X12Error("no X12 segments in the data")
    reader = _EnvelopeReader(segments[0].id == "ST", check_counts, check_control_numbers)
    for seg in segments:
        reader.feed(seg)
    return reader.finish(segments[-1])


def transaction_sets(
    data: bytes | str, id_code: str, *, check_counts: bool = True
) -> list[tuple[Interchange, TransactionSet]]:
    """Every transaction set of kind `id_code` in `data`, in file order, with its interchange. A set of another
    kind, or none at all, is an X12Error: a parser is handed only files of its own kind. Control-number mismatches
    are kept as interchange warnings (masked samples and some payers alter them around intact content)."""
    found = []
    for interchange in parse_envelopes(read_segments(data), check_counts=check_counts, check_control_numbers=False):
        for ts in interchange.transactions:
            if ts.id_code.strip() != id_code:
                article = "an" if id_code.startswith("8") else "a"  # "an 835", "a 999"
                raise X12Error.at(ts.header, f"not {article} {id_code} transaction set: ST01 is {ts.id_code!r}", 1)
            found.append((interchange, ts))
    if not found:
        raise X12Error(f"no {id_code} transaction set in the data")
    return found
