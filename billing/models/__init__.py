"""Tables that live in every practice schema (placed there by schema_translate_map), one module per area of the
revenue cycle; everything is re-exported here so callers write `from billing.models import Claim`."""

from billing.models.collections import *  # noqa: F403
from billing.models.core import *  # noqa: F403
from billing.models.denials import *  # noqa: F403
from billing.models.statements import *  # noqa: F403
