"""Test helpers for the sandbox clearinghouse: hand-built 837P files, a pyx12 wrapper that shows why a file fails,
and a tiny reader for the sandbox's outputs (written here, independently of the code under test)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyx12.params
import pyx12.x12n_document

# ---------------------------------------------------------------------------------------------------- 837P builder

SUBMITTER = ["NM1*41*2*MEDBILL BILLING CO*****46*MEDBILL01", "PER*IC*EDI DESK*TE*5555550100"]
RECEIVER = ["NM1*40*2*SANDBOX CLEARINGHOUSE*****46*SANDBOXCH"]
BILLING = [
    "NM1*85*2*SANDBOX FAMILY PRACTICE*****XX*1234567893",
    "N3*100 MAIN ST",
    "N4*SPRINGFIELD*IL*627010001",
    "REF*EI*371234567",
]
VALID_RENDERING_NPI = "1497758544"
INVALID_NPI = "1234567890"


def subscriber(
    member_id: str,
    last: str = "DOE",
    first: str = "JOHN",
    dob: str = "19800115",
    *,
    payer_id: str = "SBX01",
    payer_name: str = "SANDBOX HEALTH PLAN",
    responsibility: str = "P",
    relationship: str = "18",
    group: str = "GRP100",
) -> list[str]:
    return [
        f"SBR*{responsibility}*{relationship}*{group}******CI",
        f"NM1*IL*1*{last}*{first}****MI*{member_id}",
        "N3*1 ELM ST",
        "N4*SPRINGFIELD*IL*627010002",
        f"DMG*D8*{dob}*M",
        f"NM1*PR*2*{payer_name}*****PI*{payer_id}",
    ]


def claim(
    pcn: str,
    lines: Iterable[tuple[str, str, str]],
    *,
    total: str | None = None,
    frequency: str = "1",
    original: str | None = None,
    rendering_npi: str | None = VALID_RENDERING_NPI,
    dos: str = "20250301",
    extra_after_hi: Iterable[str] = (),
    line_extra: dict[int, list[str]] | None = None,
) -> list[str]:
    """``lines``: (procedure composite e.g. "99213" or "85025:59", charge, REF*6R id or "")."""
    lines = list(lines)
    amount = total if total is not None else str(sum(Decimal(c) for _, c, _ in lines))
    segs = [f"CLM*{pcn}*{amount}***11:B:{frequency}*Y*A*Y*Y"]
    if original:
        segs.append(f"REF*F8*{original}")
    segs.append("HI*ABK:E119*ABF:I10")
    if rendering_npi:
        segs.append(f"NM1*82*1*WELBY*MARCUS****XX*{rendering_npi}")
    segs += list(extra_after_hi)
    for n, (proc, charge, ref) in enumerate(lines, start=1):
        segs += [f"LX*{n}", f"SV1*HC:{proc}*{charge}*UN*1***1", f"DTP*472*D8*{dos}"]
        if ref:
            segs.append(f"REF*6R*{ref}")
        segs += (line_extra or {}).get(n, [])
    return segs


@dataclass
class Txn:
    """One 837 transaction set: a billing provider with (subscriber segments, [patient segments], claims) entries."""

    entries: list[tuple[list[str], list[str] | None, list[list[str]]]] = field(default_factory=list)
    bht03: str = "BATCH0001"


def build_837(txns: list[Txn], *, icn: int = 1001, gs_control: int = 501, date: str = "20250310") -> bytes:
    out = [
        f"ISA*00*          *00*          *ZZ*{'MEDBILL01':<15}*ZZ*{'SANDBOXCH':<15}*{date[2:]}*0900*^*00501*"
        f"{icn:09d}*0*T*:",
        f"GS*HC*MEDBILL01*SANDBOXCH*{date}*0900*{gs_control}*X*005010X222A1",
    ]
    for n, txn in enumerate(txns, start=1):
        body = [f"BHT*0019*00*{txn.bht03}*{date}*0900*CH", *SUBMITTER, *RECEIVER, "HL*1**20*1", *BILLING]
        hl = 1
        for sub, patient, claims in txn.entries:
            hl += 1
            sub_hl = hl
            body.append(f"HL*{sub_hl}*1*22*{1 if patient else 0}")
            body += sub
            if patient:
                hl += 1
                body.append(f"HL*{hl}*{sub_hl}*23*0")
                body += patient
            for c in claims:
                body += c
        st = f"{n:04d}"
        out += [f"ST*837*{st}*005010X222A1", *body, f"SE*{len(body) + 2}*{st}"]
    out += [f"GE*{len(txns)}*{gs_control}", f"IEA*1*{icn:09d}"]
    return ("~\n".join(out) + "~\n").encode("ascii")


def dependent(last: str = "SMITH", first: str = "LILY", dob: str = "20150410") -> list[str]:
    return ["PAT*19", f"NM1*QC*1*{last}*{first}", "N3*1 ELM ST", "N4*SPRINGFIELD*IL*627010002", f"DMG*D8*{dob}*F"]


# ---------------------------------------------------------------------------------------------------- pyx12


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname}: {record.getMessage()}")


def pyx12_errors(path: Path) -> list[str]:
    """Everything pyx12 complains about in ``path`` (empty list: valid). pyx12's own 999 is not built: it crashes
    for an 835 input, and its crash would read as an error of the file."""
    handler = _Errors()
    logger = logging.getLogger("pyx12")
    logger.addHandler(handler)
    try:
        ok = pyx12.x12n_document.x12n_document(
            param=pyx12.params.params(), src_file=str(path), fd_997=None, fd_html=None
        )
    finally:
        logger.removeHandler(handler)
    if not ok and not handler.messages:
        handler.messages.append("pyx12 says invalid (no message)")
    return handler.messages


def assert_valid(path: Path) -> None:
    errors = pyx12_errors(path)
    assert not errors, f"{path.name} is not valid X12 per pyx12:\n" + "\n".join(errors) + "\n\n" + path.read_text()


# ---------------------------------------------------------------------------------------------------- reading outputs


def segments(path: Path) -> list[list[str]]:
    """The sandbox writes '*' / ':' / '~' + newline; check that, then split."""
    text = path.read_text()
    assert text.startswith("ISA*") and text[105] == "~" and text[104] == ":", "ISA must be fixed width"
    return [s.strip().split("*") for s in text.split("~") if s.strip()]


def find(segs: list[list[str]], sid: str, first: str | None = None) -> list[list[str]]:
    return [s for s in segs if s[0] == sid and (first is None or (len(s) > 1 and s[1] == first))]


def el(seg: list[str], index: int) -> str:
    return seg[index] if index < len(seg) else ""


def amount(text: str) -> Decimal:
    return Decimal(text) if text else Decimal("0")


@dataclass
class RemitLine:
    svc: list[str]
    cas: list[list[str]] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)
    allowed: Decimal | None = None
    remarks: list[str] = field(default_factory=list)

    @property
    def adjustments(self) -> list[tuple[str, str, Decimal]]:
        out = []
        for cas in self.cas:
            for i in range(2, len(cas), 3):
                if cas[i]:
                    out.append((cas[1], cas[i], amount(el(cas, i + 1))))
        return out


@dataclass
class RemitClaim:
    clp: list[str]
    cas: list[list[str]] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    lines: list[RemitLine] = field(default_factory=list)


@dataclass
class Remit:
    bpr: list[str]
    trn: list[str]
    claims: list[RemitClaim]
    plb: list[list[str]]


def read_835(path: Path) -> list[Remit]:
    remits: list[Remit] = []
    cur: Remit | None = None
    clm: RemitClaim | None = None
    line: RemitLine | None = None
    for s in segments(path):
        sid = s[0]
        if sid == "BPR":
            cur = Remit(bpr=s, trn=[], claims=[], plb=[])
            remits.append(cur)
            clm = line = None
        elif sid == "TRN" and cur is not None:
            cur.trn = s
        elif sid == "CLP":
            clm = RemitClaim(clp=s)
            cur.claims.append(clm)
            line = None
        elif sid == "SVC":
            line = RemitLine(svc=s)
            clm.lines.append(line)
        elif sid == "CAS":
            (line.cas if line is not None else clm.cas).append(s)
        elif sid == "NM1" and clm is not None:
            clm.names[s[1]] = s
        elif sid == "REF" and line is not None:
            line.refs[s[1]] = s[2]
        elif sid == "AMT" and line is not None and s[1] == "B6":
            line.allowed = amount(s[2])
        elif sid == "LQ" and line is not None:
            line.remarks.append(s[2])
        elif sid == "PLB":
            cur.plb.append(s)
    return remits


def assert_balanced(remit: Remit) -> None:
    total_paid = Decimal("0")
    for c in remit.claims:
        charge, paid, patient = amount(el(c.clp, 3)), amount(el(c.clp, 4)), amount(el(c.clp, 5))
        all_cas: list[tuple[str, str, Decimal]] = []
        for cas in c.cas:
            all_cas += RemitLine(svc=[], cas=[cas]).adjustments
        for ln in c.lines:
            adj = ln.adjustments
            assert amount(el(ln.svc, 2)) == amount(el(ln.svc, 3)) + sum(a for _, _, a in adj), f"line {ln.svc}"
            all_cas += adj
        assert charge == paid + sum(a for _, _, a in all_cas), f"claim {c.clp}"
        assert patient == sum(a for g, _, a in all_cas if g == "PR"), f"CLP05 of {c.clp}"
        total_paid += paid
    plb = Decimal("0")
    for p in remit.plb:
        for i in range(4, len(p), 2):
            plb += amount(p[i])
    assert amount(remit.bpr[2]) == total_paid - plb, "BPR02 != sum(CLP04) - sum(PLB)"
