"""The sandbox clearinghouse on real files in temp drop folders: 999, 277CA and 835 validated with pyx12, 835
balancing checked with the tests' own reader, file movements and naming."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from integrations.sandbox import SandboxConfig, process_inbox_once
from tests.conftest import X12_FIXTURES
from tests.sandbox.conftest import MOOV_837, TR3_837, drop, make_config, sample_837
from tests.sandbox.helpers import assert_balanced, assert_valid, el, find, read_835, segments


def outputs(config: SandboxConfig, account: str = "acme") -> dict[str, Path]:
    return {p.name: p for p in sorted((config.root / account / "outbox").iterdir()) if p.is_file()}


def only(files: dict[str, Path], suffix: str) -> Path:
    matches = [p for n, p in files.items() if n.endswith(suffix)]
    assert len(matches) == 1, f"expected one *{suffix} in {sorted(files)}"
    return matches[0]


def claim_status(path_277: Path) -> dict[str, dict]:
    """CLM01 -> {"stc": [...], "refs": {...}, "lines": [{"svc", "stc", "fj"}]} read from a 277CA."""
    out: dict[str, dict] = {}
    cur = None
    line = None
    prev: list[str] = []
    for s in segments(path_277):
        if s[0] == "HL":
            cur, line = None, None
        elif s[0] == "TRN" and s[1] == "2" and prev[:2] == ["NM1", "QC"]:
            cur = out.setdefault(s[2], {"stc": [], "refs": {}, "lines": []})
        elif cur is not None and s[0] == "STC" and line is None:
            cur["stc"].append(s)
        elif cur is not None and s[0] == "REF" and line is None:
            cur["refs"][s[1]] = s[2]
        elif cur is not None and s[0] == "SVC":
            line = {"svc": s, "stc": None, "fj": None}
            cur["lines"].append(line)
        elif line is not None and s[0] == "STC":
            line["stc"] = s
        elif line is not None and s[0] == "REF" and s[1] == "FJ":
            line["fj"] = s[2]
        prev = s
    return out


def test_own_837_every_outcome(config: SandboxConfig) -> None:
    drop(config, "batch-1.837", sample_837())
    inbox = config.root / "acme" / "inbox"
    (inbox / "later.837.part").write_bytes(b"ISA*partial")
    (inbox / ".hidden").write_bytes(b"not for us")

    written = process_inbox_once(config)

    files = outputs(config)
    assert set(written) == set(files.values())
    ack_999, ack_277 = files["batch-1.999"], files["batch-1.277ca"]
    remit_835 = only(files, "SBX01-000000003.835")
    remit_835_sec = only(files, "SBX02-000000004.835")
    for path in (ack_999, ack_277, remit_835, remit_835_sec):
        assert_valid(path)

    # The 837 was archived; in-progress and hidden files were left alone.
    assert (config.root / "acme" / "archive" / "batch-1.837").read_bytes() == sample_837()
    assert sorted(p.name for p in inbox.iterdir()) == [".hidden", "later.837.part"]

    # 999: first set accepted, second rejected at the unbalanced CLM, group partially accepted.
    s999 = segments(ack_999)
    assert find(s999, "AK1")[0][1:4] == ["HC", "501", "005010X222A1"]
    assert [s[1:] for s in find(s999, "AK2")] == [["837", "0001", "005010X222A1"], ["837", "0002", "005010X222A1"]]
    assert [s[1] for s in find(s999, "IK5")] == ["A", "R"]
    ik3 = find(s999, "IK3")
    assert len(ik3) == 1 and ik3[0][1] == "CLM" and ik3[0][3] == "2300"
    assert find(s999, "CTX")[0][1] == "CLM01:PCN-2001"
    assert find(s999, "IK4")[0][1:3] == ["2", "782"] and find(s999, "IK4")[0][4] == "999"
    assert find(s999, "AK9")[0][1:5] == ["P", "2", "2", "1"]
    # Sender and receiver swapped relative to the 837.
    isa = s999[0]
    assert isa[6].strip() == "SANDBOXCH" and isa[8].strip() == "MEDBILL01"

    # 277CA: what happened to each claim, in readable codes.
    status = claim_status(ack_277)
    assert "PCN-2001" not in status  # its transaction set was rejected by the 999
    assert el(status["PCN-1001"]["stc"][0], 1).startswith("A2:20")
    assert status["PCN-1001"]["refs"]["1K"]
    unknown = status["PCN-1002"]
    assert el(unknown["stc"][0], 1) == "A7:33:IL" and el(unknown["stc"][0], 3) == "U"
    assert "UNK000777" in el(unknown["stc"][0], 12)
    assert "1K" not in unknown["refs"] and unknown["refs"]["D9"]
    assert el(status["PCN-1003"]["stc"][0], 1).startswith("A2:20")
    bad_npi = status["PCN-1005"]
    assert el(bad_npi["stc"][0], 1) == "A7:562:82" and el(bad_npi["stc"][0], 10) == "A7:187"
    assert [(ln["fj"], el(ln["stc"], 1)) for ln in bad_npi["lines"]] == [("L1005-1", "A7:187"), ("L1005-2", "A7:187")]
    assert el(status["PCN-1006"]["stc"][0], 1) == "A7:158:IL"
    s277 = segments(ack_277)
    assert find(s277, "QTY", "90")[0][2] == "2" and find(s277, "QTY", "AA")[0][2] == "3"

    # 835 for the primary payer: accepted claims only, CLP07 = the 277CA's REF*1K, REF*6R echoed.
    (remit,) = read_835(remit_835)
    assert_balanced(remit)
    by_pcn = {c.clp[1]: c for c in remit.claims}
    assert sorted(by_pcn) == ["PCN-1001", "PCN-1003"]
    assert by_pcn["PCN-1001"].clp[7] == status["PCN-1001"]["refs"]["1K"]
    assert by_pcn["PCN-1003"].clp[7] == status["PCN-1003"]["refs"]["1K"]
    assert [ln.refs.get("6R") for ln in by_pcn["PCN-1001"].lines] == ["L1001-1", "L1001-2"]
    assert [ln.refs.get("6R") for ln in by_pcn["PCN-1003"].lines] == ["L1003-1", "L1003-2", "L1003-3"]
    assert by_pcn["PCN-1001"].lines[1].svc[1] == "HC:85025:59"
    # The dependent: patient in NM1*QC, the subscriber (with the member id) in NM1*IL.
    dep = by_pcn["PCN-1003"]
    assert dep.names["QC"][3:5] == ["SMITH", "LILY"] and dep.names["IL"][9] == "MBR2001"
    assert "IL" not in by_pcn["PCN-1001"].names
    assert remit.trn[3].startswith("1") and len(remit.trn[3]) == 10  # TRN03: 1 + payer tax id

    # The secondary claim: processed as secondary, what the primary paid shows as OA-23.
    (secondary,) = read_835(remit_835_sec)
    assert_balanced(secondary)
    (sec_claim,) = secondary.claims
    assert sec_claim.clp[1:3] == ["PCN-1004", "2"]
    assert ("OA", "23", Decimal("60")) in sec_claim.lines[0].adjustments


@pytest.mark.parametrize("fixture", [TR3_837, MOOV_837], ids=["tr3-commercial", "moov-8-claims"])
def test_third_party_837_files_flow_to_a_valid_835(tmp_path: Path, fixture: Path) -> None:
    # These samples carry placeholder NPIs; switch the NPI edit off so their claims reach adjudication.
    config = make_config(tmp_path / "root", payers={"default": {"check_npi": False}})
    drop(config, fixture.name, fixture.read_bytes())
    process_inbox_once(config)
    files = outputs(config)
    stem = fixture.name.rsplit(".", 1)[0]
    assert_valid(files[f"{stem}.999"])
    assert_valid(files[f"{stem}.277ca"])
    remits = [p for n, p in files.items() if n.endswith(".835")]
    assert remits
    pcns = set()
    for path in remits:
        assert_valid(path)
        for remit in read_835(path):
            assert_balanced(remit)
            for c in remit.claims:
                pcns.add(c.clp[1])
                # These files have no REF*6R, so the 835 lines have none either.
                assert all("6R" not in ln.refs for ln in c.lines)
    assert pcns and pcns <= {s[2] for s in find(segments(files[f"{stem}.277ca"]), "TRN", "2")}
    assert (config.root / "acme" / "archive" / fixture.name).read_bytes() == fixture.read_bytes()


def test_tr3_example_rejected_for_its_billing_npi(config: SandboxConfig) -> None:
    # 9876543210 fails the NPI check digit: a real clearinghouse would send it back, and so does the sandbox.
    drop(config, "tr3.edi", TR3_837.read_bytes())
    process_inbox_once(config)
    files = outputs(config)
    assert_valid(files["tr3.277ca"])
    stcs = [s for s in find(segments(files["tr3.277ca"]), "STC") if s[1].startswith("A7")]
    assert [s[1] for s in stcs] == ["A7:562:85"]
    assert not [n for n in files if n.endswith(".835")]


def test_same_input_same_output(tmp_path: Path) -> None:
    results = []
    for run in ("a", "b"):
        config = make_config(tmp_path / run)
        drop(config, "batch.837", sample_837())
        drop(config, "tr3.edi", TR3_837.read_bytes())
        process_inbox_once(config)
        results.append({n: p.read_bytes() for n, p in outputs(config).items()})
    assert results[0] == results[1]
    assert len(results[0]) >= 5


def test_names_are_never_reused(config: SandboxConfig) -> None:
    drop(config, "batch.837", sample_837())
    process_inbox_once(config)
    # A client that fetched the first answers moved them to outbox/archive/, as medbill's transport does.
    outbox = config.root / "acme" / "outbox"
    (outbox / "archive").mkdir()
    (outbox / "batch.999").rename(outbox / "archive" / "batch.999")
    drop(config, "batch.837", sample_837())
    process_inbox_once(config)
    files = outputs(config)
    assert "batch-2.999" in files and "batch-2.277ca" in files and "batch.277ca" in files
    assert sorted(p.name for p in (config.root / "acme" / "archive").iterdir() if ".validation" not in p.name) == [
        "batch.837",
        "batch.837.2",
    ]
    # Control numbers keep increasing across passes.
    icns = sorted(int(segments(p)[0][13]) for p in files.values())
    assert len(set(icns)) == len(icns)


def test_resubmitted_claims_are_denied_as_duplicates(config: SandboxConfig) -> None:
    drop(config, "first.837", sample_837())
    process_inbox_once(config)
    drop(config, "again.837", sample_837())
    written = process_inbox_once(config)
    (second,) = [p for p in written if "SBX01" in p.name]
    (remit,) = read_835(second)
    assert_balanced(remit)
    for c in remit.claims:
        assert c.clp[2] == "4" and c.clp[4] == "0"
        assert {(g, r) for ln in c.lines for g, r, _ in ln.adjustments} == {("CO", "18")}


def test_unreadable_file_gets_an_error_text(config: SandboxConfig) -> None:
    st_only = b"ST*837*0001*005010X222A1~BHT*0019*00*1*20250310*0900*CH~SE*3*0001~"
    drop(config, "naked.837", st_only)
    written = process_inbox_once(config)
    assert [p.name for p in written] == ["naked.error.txt"]
    assert "ISA" in written[0].read_text()
    assert (config.root / "acme" / "archive" / "naked.837").exists()


@pytest.mark.parametrize(
    "mangle, ik5",
    [
        (lambda b: b"\xef\xbb\xbf" + b, "R"),  # byte-order mark: not plain ASCII
        (lambda b: b.replace(b"GE*2*501", b"GE*3*501"), "A"),  # wrong set count: the group is rejected
        (lambda b: b[: b.index(b"SE*")], "R"),  # truncated after the first set's body
        (lambda b: b.replace(b"DMG*D8*19800115", b"DMG*D8*19801315"), "R"),  # impossible date
    ],
    ids=["bom", "ge-count", "truncated", "bad-date"],
)
def test_broken_interchanges_get_a_rejecting_999(config: SandboxConfig, mangle, ik5: str) -> None:
    drop(config, "broken.837", mangle(sample_837()))
    process_inbox_once(config)
    files = outputs(config)
    assert_valid(files["broken.999"])
    s999 = segments(files["broken.999"])
    assert find(s999, "IK5")[0][1] == ik5
    assert find(s999, "AK9")[0][1] == "R"
    assert "broken.277ca" not in files and not [n for n in files if n.endswith(".835")]
    assert (config.root / "acme" / "archive" / "broken.837.validation.txt").read_text().strip()


def test_unsupported_transaction_is_refused(config: SandboxConfig) -> None:
    sample_835 = X12_FIXTURES / "835" / "badX12__X221-multiple-claims-single-check.edi"
    drop(config, "wrong.835", sample_835.read_bytes())
    process_inbox_once(config)
    files = outputs(config)
    assert_valid(files["wrong.999"])
    s999 = segments(files["wrong.999"])
    assert find(s999, "AK1")[0][1] == "HP" and find(s999, "IK5")[0][1:] == ["R", "1"]
    assert find(s999, "AK9")[0][1] == "R" and "1" in find(s999, "AK9")[0][5:]
    assert set(files) == {"wrong.999"}


def test_directory_without_inbox_and_foreign_files_are_ignored(config: SandboxConfig) -> None:
    (config.root / "stray").mkdir(parents=True)
    (config.root / "stray" / "notes.txt").write_text("hello")
    (config.root / "readme.txt").write_text("hello")
    assert process_inbox_once(config) == []
    assert not (config.root / "stray" / "outbox").exists()
