"""Configuration of the sandbox clearinghouse: where it keeps files, how it listens, how its payers behave.

Owns ``SandboxConfig``, the default payer behaviour (``DEFAULT_PAYERS``), ``load_payers`` (a JSON file, numbers read
as Decimal) and ``PayerBehaviour``, the typed view of one payer's entry merged over the ``"default"`` entry.
Payer behaviour keys are documented in ``integrations/sandbox/README.md``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_PAYERS", "Denial", "PayerBehaviour", "SandboxConfig", "load_payers"]

DEFAULT_PAYERS: dict[str, Any] = {
    "default": {
        # Pricing: a fee schedule entry (per unit, keyed "CODE" or "CODE:MOD") wins over the percent of charge.
        "allowed_percent_of_charge": "62",
        "fee_schedule": {},
        # Patient share: per-member deductible (consumed across claims, remembered in the state file), then copay,
        # then coinsurance on what is left of the allowed amount.
        "deductible": "250.00",
        "coinsurance_percent": "20",
        "copay_by_place_of_service": {},
        "copay_by_code": {},
        # Denials: each service line is denied with this probability, decided by a hash of CLM01 + line number so a
        # run is reproducible; the reason is picked from this list by the same hash.
        "denial_rate": "0.1",
        "denials": [
            {"group": "CO", "reason": "50", "remarks": ["N115"]},  # not medically necessary (LCD)
            {"group": "CO", "reason": "16", "remarks": ["M51"]},  # lacks information: invalid procedure code
            {"group": "CO", "reason": "97", "remarks": ["M15"]},  # bundled into another service
            {"group": "CO", "reason": "29", "remarks": []},  # timely filing limit expired
            {"group": "CO", "reason": "197", "remarks": ["M62"]},  # precertification/authorization absent
            {"group": "PR", "reason": "204", "remarks": ["N130"]},  # not covered under the patient's benefit plan
            {"group": "CO", "reason": "18", "remarks": []},  # exact duplicate claim/service
        ],
        # Claims whose subscriber member id the payer does not know are rejected in the 277CA (A7:33:IL).
        "unknown_member_prefixes": ["UNK", "000"],
        "unknown_member_pattern": None,
        # Front-end edits (277CA rejections).
        "check_npi": True,
        "reject_future_dates": True,
        "timely_filing_days": None,  # e.g. 365: lines older than this at receipt are denied CO-29
        "detect_duplicates": True,  # the same claim (CLM01 + lines) adjudicated before -> CO-18 on every line
        # Remittance.
        "name": None,  # None: the name the 837 gave in NM1*PR
        "payment_method": "ACH",  # ACH or CHK
        "tax_id": None,  # None: derived from the payer id (9 digits, stable)
        "address": {"line1": "PO BOX 1000", "city": "SPRINGFIELD", "state": "IL", "zip": "627010000"},
        "technical_contact_phone": "8005550199",
        "interest_probability": "0",  # PLB L6 interest per 835 (payer paid late), decided by hash
        "interest_percent": "0.5",
    }
}


@dataclass(frozen=True)
class Denial:
    group: str
    reason: str
    remarks: tuple[str, ...]


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, float):
        # JSON from load_payers never yields floats; a float here came from Python code: take its shortest repr.
        value = repr(value)
    try:
        return Decimal(str(value))
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"payer setting {what}: not a number: {value!r}") from exc


@dataclass(frozen=True)
class PayerBehaviour:
    payer_id: str
    settings: Mapping[str, Any]

    @classmethod
    def for_payer(cls, payers: Mapping[str, Any], payer_id: str) -> PayerBehaviour:
        merged = copy.deepcopy(DEFAULT_PAYERS["default"])
        merged.update(payers.get("default", {}))
        merged.update(payers.get(payer_id, {}))
        return cls(payer_id, merged)

    def _get(self, key: str) -> Any:
        return self.settings.get(key)

    @property
    def allowed_percent(self) -> Decimal:
        return _dec(self._get("allowed_percent_of_charge"), "allowed_percent_of_charge")

    @property
    def fee_schedule(self) -> dict[str, Decimal]:
        return {str(k): _dec(v, f"fee_schedule.{k}") for k, v in (self._get("fee_schedule") or {}).items()}

    @property
    def deductible(self) -> Decimal:
        return _dec(self._get("deductible") or 0, "deductible")

    @property
    def coinsurance_percent(self) -> Decimal:
        return _dec(self._get("coinsurance_percent") or 0, "coinsurance_percent")

    @property
    def copay_by_pos(self) -> dict[str, Decimal]:
        items = (self._get("copay_by_place_of_service") or {}).items()
        return {str(k): _dec(v, f"copay_by_place_of_service.{k}") for k, v in items}

    @property
    def copay_by_code(self) -> dict[str, Decimal]:
        return {str(k): _dec(v, f"copay_by_code.{k}") for k, v in (self._get("copay_by_code") or {}).items()}

    @property
    def denial_rate(self) -> Decimal:
        return _dec(self._get("denial_rate") or 0, "denial_rate")

    @property
    def denials(self) -> list[Denial]:
        out = []
        for d in self._get("denials") or []:
            out.append(Denial(str(d["group"]), str(d["reason"]), tuple(str(r) for r in d.get("remarks") or ())))
        return out

    def member_unknown(self, member_id: str) -> bool:
        member_id = member_id.strip().upper()
        if any(member_id.startswith(p.upper()) for p in self._get("unknown_member_prefixes") or ()):
            return True
        pattern = self._get("unknown_member_pattern")
        return bool(pattern and re.search(pattern, member_id))

    @property
    def check_npi(self) -> bool:
        return bool(self._get("check_npi"))

    @property
    def reject_future_dates(self) -> bool:
        return bool(self._get("reject_future_dates"))

    @property
    def timely_filing_days(self) -> int | None:
        value = self._get("timely_filing_days")
        return None if value in (None, "") else int(value)

    @property
    def detect_duplicates(self) -> bool:
        return bool(self._get("detect_duplicates"))

    def name(self, from_837: str) -> str:
        return self._get("name") or from_837 or f"PAYER {self.payer_id}"

    @property
    def payment_method(self) -> str:
        method = str(self._get("payment_method") or "ACH").upper()
        return method if method in ("ACH", "CHK") else "ACH"

    @property
    def tax_id(self) -> str:
        configured = self._get("tax_id")
        if configured:
            return re.sub(r"\D", "", str(configured))[:9].rjust(9, "0")
        # Stable per payer id, so TRN03 (1 + tax id) tells payers apart as it does in real files.
        digest = int(hashlib.sha256(self.payer_id.encode()).hexdigest(), 16)
        return f"{90_000_000 + digest % 9_999_999:09d}"

    @property
    def address(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self._get("address") or {}).items()}

    @property
    def technical_contact_phone(self) -> str:
        return str(self._get("technical_contact_phone") or "8005550199")

    @property
    def interest_probability(self) -> Decimal:
        return _dec(self._get("interest_probability") or 0, "interest_probability")

    @property
    def interest_percent(self) -> Decimal:
        return _dec(self._get("interest_percent") or 0, "interest_percent")


def load_payers(path: Path) -> dict[str, Any]:
    """Payer behaviour from a JSON file ({"default": {...}, "<payer id>": {...}}); numbers stay exact (Decimal)."""
    data = json.loads(Path(path).read_text(), parse_float=Decimal)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: payer behaviour must be a JSON object keyed by payer id")
    return data


def _default_payers() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_PAYERS)


@dataclass
class SandboxConfig:
    """Where and how the sandbox runs. ``accounts`` maps SFTP user -> password; each sees only ``root/<user>``."""

    root: Path
    host: str = "127.0.0.1"
    sftp_port: int | None = None
    accounts: dict[str, str] = field(default_factory=dict)
    host_key_path: Path | None = None
    poll_seconds: float = 1.0
    remit_delay_seconds: float = 0.0
    payers: dict[str, Any] = field(default_factory=_default_payers)
    # The sandbox's notion of "now" (dates in outputs, future-date edits, remit due times); tests pin it.
    clock: Callable[[], datetime] = datetime.now
    # ISA/GS ids the sandbox uses when a received interchange does not say whom it was addressed to.
    interchange_id: str = "SANDBOXCH"
    # pyx12's check of received 837s against the implementation guide. pyx12 loads its maps again for every file
    # (about a second); a caller replaying many files of medbill's own, already checked, writer may turn it off.
    check_grammar: bool = True

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if self.host_key_path is not None:
            self.host_key_path = Path(self.host_key_path)
        for name in self.accounts:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
                raise ValueError(f"invalid sandbox account name {name!r} (letters, digits, _ and -)")

    def behaviour(self, payer_id: str) -> PayerBehaviour:
        return PayerBehaviour.for_payer(self.payers, payer_id)
