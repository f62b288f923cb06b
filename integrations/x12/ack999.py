"""999 acknowledgements (005010X231A1): owns turning a 999 file into plain dataclasses with errors in words.

One `Ack999` per ST*999. Each acknowledges one functional group we sent (AK1) and each transaction set in it
(AK2 .. IK5), with the segment (IK3) and element (IK4) errors rendered as sentences. Parsing is all-or-nothing: any
structural defect raises X12Error naming the segment, and nothing is returned. Envelope control-number mismatches
(e.g. IEA02 != ISA13, seen in published samples) do not hide an intact acknowledgement: they are kept in `warnings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from integrations.x12.codes import (
    ACK_STATUS,
    AK905_GROUP_ERRORS,
    IK304_SEGMENT_ERRORS,
    IK403_ELEMENT_ERRORS,
    IK502_TRANSACTION_ERRORS,
    describe,
)
from integrations.x12.reader import Interchange, Segment, TransactionSet, X12Error, is_number, transaction_sets

__all__ = ["Ack999", "TransactionAck", "parse_999"]

_TRANSACTION_STATUSES = frozenset({"A", "E", "M", "R", "W", "X"})
_GROUP_STATUSES = frozenset({"A", "E", "M", "P", "R", "W", "X"})


@dataclass(frozen=True)
class TransactionAck:
    transaction_id: str  # AK201, e.g. "837"
    control_number: str  # AK202: the ST02 we sent
    implementation_ref: str  # AK203
    status: str  # IK501: A, E, M, R, W, X
    status_text: str
    errors: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.status in ("A", "E")


@dataclass(frozen=True)
class Ack999:
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    interchange_control_number: str
    control_number: str  # ST02 of this 999
    functional_id: str  # AK101, e.g. "HC"
    group_control_number: str  # AK102: the GS06 we sent
    group_version: str  # AK103
    group_status: str  # AK901: A, E, P, R (M, W, X)
    group_status_text: str
    transactions_included: int  # AK902
    transactions_received: int  # AK903
    transactions_accepted: int  # AK904
    group_errors: list[str]  # AK905..AK909 in words
    transactions: list[TransactionAck]
    warnings: list[str] = field(default_factory=list)


def _element_name(segment_id: str, seg: Segment, n: int) -> str:
    """'CLM05-3' style name from a position composite such as IK401 / CTX05."""
    position, component, repetition = seg.component(n, 1), seg.component(n, 2), seg.component(n, 3)
    name = f"{segment_id}{int(position):02d}" if is_number(position) else f"{segment_id} element {position or '?'}"
    if component:
        name += f"-{component}"
    if repetition:
        name += f" (repetition {repetition})"
    return name


def _context(seg: Segment) -> str:
    name, value = seg.component(1, 1), seg.component(1, 2)
    if name.upper() == "SITUATIONAL TRIGGER" and seg.el(2):
        where = f"segment {seg.el(2)} at position {seg.el(3) or '?'}"
        if seg.el(4):
            where += f" in loop {seg.el(4)}"
        if seg.el(5):
            where += f", element {_element_name(seg.el(2), seg, 5)}"
        return f"situational trigger: {where}"
    return f"context {name}={value}" if value else f"context {name}"


class _Ack999Reader:
    def __init__(self, interchange: Interchange, ts: TransactionSet, warnings: list[str]) -> None:
        self.interchange, self.ts, self.warnings = interchange, ts, warnings
        self.ak1: Segment | None = None
        self.ak9: Segment | None = None
        self.transactions: list[TransactionAck] = []
        self.ak2: Segment | None = None
        self.errors: list[str] = []
        self.ik3: Segment | None = None
        self.last_error: int | None = None  # index in self.errors that a following CTX qualifies

    def read(self) -> Ack999:
        body = self.ts.body
        if not body or body[0].id != "AK1":
            first = body[0] if body else self.ts.trailer
            raise X12Error.at(first, "999 has no AK1 (functional group response header) after ST")
        for seg in body:
            self._segment(seg)
        if self.ak2 is not None:
            raise X12Error.at(self.ts.trailer, f"AK2 at segment {self.ak2.position} has no IK5 before SE")
        if self.ak9 is None:
            raise X12Error.at(self.ts.trailer, "999 has no AK9 (functional group response trailer)")
        ak1, ak9 = self.ak1, self.ak9
        assert ak1 is not None
        status = ak9.el(1)
        if status not in _GROUP_STATUSES:
            raise X12Error.at(ak9, f"unknown functional group acknowledgment code {status!r}", 1)
        counts = []
        for n in (2, 3, 4):
            if not is_number(ak9.el(n)):
                raise X12Error.at(ak9, f"not a number: {ak9.el(n)!r}", n)
            counts.append(int(ak9.el(n)))
        isa = self.interchange
        return Ack999(
            sender_qualifier=isa.sender_qualifier,
            sender_id=isa.sender_id,
            receiver_qualifier=isa.receiver_qualifier,
            receiver_id=isa.receiver_id,
            interchange_control_number=isa.control_number,
            control_number=self.ts.control_number,
            functional_id=ak1.el(1),
            group_control_number=ak1.el(2),
            group_version=ak1.el(3),
            group_status=status,
            group_status_text=describe(ACK_STATUS, status),
            transactions_included=counts[0],
            transactions_received=counts[1],
            transactions_accepted=counts[2],
            group_errors=[describe(AK905_GROUP_ERRORS, ak9.el(n)) for n in range(5, 10) if ak9.el(n)],
            transactions=self.transactions,
            warnings=self.warnings,
        )

    def _segment(self, seg: Segment) -> None:
        if seg.id == "AK1":
            if self.ak1 is not None:
                raise X12Error.at(seg, f"second AK1 in one 999 (first at segment {self.ak1.position})")
            if not seg.el(1) or not seg.el(2):
                raise X12Error.at(seg, "AK1 needs the functional identifier code and group control number")
            self.ak1 = seg
        elif self.ak9 is not None:
            raise X12Error.at(seg, f"segment after AK9 (segment {self.ak9.position})")
        elif seg.id == "AK2":
            if self.ak2 is not None:
                raise X12Error.at(seg, f"AK2 at segment {self.ak2.position} has no IK5 before the next AK2")
            if not seg.el(2):
                raise X12Error.at(seg, "AK2 has no transaction set control number", 2)
            self.ak2, self.errors, self.ik3, self.last_error = seg, [], None, None
        elif seg.id == "IK3":
            self._need_ak2(seg)
            self.ik3 = seg
            where = f"segment {seg.el(1)} at position {seg.el(2)}"
            if seg.el(3):
                where += f" in loop {seg.el(3)}"
            problem = describe(IK304_SEGMENT_ERRORS, seg.el(4)) if seg.el(4) else "error"
            self.errors.append(f"{where}: {problem}")
            self.last_error = len(self.errors) - 1
        elif seg.id == "IK4":
            self._need_ak2(seg)
            if self.ik3 is None:
                raise X12Error.at(seg, "IK4 without a preceding IK3")
            ik3 = self.ik3
            message = f"segment {ik3.el(1)} at position {ik3.el(2)}, element {_element_name(ik3.el(1), seg, 1)}"
            if seg.el(2):
                message += f" (data element {seg.el(2)})"
            message += f": {describe(IK403_ELEMENT_ERRORS, seg.el(3))}"
            if seg.el(4):
                message += f", bad value {seg.el(4)!r}"
            self.errors.append(message)
            self.last_error = len(self.errors) - 1
        elif seg.id == "CTX":
            self._need_ak2(seg)
            if self.last_error is None:
                raise X12Error.at(seg, "CTX without a preceding IK3 or IK4")
            self.errors[self.last_error] += f" [{_context(seg)}]"
        elif seg.id == "IK5":
            ak2 = self._need_ak2(seg)
            status = seg.el(1)
            if status not in _TRANSACTION_STATUSES:
                raise X12Error.at(seg, f"unknown transaction set acknowledgment code {status!r}", 1)
            errors = self.errors + [
                f"transaction set: {describe(IK502_TRANSACTION_ERRORS, seg.el(n))}" for n in range(2, 7) if seg.el(n)
            ]
            self.transactions.append(
                TransactionAck(
                    transaction_id=ak2.el(1),
                    control_number=ak2.el(2),
                    implementation_ref=ak2.el(3),
                    status=status,
                    status_text=describe(ACK_STATUS, status),
                    errors=errors,
                )
            )
            self.ak2, self.errors, self.ik3, self.last_error = None, [], None, None
        elif seg.id == "AK9":
            if self.ak2 is not None:
                raise X12Error.at(seg, f"AK2 at segment {self.ak2.position} has no IK5 before AK9")
            self.ak9 = seg
        else:
            raise X12Error.at(seg, "segment not expected in a 999")

    def _need_ak2(self, seg: Segment) -> Segment:
        if self.ak2 is None:
            raise X12Error.at(seg, f"{seg.id} outside a transaction set response (no AK2)")
        return self.ak2


def parse_999(data: bytes | str) -> list[Ack999]:
    """Every ST*999 in `data`, in file order; X12Error (and nothing returned) if any part is malformed."""
    acks: list[Ack999] = []
    for interchange, ts in transaction_sets(data, "999"):
        warnings = [str(warning) for warning in interchange.warnings]
        acks.append(_Ack999Reader(interchange, ts, warnings).read())
    return acks
