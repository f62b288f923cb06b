"""Front-door validation of a received 837 file: what the 999 will say about each transaction set.

Owns:
- running pyx12 (the independent X12 validator) on the file and turning its structured error tree into 999 notes
  (IK3/IK4/IK5 codes, AK9 group codes), keeping its log messages as human-readable reasons;
- the sandbox's own syntax-level checks that pyx12 does not make: plain ASCII only, and CLM02 equal to the sum of the
  claim's SV102 amounts (a transaction set with an unbalanced claim is rejected as a whole, as clearinghouses do);
- ``FileVerdict``: the per interchange / group / transaction outcome the 999 and 277CA writers consume.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pyx12.params
import pyx12.x12n_document

from .edi import Group, Interchange, Transaction
from .model837 import parse_837

__all__ = ["ElementNote", "FileVerdict", "GroupVerdict", "SegmentNote", "TxnVerdict", "validate_file"]

# pyx12 reports through the process-wide 'pyx12' logger; one validation at a time keeps captured messages apart.
_PYX12_LOCK = threading.Lock()
IMPLEMENTATION_837P = "005010X222A1"


@dataclass
class ElementNote:
    position: int
    component: int | None
    ref: str
    code: str  # IK403
    bad_value: str = ""


@dataclass
class SegmentNote:
    seg_id: str
    position: int
    loop_id: str
    code: str  # IK304
    elements: list[ElementNote] = field(default_factory=list)
    clm01: str = ""  # business context (CTX*CLM01) when the error belongs to a claim
    message: str = ""


@dataclass
class TxnVerdict:
    txn: Transaction
    notes: list[SegmentNote] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)  # IK502.. transaction-level syntax error codes
    rejected: bool = False
    with_errors: bool = False

    @property
    def ack_code(self) -> str:
        if self.rejected:
            return "R"
        return "E" if self.with_errors else "A"

    @property
    def accepted(self) -> bool:
        return self.ack_code in ("A", "E")


@dataclass
class GroupVerdict:
    group: Group
    txns: list[TxnVerdict]
    codes: list[str] = field(default_factory=list)  # AK905.. group-level codes
    rejected: bool = False

    @property
    def accepted_count(self) -> int:
        return 0 if self.rejected else sum(1 for t in self.txns if t.accepted)

    @property
    def ack_code(self) -> str:
        if self.rejected or self.codes:
            return "R"
        accepted = self.accepted_count
        if accepted == 0:
            return "R"
        if accepted < len(self.txns):
            return "P"
        return "E" if any(t.ack_code == "E" for t in self.txns) else "A"


@dataclass
class FileVerdict:
    interchanges: list[Interchange]
    groups: list[list[GroupVerdict]]  # per interchange
    messages: list[str] = field(default_factory=list)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"pyx12 {record.levelname.lower()}: {record.getMessage()}")


def _run_pyx12(text: str) -> tuple[bool, dict[str, Any] | None, list[str], str | None]:
    """(valid, error tree, log messages, crash reason) for ``text``."""
    capture = _Capture()
    logger = logging.getLogger("pyx12")
    fd_json = io.StringIO()
    with _PYX12_LOCK:
        logger.addHandler(capture)
        try:
            ok = pyx12.x12n_document.x12n_document(
                param=pyx12.params.params(),
                src_file=io.StringIO(text),
                fd_997=None,
                fd_html=None,
                fd_json=fd_json,
            )
            crash = None
        except Exception as exc:  # noqa: BLE001 - the validator's failure is itself a verdict on the file
            ok, crash = False, f"{type(exc).__name__}: {exc}"
        finally:
            logger.removeHandler(capture)
    tree = None
    if fd_json.getvalue():
        try:
            tree = json.loads(fd_json.getvalue())
        except ValueError:
            tree = None
    return bool(ok), tree, capture.messages, crash


def _notes_from_pyx12(st: dict[str, Any]) -> list[SegmentNote]:
    notes = []
    for seg in st.get("segments", []):
        elements = []
        for ele in seg.get("elements", []):
            for err in ele.get("errors", []):
                elements.append(
                    ElementNote(
                        position=int(ele.get("ele_pos") or 0),
                        component=ele.get("subele_pos"),
                        ref=str(ele.get("ele_ref_num") or ""),
                        code=str(err.get("err_cde")),
                        bad_value=str(err.get("err_val") or "")[:99],
                    )
                )
        seg_codes = [str(e.get("err_cde")) for e in seg.get("errors", [])]
        messages = [e.get("err_str", "") for e in seg.get("errors", [])]
        messages += [e["err_str"] for ele in seg.get("elements", []) for e in ele.get("errors", []) if "err_str" in e]
        if not seg_codes and not elements:
            continue
        # One IK3 per segment error code; element notes ride on the first (IK304 8 = "has data element errors").
        codes = seg_codes or ["8"]
        for i, code in enumerate(codes):
            notes.append(
                SegmentNote(
                    seg_id=str(seg.get("seg_id")),
                    position=int(seg.get("seg_count") or 0),
                    loop_id=str(seg.get("ls_id") or ""),
                    code=code,
                    elements=elements if i == 0 else [],
                    message="; ".join(m for m in messages if m),
                )
            )
    return notes


def _non_ascii_notes(txn: Transaction) -> list[SegmentNote]:
    notes = []
    for seg in txn.segments:
        for pos, value in enumerate(seg.elements[1:], start=1):
            bad = [ch for ch in value if ord(ch) > 126 or (ord(ch) < 32 and ch not in "\r\n")]
            if bad:
                notes.append(
                    SegmentNote(
                        seg_id=seg.id,
                        position=seg.position,
                        loop_id="",
                        code="8",
                        elements=[ElementNote(pos, None, "", "6", value.encode("ascii", "replace").decode()[:99])],
                        message=f"{seg.id}{pos:02d} holds a character outside the X12 basic/extended set",
                    )
                )
    return notes


def _balance_notes(txn: Transaction) -> list[SegmentNote]:
    notes = []
    for claim in parse_837(txn).claims:
        charges = [ln.charge for ln in claim.lines]
        if claim.charge is None or not charges or any(c is None for c in charges):
            continue  # unreadable amounts are pyx12's to report
        total = sum(charges, start=claim.charge - claim.charge)
        if total != claim.charge:
            notes.append(
                SegmentNote(
                    seg_id="CLM",
                    position=claim.position,
                    loop_id="2300",
                    code="8",
                    # I12: the value breaks an implementation-guide rule (CLM02 must equal the sum of SV102).
                    elements=[ElementNote(2, None, "782", "I12", claim.charge_text)],
                    clm01=claim.pcn,
                    message=f"claim {claim.pcn}: CLM02 {claim.charge_text} != sum of SV102 {total}",
                )
            )
    return notes


def validate_file(data: bytes, interchanges: list[Interchange], *, grammar: bool = True) -> FileVerdict:
    """Validate ``data`` (already split into ``interchanges`` by the sandbox's reader); ``grammar=False`` skips
    pyx12 (the implementation guide's grammar) and keeps the sandbox's own checks."""
    verdict = FileVerdict(
        interchanges=interchanges,
        groups=[[GroupVerdict(g, [TxnVerdict(t) for t in g.transactions]) for g in ic.groups] for ic in interchanges],
    )
    all_txns = [tv for gs in verdict.groups for g in gs for tv in g.txns]

    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        text = None
        verdict.messages.append(f"file is not plain ASCII: byte 0x{data[exc.start]:02x} at offset {exc.start}")
    if text is None:
        for tv in all_txns:
            tv.notes.extend(_non_ascii_notes(tv.txn))
            if tv.notes:
                tv.codes.append("5")
            # A byte-order mark or a stray byte outside any segment still makes the whole file unacceptable.
            tv.rejected = True
        return verdict

    ok, tree, messages, crash = _run_pyx12(text) if grammar else (True, None, [], None)
    verdict.messages.extend(messages)
    if not grammar:
        pass
    elif crash or tree is None:
        reason = crash or "pyx12 could not read the interchange"
        verdict.messages.append(f"validator: {reason}")
        unsupported = "Map not found" in reason
        for gs in verdict.groups:
            for g in gs:
                g.rejected = True
                g.codes = ["2"] if unsupported else []
                for tv in g.txns:
                    tv.rejected = True
                    tv.codes = ["1"] if unsupported else []
    else:
        _apply_tree(verdict, tree)

    for gs in verdict.groups:
        for g in gs:
            _supported(g, verdict.messages)
    for tv in all_txns:
        if tv.txn.se is None:
            tv.rejected = True
            if "2" not in tv.codes:
                tv.codes.append("2")  # IK502 2: transaction set trailer missing
        own = _balance_notes(tv.txn)
        if own:
            tv.notes.extend(own)
            tv.rejected = True
            if "5" not in tv.codes:
                tv.codes.append("5")
            verdict.messages.extend(n.message for n in own)
    if not ok and not verdict.messages:
        verdict.messages.append("pyx12 reported the file invalid")
    return verdict


def _apply_tree(verdict: FileVerdict, tree: dict[str, Any]) -> None:
    isas = tree.get("interchanges", [])
    for i, groups in enumerate(verdict.groups):
        isa = isas[i] if i < len(isas) else None
        if isa is None:
            continue
        if isa.get("errors"):
            # Interchange envelope broken (IEA count or control number): nothing inside it is taken in.
            for g in groups:
                g.rejected = True
            verdict.messages.extend(f"interchange: {e.get('err_str')}" for e in isa["errors"])
        pyx_groups = isa.get("groups", [])
        for j, gv in enumerate(groups):
            pg = _match(pyx_groups, j, "gs_control_num", gv.group.control_number)
            if pg is None:
                continue
            for err in pg.get("errors", []):
                gv.codes.append(str(err.get("err_cde")))
                verdict.messages.append(f"group {gv.group.control_number}: {err.get('err_str')}")
            pyx_txns = pg.get("transactions", [])
            for k, tv in enumerate(gv.txns):
                pt = _match(pyx_txns, k, "trn_set_control_num", tv.txn.control_number)
                if pt is None:
                    # The validator never got to this set (broken envelope): nothing vouches for it.
                    tv.rejected = True
                    continue
                tv.notes.extend(_notes_from_pyx12(pt))
                for err in pt.get("errors", []):
                    tv.codes.append(str(err.get("err_cde")))
                ack = pt.get("ack_code") or "A"
                if ack == "R" or pt.get("errors") or tv.notes:
                    tv.rejected = True
                    if tv.notes and "5" not in tv.codes:
                        tv.codes.append("5")  # IK502 5: one or more segments in error
                elif ack == "E":
                    tv.with_errors = True


def _match(items: list[dict[str, Any]], index: int, key: str, control: str) -> dict[str, Any] | None:
    if index < len(items) and str(items[index].get(key)) == control:
        return items[index]
    for item in items:
        if str(item.get(key)) == control:
            return item
    return items[index] if index < len(items) else None


def _supported(g: GroupVerdict, messages: list[str]) -> None:
    """The sandbox takes professional claims only (837P, 005010X222A1); anything else is refused, not guessed at."""
    gs = g.group.gs
    if gs.get(1) != "HC" or gs.get(8) != IMPLEMENTATION_837P:
        g.rejected = True
        code = "1" if gs.get(1) != "HC" else "2"  # AK905 1: group not supported, 2: version not supported
        if code not in g.codes:
            g.codes.append(code)
        messages.append(f"group {g.group.control_number}: {gs.get(1)} {gs.get(8)} is not supported (837P only)")
    for tv in g.txns:
        if tv.txn.set_id != "837" or tv.txn.version not in ("", IMPLEMENTATION_837P):
            tv.rejected = True
            if "1" not in tv.codes:
                tv.codes.append("1")  # IK502 1: transaction set not supported
