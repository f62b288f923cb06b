"""The one X12 writer: owns delimiters, value checks, ISA/GS/ST/SE/GE/IEA envelopes and segment counting.

X12 has no escape mechanism, so a value that contains a delimiter, a control character or a non-ASCII character is
refused with a ValueError naming the segment and element (never the value: exception text reaches logs and failed-job
records, and values are patients' names) rather than silently altered (transliterating names such
as 'Müller' is the caller's decision). Values keep their case and are stripped of
surrounding blanks; trailing empty elements and trailing empty components are dropped. Amounts are Decimals
(floats are refused) written without exponent and without trailing zeros ("125", "125.5", "125.55").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from integrations.x12.reader import Delimiters

__all__ = ["Element", "SegmentWriter", "format_decimal"]

# A data element: a simple value, a composite (sequence of components), or None for an empty element.
Element = str | int | Decimal | Sequence[str | None] | None

_SEGMENT_ID = re.compile(r"[A-Z0-9]{2,3}")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def format_decimal(value: Decimal) -> str:
    """A Decimal as X12 'R' text: no exponent, no trailing zeros, no '-0'."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"amounts must be Decimal, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


class SegmentWriter:
    """Accumulates segments with fixed delimiters; counts segments for SE01, STs for GE01 and GSs for IEA01."""

    def __init__(
        self,
        *,
        element: str = "*",
        component: str = ":",
        repetition: str = "^",
        terminator: str = "~",
        newline: bool = True,
    ) -> None:
        chosen = (element, component, repetition, terminator)
        # Control characters (e.g. \x1c-\x1f) are legitimate delimiters; spaces and line breaks are not.
        if any(len(ch) != 1 or ch.isalnum() or ch in " \t\r\n" for ch in chosen) or len(set(chosen)) != 4:
            raise ValueError(f"delimiters must be four distinct characters, not alphanumeric or blank: {chosen!r}")
        self.delimiters = Delimiters(element=element, component=component, repetition=repetition, segment=terminator)
        self._forbidden = frozenset(chosen)
        self._newline = newline
        self._segments: list[str] = []
        self._isa_control: str | None = None
        self._gs_control: str | None = None
        self._st_control: str | None = None
        self._groups_in_interchange = 0
        self._transactions_in_group = 0
        self._segments_in_transaction = 0

    # -- values ---------------------------------------------------------------------------------------------------

    def _value(self, value: str | int | Decimal | None, where: str) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            raise TypeError(f"{where}: floats are not accepted for X12 values, use Decimal")
        if isinstance(value, Decimal):
            text = format_decimal(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif isinstance(value, str):
            text = value.strip()
        else:
            raise TypeError(f"{where}: unsupported value type {type(value).__name__}")
        bad = next((ch for ch in text if ch in self._forbidden), None)
        if bad is not None:
            raise ValueError(f"{where}: the value contains the delimiter {bad!r}")
        if _CONTROL_CHARS.search(text):
            raise ValueError(f"{where}: the value contains a control character")
        if not text.isascii():
            # The 5010 basic and extended character sets are ASCII; pyx12 and payers refuse anything else.
            raise ValueError(f"{where}: the value contains non-ASCII characters")
        return text

    def _element(self, value: Element, where: str) -> str:
        if not isinstance(value, list | tuple):
            return self._value(value, where)
        components = [self._value(part, f"{where}-{k}") for k, part in enumerate(value, start=1)]
        while components and not components[-1]:
            components.pop()
        return self.delimiters.component.join(components)

    # -- segments -------------------------------------------------------------------------------------------------

    def segment(self, segment_id: str, *elements: Element) -> None:
        """Append one segment; elements are given from element 1 on (None = empty)."""
        if not _SEGMENT_ID.fullmatch(segment_id):
            raise ValueError(f"not a segment identifier: {segment_id!r}")
        values = [self._element(value, f"{segment_id}{n:02d}") for n, value in enumerate(elements, start=1)]
        while values and not values[-1]:
            values.pop()
        self._append(self.delimiters.element.join([segment_id, *values]))

    def _append(self, text: str) -> None:
        self._segments.append(text)
        if self._st_control is not None:
            self._segments_in_transaction += 1

    @property
    def segment_count(self) -> int:
        """Segments in the open transaction set so far, ST included."""
        return self._segments_in_transaction

    def text(self) -> str:
        end = self.delimiters.segment + ("\n" if self._newline else "")
        return "".join(seg + end for seg in self._segments)

    # -- envelopes ------------------------------------------------------------------------------------------------

    def _fixed(self, value: str, width: int, where: str) -> str:
        text = self._value(value, where)
        if len(text) > width:
            raise ValueError(f"{where}: the value is longer than {width} characters")
        return text.ljust(width)

    def isa(
        self,
        *,
        sender_qualifier: str,
        sender_id: str,
        receiver_qualifier: str,
        receiver_id: str,
        control_number: int,
        created_at: datetime,
        usage_indicator: str = "P",
        acknowledgment_requested: str = "0",
        version: str = "00501",
        authorization_qualifier: str = "00",
        authorization: str = "",
        security_qualifier: str = "00",
        security: str = "",
    ) -> None:
        """Open an interchange with a fixed-width (106 character) ISA."""
        if self._isa_control is not None:
            raise RuntimeError("isa(): the previous interchange has no IEA yet")
        if not 0 < control_number <= 999_999_999:
            raise ValueError(f"ISA13: interchange control number {control_number} is not 1..999999999")
        if usage_indicator not in ("P", "T"):
            raise ValueError(f"ISA15: usage indicator {usage_indicator!r} is not P or T")
        control = f"{control_number:09d}"
        fields = [
            self._fixed(authorization_qualifier, 2, "ISA01"),
            self._fixed(authorization, 10, "ISA02"),
            self._fixed(security_qualifier, 2, "ISA03"),
            self._fixed(security, 10, "ISA04"),
            self._fixed(sender_qualifier, 2, "ISA05"),
            self._fixed(sender_id, 15, "ISA06"),
            self._fixed(receiver_qualifier, 2, "ISA07"),
            self._fixed(receiver_id, 15, "ISA08"),
            created_at.strftime("%y%m%d"),
            created_at.strftime("%H%M"),
            self.delimiters.repetition or "^",
            self._fixed(version, 5, "ISA12"),
            control,
            self._fixed(acknowledgment_requested, 1, "ISA14"),
            usage_indicator,
            self.delimiters.component,
        ]
        self._append(self.delimiters.element.join(["ISA", *fields]))
        self._isa_control = control
        self._groups_in_interchange = 0

    def gs(
        self,
        *,
        functional_id: str,
        sender_id: str,
        receiver_id: str,
        control_number: int,
        created_at: datetime,
        version: str,
    ) -> None:
        if self._isa_control is None:
            raise RuntimeError("gs(): no open interchange (call isa() first)")
        if self._gs_control is not None:
            raise RuntimeError("gs(): the previous functional group has no GE yet")
        if not 0 < control_number <= 999_999_999:
            raise ValueError(f"GS06: group control number {control_number} is not 1..999999999")
        self.segment(
            "GS",
            functional_id,
            sender_id,
            receiver_id,
            created_at.strftime("%Y%m%d"),
            created_at.strftime("%H%M"),
            str(control_number),
            "X",
            version,
        )
        self._gs_control = str(control_number)
        self._transactions_in_group = 0
        self._groups_in_interchange += 1

    def st(self, id_code: str, control_number: int | str, implementation_ref: str | None = None) -> None:
        """Open a transaction set; an int control number is zero-padded to at least 4 digits."""
        if self._gs_control is None:
            raise RuntimeError("st(): no open functional group (call gs() first)")
        if self._st_control is not None:
            raise RuntimeError("st(): the previous transaction set has no SE yet")
        control = f"{control_number:04d}" if isinstance(control_number, int) else control_number.strip()
        if not 4 <= len(control) <= 9:
            raise ValueError(f"ST02: transaction set control number {control!r} must have 4 to 9 characters")
        self._st_control = control
        self._segments_in_transaction = 0
        self.segment("ST", id_code, control, implementation_ref)
        self._transactions_in_group += 1

    def se(self) -> None:
        if self._st_control is None:
            raise RuntimeError("se(): no open transaction set")
        control = self._st_control
        self.segment("SE", self._segments_in_transaction + 1, control)
        self._st_control = None

    def ge(self) -> None:
        if self._gs_control is None or self._st_control is not None:
            raise RuntimeError("ge(): no open functional group, or a transaction set is still open")
        self.segment("GE", self._transactions_in_group, self._gs_control)
        self._gs_control = None

    def iea(self) -> None:
        if self._isa_control is None or self._gs_control is not None:
            raise RuntimeError("iea(): no open interchange, or a functional group is still open")
        self.segment("IEA", self._groups_in_interchange, self._isa_control)
        self._isa_control = None
