"""Code sets and identifier checks billers rely on: NPI (Luhn), tax id, ICD-10-CM (the real code set, billable
codes only), CPT/HCPCS and modifier formats, place of service, relationship and claim filing codes."""

from __future__ import annotations

import re
from functools import lru_cache

import simple_icd_10_cm as icd

_NPI_RE = re.compile(r"^\d{10}$")
# CPT: 5 digits, or 4 digits + F/T (category II/III); HCPCS level II: a letter + 4 digits.
_PROCEDURE_RE = re.compile(r"^(\d{5}|\d{4}[FTU]|[A-V]\d{4})$")
_MODIFIER_RE = re.compile(r"^[A-Z0-9]{2}$")
_TAX_ID_RE = re.compile(r"^\d{9}$")
_TAXONOMY_RE = re.compile(r"^[0-9]{3}[0-9A-Z]{6}X$")

# CMS place of service code set (codes in use as of 2025).
PLACES_OF_SERVICE = {
    "01": "Pharmacy", "02": "Telehealth other than in patient's home", "03": "School", "04": "Homeless shelter",
    "05": "Indian Health Service free-standing facility", "06": "Indian Health Service provider-based facility",
    "07": "Tribal 638 free-standing facility", "08": "Tribal 638 provider-based facility",
    "09": "Prison/correctional facility", "10": "Telehealth provided in patient's home", "11": "Office",
    "12": "Home", "13": "Assisted living facility", "14": "Group home", "15": "Mobile unit",
    "16": "Temporary lodging", "17": "Walk-in retail health clinic", "18": "Place of employment-worksite",
    "19": "Off campus-outpatient hospital", "20": "Urgent care facility", "21": "Inpatient hospital",
    "22": "On campus-outpatient hospital", "23": "Emergency room-hospital", "24": "Ambulatory surgical center",
    "25": "Birthing center", "26": "Military treatment facility", "27": "Outreach site/street",
    "31": "Skilled nursing facility", "32": "Nursing facility", "33": "Custodial care facility", "34": "Hospice",
    "41": "Ambulance-land", "42": "Ambulance-air or water", "49": "Independent clinic",
    "50": "Federally qualified health center", "51": "Inpatient psychiatric facility",
    "52": "Psychiatric facility-partial hospitalization", "53": "Community mental health center",
    "54": "Intermediate care facility/individuals with intellectual disabilities",
    "55": "Residential substance abuse treatment facility", "56": "Psychiatric residential treatment center",
    "57": "Non-residential substance abuse treatment facility", "58": "Non-residential opioid treatment facility",
    "60": "Mass immunization center", "61": "Comprehensive inpatient rehabilitation facility",
    "62": "Comprehensive outpatient rehabilitation facility", "65": "End-stage renal disease treatment facility",
    "66": "Programs of all-inclusive care for the elderly", "71": "Public health clinic",
    "72": "Rural health clinic", "81": "Independent laboratory", "99": "Other place of service",
}  # fmt: skip

# Patient's relationship to the subscriber (837P 2000B SBR02 / 2000C PAT01).
RELATIONSHIPS = {
    "18": "Self", "01": "Spouse", "19": "Child", "20": "Employee", "21": "Unknown", "39": "Organ donor",
    "40": "Cadaver donor", "53": "Life partner", "G8": "Other relationship",
}  # fmt: skip

CLAIM_FILING_INDICATORS = {
    "11": "Other non-federal programs", "12": "PPO", "13": "POS", "14": "EPO", "15": "Indemnity",
    "16": "HMO Medicare risk", "17": "Dental maintenance organization", "AM": "Automobile medical",
    "BL": "Blue Cross/Blue Shield", "CH": "CHAMPUS (TRICARE)", "CI": "Commercial insurance",
    "DS": "Disability", "FI": "Federal employees program", "HM": "HMO", "LM": "Liability medical",
    "MA": "Medicare Part A", "MB": "Medicare Part B", "MC": "Medicaid", "OF": "Other federal program",
    "TV": "Title V", "VA": "Veterans affairs plan", "WC": "Workers' compensation", "ZZ": "Mutually defined",
}  # fmt: skip


def npi_check_digit(first_nine: str) -> str:
    """The Luhn check digit over 80840 + the first nine digits (CMS NPI standard)."""
    total = 0
    for i, digit in enumerate(int(d) for d in reversed("80840" + first_nine)):
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def npi_is_valid(npi: str) -> bool:
    """10 digits whose last is the check digit of the first nine."""
    if not isinstance(npi, str) or not _NPI_RE.match(npi):
        return False
    return npi_check_digit(npi[:9]) == npi[9]


def tax_id_is_valid(tax_id: str) -> bool:
    return bool(isinstance(tax_id, str) and _TAX_ID_RE.match(tax_id)) and tax_id not in {"000000000", "999999999"}


def taxonomy_is_valid(code: str | None) -> bool:
    return bool(code and _TAXONOMY_RE.match(code))


def procedure_code_is_valid(code: str) -> bool:
    return bool(isinstance(code, str) and _PROCEDURE_RE.match(code))


def modifier_is_valid(modifier: str) -> bool:
    return bool(isinstance(modifier, str) and _MODIFIER_RE.match(modifier))


def place_of_service_is_valid(code: str) -> bool:
    return code in PLACES_OF_SERVICE


def normalise_icd10(code: str) -> str:
    """'e119' / 'E11.9' / ' E119 ' → 'E11.9' (the dotted form the code set uses)."""
    raw = code.strip().upper().replace(".", "")
    return raw if len(raw) <= 3 else f"{raw[:3]}.{raw[3:]}"


@lru_cache(maxsize=20_000)
def icd10_problem(code: str) -> str | None:
    """None when `code` is a billable ICD-10-CM code; otherwise what is wrong with it, in words."""
    normal = normalise_icd10(code)
    if not icd.is_valid_item(normal):
        return f"{code!r} is not an ICD-10-CM code"
    if not icd.is_leaf(normal):
        return f"{normal} is a category, not a billable code: add the missing characters"
    return None


def icd10_description(code: str) -> str:
    return icd.get_description(normalise_icd10(code))
