"""Fixtures for the sandbox clearinghouse tests: a config on a temp root with a pinned clock, and a hand-built 837P
that exercises every outcome (accepted, unknown member, dependent, secondary, bad NPI, future dates, unbalanced)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from integrations.sandbox import SandboxConfig
from tests.conftest import X12_FIXTURES
from tests.sandbox.helpers import INVALID_NPI, Txn, build_837, claim, dependent, subscriber

NOW = datetime(2025, 3, 10, 10, 30)
FIXTURES = X12_FIXTURES
TR3_837 = FIXTURES / "837p" / "badX12__X222-commercial-health-insurance.edi"
MOOV_837 = FIXTURES / "837p" / "moov-x12__example_5010_837p_sample.txt"


def make_config(root: Path, **kwargs) -> SandboxConfig:
    kwargs.setdefault("clock", lambda: NOW)
    return SandboxConfig(root=root, **kwargs)


def drop(config: SandboxConfig, name: str, data: bytes, account: str = "acme") -> Path:
    """Deliver like a well-behaved client: write ``<name>.part``, then rename."""
    inbox = config.root / account / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / (name + ".part")
    part.write_bytes(data)
    os.replace(part, inbox / name)
    return inbox / name


COB_2320 = [
    "SBR*P*18*PRIMGRP******CI",
    "AMT*D*60",
    "OI***Y*P**Y",
    "NM1*IL*1*BROWN*CAROL****MI*PRIM3001",
    "N3*1 ELM ST",
    "N4*SPRINGFIELD*IL*627010002",
    "NM1*PR*2*PRIMARY PAYER INC*****PI*PRIM01",
]
COB_2430 = ["SVD*PRIM01*60*HC:97110**1", "CAS*CO*45*40", "CAS*PR*2*20", "DTP*573*D8*20250305"]


def sample_837() -> bytes:
    """Two transaction sets: the first accepted (claims with various fates), the second unbalanced (999 R)."""
    first = Txn(
        entries=[
            (
                subscriber("MBR1001"),
                None,
                [claim("PCN-1001", [("99213", "150", "L1001-1"), ("85025:59", "100", "L1001-2")])],
            ),
            (subscriber("UNK000777", "ROE", "RICHARD"), None, [claim("PCN-1002", [("99212", "80", "L1002-1")])]),
            (
                subscriber("MBR2001", "SMITH", "ANNA", relationship=""),
                dependent(),
                [
                    claim(
                        "PCN-1003",
                        [("99214", "200", "L1003-1"), ("87880", "60", "L1003-2"), ("36415", "40.5", "L1003-3")],
                    )
                ],
            ),
            (
                subscriber(
                    "MBR3001", "BROWN", "CAROL", payer_id="SBX02", payer_name="SECOND CHOICE HEALTH", responsibility="S"
                ),
                None,
                [claim("PCN-1004", [("97110", "120", "L1004-1")], extra_after_hi=COB_2320, line_extra={1: COB_2430})],
            ),
            (
                subscriber("MBR4001", "GREEN", "GARY"),
                None,
                [
                    claim(
                        "PCN-1005",
                        [("99213", "150", "L1005-1"), ("99214", "210", "L1005-2")],
                        rendering_npi=INVALID_NPI,
                        dos="20250401",
                    )
                ],
            ),
            (
                subscriber("MBR5001", "WHITE", "WALTER", dob="20300101"),
                None,
                [claim("PCN-1006", [("99213", "150", "")])],
            ),
        ]
    )
    unbalanced = Txn(
        entries=[
            (
                subscriber("MBR6001", "BLACK", "BETTY"),
                None,
                [claim("PCN-2001", [("99213", "100", "L2001-1"), ("81002", "50", "L2001-2")], total="999")],
            )
        ],
        bht03="BATCH0002",
    )
    return build_837([first, unbalanced])


@pytest.fixture()
def config(tmp_path: Path) -> SandboxConfig:
    return make_config(tmp_path / "root")
