"""A posting worker killed with SIGKILL in the middle of a large 835 set, then the job run again: the set posts in one
transaction, so the kill leaves nothing of it, and the re-run leaves exactly the ledger one clean posting gives
(checked per claim against a recomputation from the 835 itself); a third run posts nothing more."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from decimal import Decimal

from sqlalchemy import func, insert, select, text

from billing import claims as claim_service
from billing.edi_intake import POSTING_QUEUE, queue_posting
from billing.models import (
    BillingIdentity,
    Claim,
    ClaimLine,
    Deposit,
    Encounter,
    LedgerEntry,
    RemittanceClaim,
    ServiceLine,
)
from integrations.x12.remit835 import parse_835
from tests.billing.factories import billing_practice, insured_patient, visit
from tests.conftest import PROJECT_ROOT

CLAIMS = 2500  # large enough that posting takes seconds, so the kill lands inside the set's transaction
D = Decimal


def _clone_claims(s, claim_id: int, n: int) -> None:
    """n more accepted claims like `claim_id`, each on an encounter and service lines of its own (bulk inserts)."""
    claim = s.get(Claim, claim_id)
    enc_t, sl_t, claim_t, cl_t = (m.__table__ for m in (Encounter, ServiceLine, Claim, ClaimLine))

    def copy_of(table, row_id: int) -> dict:
        row = s.execute(select(table).where(table.c.id == row_id)).mappings().one()
        return {k: v for k, v in row.items() if k not in ("id", "created_at")}

    def insert_many(table, rows: list[dict]) -> list[int]:
        return list(s.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))

    encounter_ids = insert_many(enc_t, [copy_of(enc_t, claim.encounter_id)] * n)
    service_rows = [copy_of(sl_t, cl.service_line_id) for cl in claim.lines]
    service_ids = insert_many(sl_t, [{**r, "encounter_id": e} for e in encounter_ids for r in service_rows])
    claim_ids = insert_many(
        claim_t,
        [{**copy_of(claim_t, claim.id), "encounter_id": e, "status": "accepted", "payer_claim_number": None}
         for e in encounter_ids],
    )  # fmt: skip
    per = len(service_rows)
    line_rows = [copy_of(cl_t, cl.id) for cl in claim.lines]
    insert_many(
        cl_t,
        [{**line_rows[k], "claim_id": c, "service_line_id": service_ids[i * per + k]}
         for i, c in enumerate(claim_ids) for k in range(per)],
    )  # fmt: skip


def _era(s, group_npi: str) -> str:
    """An 835 paying every accepted claim: 60 % allowed, 20 % of it coinsurance, the rest CO-45."""
    rows = s.execute(
        select(Claim.id, ClaimLine.id, ClaimLine.charge, ServiceLine.procedure_code, ServiceLine.modifiers,
               ServiceLine.date_of_service)
        .join(ClaimLine, ClaimLine.claim_id == Claim.id)
        .join(ServiceLine, ServiceLine.id == ClaimLine.service_line_id)
        .where(Claim.status == "accepted")
        .order_by(Claim.id, ClaimLine.line_number)
    ).all()  # fmt: skip
    by_claim: dict[int, list] = defaultdict(list)
    for claim_id, *line in rows:
        by_claim[claim_id].append(line)
    body, paid_total = [], D(0)
    for claim_id, lines in by_claim.items():
        charge = paid = pr = D(0)
        segs = []
        for line_id, line_charge, code, modifiers, dos in lines:
            allowed = (line_charge * D("0.60")).quantize(D("0.01"))
            coins = (allowed * D("0.20")).quantize(D("0.01"))
            segs += [
                f"SVC*{':'.join(['HC', code, *(modifiers or [])])}*{line_charge}*{allowed - coins}**1",
                f"DTM*472*{dos:%Y%m%d}", f"CAS*CO*45*{line_charge - allowed}", f"CAS*PR*2*{coins}", f"REF*6R*{line_id}",
            ]  # fmt: skip
            charge, paid, pr = charge + line_charge, paid + allowed - coins, pr + coins
        body += [f"CLP*{claim_id}*1*{charge}*{paid}*{pr}*12*FAULT{claim_id}*11", *segs]
        paid_total += paid
    segments = [
        "ST*835*0001",
        f"BPR*I*{paid_total}*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20261120",
        "TRN*1*FAULT00001*1512345678", "N1*PR*FAULT HEALTH", "N3*1 PAYER WAY", "N4*COLUMBUS*OH*43215",
        f"N1*PE*TEST CLINIC*XX*{group_npi}", "LX*1", *body,
    ]  # fmt: skip
    segments.append(f"SE*{len(segments) + 1}*0001")
    isa = f"ISA*00*          *00*          *ZZ*{'FAULT':<15}*ZZ*{'CLINIC':<15}*261120*1200*^*00501*000000001*0*P*:"
    return "~".join([isa, "GS*HP*FAULT*CLINIC*20261120*1200*1*X*005010X221A1", *segments, "GE*1*1",
                     "IEA*1*000000001"]) + "~"  # fmt: skip


def _ledger_by_claim(s) -> dict[int, tuple]:
    rows = s.execute(
        select(LedgerEntry.claim_id, LedgerEntry.kind, func.count(), func.sum(LedgerEntry.amount)).group_by(
            LedgerEntry.claim_id, LedgerEntry.kind
        )
    ).all()
    out: dict[int, dict] = defaultdict(dict)
    for claim_id, kind, count, amount in rows:
        out[claim_id][kind] = (count, amount)
    return {claim_id: tuple(sorted(kinds.items())) for claim_id, kinds in out.items()}


def _expected(text_835: str) -> dict[int, tuple]:
    """The ledger one clean posting gives, recomputed from the 835: per claim and kind, (entries, sum)."""
    (remittance,) = parse_835(text_835)
    out = {}
    for clp in remittance.claims:
        kinds: dict[str, list[Decimal]] = defaultdict(list)
        for svc in clp.lines:
            kinds["charge"].append(svc.charge)
            kinds["insurance_payment"].append(svc.paid)
            for adj in svc.adjustments:
                kinds["contractual_adjustment" if adj.group == "CO" else "patient_responsibility"].append(adj.amount)
        out[int(clp.patient_control_number)] = tuple(
            sorted((kind, (len(v), sum(v, D(0)))) for kind, v in kinds.items())
        )
    return out


def _backend_posting(s, schema: str) -> bool:
    """Whether some other connection holds an uncommitted write lock on the practice's ledger: mid-posting."""
    return bool(
        s.execute(
            text(
                "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE n.nspname = :schema AND c.relname = 'ledger_entries' AND l.mode = 'RowExclusiveLock' "
                "AND a.pid <> pg_backend_pid() AND a.backend_xid IS NOT NULL"
            ),
            {"schema": schema},
        ).first()
    )


def _descendants(pid: int) -> list[int]:
    """Processes under `pid` (RQ's work-horse runs in a process group of its own, so killpg alone misses it)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _kill_all(worker: subprocess.Popen) -> None:
    for pid in [*_descendants(worker.pid), worker.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait(timeout=30)


def _counts(s) -> tuple[int, int, int]:
    return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Deposit, RemittanceClaim, LedgerEntry))


def test_a_worker_killed_mid_posting_then_rerun_posts_the_set_exactly_once(services, factory, env):
    bp = billing_practice(services, factory)
    patient = insured_patient(services, bp, factory)
    with services.db.tenant_session(bp.slug) as s:
        (claim,) = claim_service.create_claims(s, bp.access, visit(services, bp, patient))
        _clone_claims(s, claim.id, CLAIMS)
        s.commit()
        group_npi = s.get(BillingIdentity, 1).group_npi
        text_835 = _era(s, group_npi)
        schema = s.get_bind().get_execution_options()["schema_translate_map"][None]
    (remittance,) = parse_835(text_835)
    assert len(remittance.claims) == CLAIMS
    storage_key = f"test/fault/{bp.slug}.835"
    services.storage.put(storage_key, text_835.encode())
    job_id, added = queue_posting(services.dispatcher, bp.slug, storage_key, remittance.content_key)
    assert added

    # A real worker process and the work-horse it forks for the job, both killed with SIGKILL as soon as the job's
    # transaction has written ledger entries, before it can commit.
    worker = subprocess.Popen(
        [sys.executable, "-m", "medbill.cli", "worker", "--queue", POSTING_QUEUE],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        with services.db.shared_session() as watch:
            while not _backend_posting(watch, schema):
                assert worker.poll() is None, "the worker ended before posting"
                assert time.monotonic() < deadline, "the worker never started posting"
                watch.rollback()
                time.sleep(0.01)
            _kill_all(worker)
            # The server notices the dead client and rolls its transaction back.
            while _backend_posting(watch, schema):
                watch.rollback()
                time.sleep(0.05)
    finally:
        if worker.poll() is None:
            _kill_all(worker)
    with services.db.tenant_session(bp.slug) as s:
        assert _counts(s) == (0, 0, 0)  # nothing of the set is visible: the kill landed before the commit
        assert s.scalar(select(func.count()).where(Claim.status == "paid")) == 0

    # The retry: the job (left "started" by the dead worker) runs again in a new worker.
    queue = services.dispatcher.queue(POSTING_QUEUE)
    job = queue.fetch_job(job_id)
    assert job is not None
    queue.enqueue_job(job)
    _burst(env)
    with services.db.tenant_session(bp.slug) as s:
        assert _counts(s)[:2] == (1, CLAIMS)
        assert _ledger_by_claim(s) == _expected(text_835)
        assert s.scalar(select(func.count()).where(Claim.status == "paid")) == CLAIMS
        after = _counts(s)

    # Running the job a third time posts nothing more.
    queue.enqueue_job(queue.fetch_job(job_id))
    _burst(env)
    with services.db.tenant_session(bp.slug) as s:
        assert _counts(s) == after


def _burst(env) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "medbill.cli", "worker", "--burst", "--queue", POSTING_QUEUE],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
