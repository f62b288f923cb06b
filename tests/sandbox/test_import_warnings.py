"""asyncssh's import is quiet: the sandbox server hides cryptography's "DSA is deprecated" warnings from asyncssh's
own modules (which `medbill up` used to print five times), and only those, only for the import."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

# After the import, warn from __main__ with the same category: the filter must not have outlived the import.
_SCRIPT = """
import warnings
import integrations.sandbox.server
from cryptography.utils import CryptographyDeprecationWarning
warnings.warn("still-visible-after-import", CryptographyDeprecationWarning)
"""


def test_importing_the_sandbox_server_prints_no_dsa_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-c", _SCRIPT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "DSA is deprecated" not in proc.stderr
    assert "still-visible-after-import" in proc.stderr
