"""Job (`posting` queue): post one 835 transaction set into one practice. Intake stored the file and routed the set;
the job reads the file again, takes the set by its content key and posts it in one transaction. Running it again
(a retry, the same set uploaded twice) posts nothing more: the set is recorded once per practice."""

from __future__ import annotations

from billing import edi_intake
from jobs.runtime import final_on_domain_error, runtime


@final_on_domain_error
def post_remittance_set(practice_slug: str, storage_key: str, content_key: str) -> dict:
    rt = runtime()
    data = rt.storage.get(storage_key)
    return edi_intake.post_stored_set(
        rt.db, practice_slug, data, storage_key=storage_key, content_key=content_key, dispatcher=rt.dispatcher
    )
