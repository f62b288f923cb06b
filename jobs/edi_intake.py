"""Job (`default` queue): read an uploaded EDI file that the request only stored and recorded (`EdiIntake`), route
and apply it (each 835 set queued on `posting`), and write the outcome for the uploader to poll. The parse happens
here, in a work horse, never in a web process."""

from __future__ import annotations

from billing import edi_intake
from jobs.runtime import final_on_domain_error, runtime


@final_on_domain_error
def run_upload(intake_id: int) -> dict:
    rt = runtime()
    return edi_intake.run_recorded_upload(rt.db, rt.storage, rt.dispatcher, intake_id)
