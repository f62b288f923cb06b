"""Job: register the patients of an uploaded CSV in one practice."""

from __future__ import annotations

from billing import patient_imports
from jobs.runtime import final_on_domain_error, runtime
from tenants.registry import get_practice


@final_on_domain_error
def import_patients(practice_slug: str, import_id: int) -> dict:
    rt = runtime()
    with rt.db.tenant_session(practice_slug) as session:
        practice_id = get_practice(session, practice_slug).id
        imp = patient_imports.get_import(session, import_id)
        data = rt.storage.get(imp.storage_key)
        result = patient_imports.run_import(session, import_id, data, practice_id=practice_id)
        session.commit()
    return result
