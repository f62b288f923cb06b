"""The people and organisations on an 837P, built from our rows: ASCII text (X12's character set), addresses,
the patient and the subscriber as persons, rendering providers."""

from __future__ import annotations

from billing.models import Coverage, Patient, Provider
from billing.text import to_ascii
from integrations.x12 import claim837 as x837


def ascii_text(value: str | None) -> str:
    """X12's character set is ASCII: 'Müller' goes out as 'Muller' (billing.text's one rule, which also applied at
    entry), and anything without an ASCII form is dropped."""
    return to_ascii(value) if value else ""


def address(line1, city, state, postal_code, line2="") -> x837.Address:
    return x837.Address(
        line1=ascii_text(line1), line2=ascii_text(line2), city=ascii_text(city), state=state, postal_code=postal_code
    )


def patient_person(patient: Patient) -> x837.Person:
    return x837.Person(
        last_name=ascii_text(patient.last_name),
        first_name=ascii_text(patient.first_name),
        middle_name=ascii_text(patient.middle_name),
        date_of_birth=patient.date_of_birth,
        sex=patient.sex,
        address=address(patient.address_line1, patient.city, patient.state, patient.postal_code, patient.address_line2),
    )


def subscriber_person(coverage: Coverage, patient: Patient) -> x837.Person:
    """The policy holder: the patient when the relationship is 18 (self), else the subscriber on the coverage."""
    if coverage.relationship_code == "18":
        return patient_person(patient)
    return x837.Person(
        last_name=ascii_text(coverage.subscriber_last_name),
        first_name=ascii_text(coverage.subscriber_first_name),
        date_of_birth=coverage.subscriber_date_of_birth,
        sex=coverage.subscriber_sex,
        address=address(
            coverage.subscriber_address_line1,
            coverage.subscriber_city,
            coverage.subscriber_state,
            coverage.subscriber_postal_code,
        ),
    )


def rendering_provider(provider: Provider) -> x837.RenderingProvider:
    return x837.RenderingProvider(
        npi=provider.npi,
        last_name=ascii_text(provider.last_name),
        first_name=ascii_text(provider.first_name),
        taxonomy_code=provider.taxonomy_code,
    )
