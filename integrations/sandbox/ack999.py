"""The 999 implementation acknowledgment (005010X231A1) the sandbox returns for every readable 837 file.

Owns the mapping of a ``FileVerdict`` to segments: one interchange answering each received interchange (sender and
receiver swapped), one 999 transaction set per received functional group with AK1 echoing GS01/GS06/GS08, AK2 per
transaction set, IK3 (+ CTX*CLM01 when a claim is at fault) and IK4 per error, IK5 A/E/R and AK9 with counts.
"""

from __future__ import annotations

from datetime import datetime

from .edi import X12Out, envelope
from .state import SandboxState
from .validate import FileVerdict

__all__ = ["build_999"]

MAX_NOTES_PER_SET = 100  # a real clearinghouse stops listing errors at some point; so does the sandbox


def build_999(verdict: FileVerdict, *, state: SandboxState, now: datetime, fallback_id: str) -> str:
    out = []
    for ic, groups in zip(verdict.interchanges, verdict.groups, strict=True):
        sets = []
        for gv in groups:
            body = X12Out()
            gs = gv.group.gs
            body.seg("AK1", gs.get(1), gs.get(6), gs.get(8))
            for tv in gv.txns:
                txn = tv.txn
                body.seg("AK2", txn.set_id, txn.control_number, txn.version)
                for note in tv.notes[:MAX_NOTES_PER_SET]:
                    body.seg("IK3", note.seg_id, str(note.position), note.loop_id, note.code)
                    if note.clm01:
                        body.seg("CTX", ("CLM01", note.clm01))
                    for el in note.elements:
                        where = (str(el.position), str(el.component) if el.component else "")
                        body.seg("IK4", where, el.ref, el.code, el.bad_value)
                body.seg("IK5", tv.ack_code, *tv.codes[:5])
            received = len(gv.txns)
            claimed = gv.group.ge.get(1) if gv.group.ge is not None and gv.group.ge.get(1).isdigit() else str(received)
            body.seg("AK9", gv.ack_code, claimed, str(received), str(gv.accepted_count), *gv.codes[:5])
            sets.append(("999", body))
        first_gs = ic.groups[0].gs
        out.append(
            envelope(
                sender_qualifier=ic.isa_value(7),
                sender_id=ic.isa_value(8) or fallback_id,
                receiver_qualifier=ic.isa_value(5),
                receiver_id=ic.isa_value(6),
                gs_sender=first_gs.get(3) or fallback_id,
                gs_receiver=first_gs.get(2),
                functional_id="FA",
                version="005010X231A1",
                control_number=state.next("control_number"),
                when=now,
                usage=ic.isa_value(15),
                transactions=sets,
            )
        )
    return "".join(out)
