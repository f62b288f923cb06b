"""One pass of the sandbox clearinghouse over its drop folders: the file-level workflow.

Owns ``process_inbox_once`` and the conventions it follows for every account directory ``root/<account>/``:
- ``inbox/``: complete files to process (``*.part``, dotfiles and directories are ignored: uploads in progress);
- ``archive/``: where each processed file is moved (``<name>``, or ``<name>.<n>`` if taken), with
  ``<name>.validation.txt`` beside it when the validator had something to say;
- ``outbox/``: answers, written atomically (temp file outside the outbox, then rename), never overwritten:
  ``<stem>.999`` for every readable file, ``<stem>.277ca`` when at least one transaction set was accepted,
  ``<stem>.error.txt`` when not even ISA/GS could be read, and ``era-<payer id>-<ISA13>.835`` per payer per pass
  once remittances are due. A name already used (in ``outbox/`` or a client's ``outbox/archive/``) gets ``-<n>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from .ack277 import ClaimAck, TxnAck, build_277ca, claim_edits
from .ack999 import build_999
from .adjudicate import AdjudicatedClaim, adjudicate, reversal_of
from .config import SandboxConfig
from .edi import X12Error, read_interchanges
from .model837 import Claim, parse_837
from .remit835 import build_835, payee_count
from .state import SandboxState, locked_state, private_dir
from .validate import validate_file

__all__ = ["account_dirs", "process_inbox_once"]

log = logging.getLogger(__name__)
# One pass at a time in this process (the poller thread and a direct call must not both take the same file).
_PASS_LOCK = threading.Lock()


def account_dirs(root: Path, account: str) -> Path:
    home = root / account
    for sub in ("inbox", "outbox", "archive"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    return home


def _is_candidate(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(".part") and path.is_file()


def _stem(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    return stem or "file"


def _free_name(outbox: Path, stem: str, suffix: str) -> str:
    taken = lambda n: (outbox / n).exists() or (outbox / "archive" / n).exists()  # noqa: E731
    name = f"{stem}{suffix}"
    n = 2
    while taken(name):
        name = f"{stem}-{n}{suffix}"
        n += 1
    return name


def _write_atomic(root: Path, target: Path, text: str) -> Path:
    tmp_dir = private_dir(root) / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="out-")
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def _archive(home: Path, path: Path, notes: list[str]) -> Path:
    archive = home / "archive"
    archive.mkdir(exist_ok=True)
    target = archive / path.name
    n = 2
    while target.exists():
        target = archive / f"{path.name}.{n}"
        n += 1
    os.replace(path, target)
    if notes:
        target.with_name(target.name + ".validation.txt").write_text("\n".join(notes) + "\n")
    return target


def process_inbox_once(config: SandboxConfig) -> list[Path]:
    """Handle every complete file in every account's inbox, then send the remittances that are due.

    Returns the files written to outboxes, in the order written.
    """
    with _PASS_LOCK:
        return _pass(config)


def _pass(config: SandboxConfig) -> list[Path]:
    root = config.root
    root.mkdir(parents=True, exist_ok=True)
    for account in config.accounts:
        account_dirs(root, account)
    written: list[Path] = []
    for home in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        inbox = home / "inbox"
        if not inbox.is_dir():
            continue
        account_dirs(root, home.name)
        for path in sorted(inbox.iterdir()):
            if not _is_candidate(path):
                continue
            try:
                written += _process_file(config, home, path)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others or loop forever
                log.exception("sandbox clearinghouse: failed to process %s", path)
                outbox = home / "outbox"
                name = _free_name(outbox, _stem(path.name), ".error.txt")
                written.append(_write_atomic(root, outbox / name, f"{path.name}: internal sandbox error: {exc}\n"))
                if path.exists():
                    _archive(home, path, [f"internal error: {exc!r}"])
    written += _send_due_remittances(config)
    return written


def _envelope_ids(ic: Any, fallback: str) -> dict[str, str]:
    gs = ic.groups[0].gs
    return {
        "sender_qualifier": ic.isa_value(7),
        "sender_id": ic.isa_value(8) or fallback,
        "receiver_qualifier": ic.isa_value(5),
        "receiver_id": ic.isa_value(6),
        "gs_sender": gs.get(3) or fallback,
        "gs_receiver": gs.get(2),
        "usage": ic.isa_value(15),
    }


def _process_file(config: SandboxConfig, home: Path, path: Path) -> list[Path]:
    root, outbox, account = config.root, home / "outbox", home.name
    now = config.clock()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []  # the client took it back between listing and reading
    stem = _stem(path.name)
    try:
        interchanges = read_interchanges(data)
    except X12Error as exc:
        # Nothing to address a 999 to: tell the submitter in plain text, as clearinghouse portals do.
        name = _free_name(outbox, stem, ".error.txt")
        out = _write_atomic(root, outbox / name, f"{path.name}: rejected, not a readable X12 interchange: {exc}\n")
        _archive(home, path, [str(exc)])
        return [out]

    verdict = validate_file(data, interchanges, grammar=config.check_grammar)
    written: list[Path] = []
    with locked_state(root) as state:
        text_999 = build_999(verdict, state=state, now=now, fallback_id=config.interchange_id)
        txn_acks: list[TxnAck] = []
        for ic, groups in zip(verdict.interchanges, verdict.groups, strict=True):
            env = _envelope_ids(ic, config.interchange_id)
            for gv in groups:
                if gv.rejected or gv.codes:
                    continue  # the group as a whole was refused: none of its claims go further
                for tv in gv.txns:
                    if not tv.accepted:
                        continue
                    batch = parse_837(tv.txn)
                    acks = [_acknowledge(config, state, account, claim, now, env, path.name) for claim in batch.claims]
                    txn_acks.append(TxnAck(ic, batch, acks))
        written.append(_write_atomic(root, outbox / _free_name(outbox, stem, ".999"), text_999))
        if txn_acks:
            text_277 = build_277ca(
                txn_acks, state=state, now=now, received=now.date(), fallback_id=config.interchange_id
            )
            written.append(_write_atomic(root, outbox / _free_name(outbox, stem, ".277ca"), text_277))
    _archive(home, path, verdict.messages)
    return written


def _acknowledge(
    config: SandboxConfig,
    state: SandboxState,
    account: str,
    claim: Claim,
    now: datetime,
    env: dict[str, str],
    source: str,
) -> ClaimAck:
    payer_id = claim.payer.id or "UNKNOWN"
    behaviour = config.behaviour(payer_id)
    ack = ClaimAck(claim, claim_edits(claim, behaviour, now.date()), trace=f"{state.next('clearinghouse_trace'):012d}")
    if not ack.accepted:
        return ack
    ack.payer_claim_number = f"{now:%y}{now.timetuple().tm_yday:03d}{state.next('payer_claim'):09d}"
    due = now.timestamp() + config.remit_delay_seconds
    pending: list[AdjudicatedClaim] = []
    if claim.frequency in ("7", "8"):
        original = _original(state, account, payer_id, claim)
        if original is not None:
            pending.append(reversal_of(original, received=now.date(), state=state))
    if claim.frequency != "8":
        pending.append(
            adjudicate(
                claim,
                behaviour=behaviour,
                state=state,
                account=account,
                payer_claim_number=ack.payer_claim_number,
                received=now.date(),
                source_file=source,
            )
        )
    for item in pending:
        state.pending.append(
            {"due": due, "account": account, "payer_id": payer_id, "envelope": env, "claim": item.to_json()}
        )
    return ack


def _original(state: SandboxState, account: str, payer_id: str, claim: Claim) -> AdjudicatedClaim | None:
    """The earlier adjudication a void/replacement refers to (REF*F8 first, else the latest for this CLM01)."""
    number = claim.original_reference or state.latest_by_pcn.get(f"{account}|{payer_id}|{claim.pcn}", "")
    record = state.claims.get(f"{account}|{payer_id}|{number}")
    if record is None or record.get("reversed"):
        return None
    return AdjudicatedClaim.from_json(record)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:40] or "payer"


def _send_due_remittances(config: SandboxConfig) -> list[Path]:
    written: list[Path] = []
    now = config.clock()
    with locked_state(config.root) as state:
        due = [e for e in state.pending if e["due"] <= now.timestamp()]
        if not due:
            return written
        state.data["pending"] = [e for e in state.pending if e["due"] > now.timestamp()]
        batches: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for entry in due:
            batches.setdefault((entry["account"], entry["payer_id"]), []).append(entry)
        for (account, payer_id), entries in batches.items():
            claims = [AdjudicatedClaim.from_json(e["claim"]) for e in entries]
            control = state.next("control_number")
            traces = [f"{state.next('trace'):010d}" for _ in range(payee_count(claims))]
            text = build_835(
                claims,
                behaviour=config.behaviour(payer_id),
                control_number=control,
                traces=traces,
                now=now,
                env=entries[0]["envelope"],
            )
            outbox = account_dirs(config.root, account) / "outbox"
            name = _free_name(outbox, f"era-{_safe(payer_id)}-{control:09d}", ".835")
            written.append(_write_atomic(config.root, outbox / name, text))
    return written
