"""The ``sandbox-clearinghouse`` command (click), for ``medbill`` to register:
``main.add_command(sandbox_clearinghouse, "sandbox-clearinghouse")``; also ``python -m integrations.sandbox``.

Owns option parsing and signal handling only; everything else is ``run_sandbox``.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from .config import SandboxConfig, load_payers
from .server import host_key_fingerprint, run_sandbox

__all__ = ["sandbox_clearinghouse"]


def _accounts(values: tuple[str, ...]) -> dict[str, str]:
    accounts = {}
    for value in values:
        name, sep, password = value.partition(":")
        if not sep or not name or not password:
            raise click.BadParameter(f"expected NAME:PASSWORD, got {value!r}", param_hint="--account")
        accounts[name] = password
    return accounts


@click.command("sandbox-clearinghouse")
@click.option("--root", type=click.Path(path_type=Path), required=True, envvar="MEDBILL_SANDBOX_ROOT",
              help="directory holding <account>/inbox, outbox, archive")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True, help="SFTP listen address")
@click.option("--sftp-port", type=int, default=None, envvar="MEDBILL_SANDBOX_SFTP_PORT",
              help="SFTP port; omit for directory drop only")  # fmt: skip
# MEDBILL_SANDBOX_ACCOUNTS (space-separated NAME:PASSWORD) keeps the passwords off the command line, where `ps` shows
# them to every user of the machine; `medbill up` passes them that way.
@click.option("--account", "accounts", multiple=True, envvar="MEDBILL_SANDBOX_ACCOUNTS",
              help="SFTP account NAME:PASSWORD (repeatable; or MEDBILL_SANDBOX_ACCOUNTS)")  # fmt: skip
@click.option("--host-key", type=click.Path(path_type=Path), default=None, help="host key file (created if missing)")
@click.option("--poll", "poll_seconds", type=float, default=1.0, show_default=True, help="seconds between passes")
@click.option("--remit-delay", "remit_delay_seconds", type=float, default=0.0, show_default=True,
              help="seconds between the 277CA and the 835")  # fmt: skip
@click.option("--payers", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON file of payer behaviour keyed by payer id (with a 'default' entry)")  # fmt: skip
def sandbox_clearinghouse(
    root: Path,
    host: str,
    sftp_port: int | None,
    accounts: tuple[str, ...],
    host_key: Path | None,
    poll_seconds: float,
    remit_delay_seconds: float,
    payers: Path | None,
) -> None:
    """Run the sandbox clearinghouse: 837 in, 999 + 277CA + 835 out (a stand-in for the outside world)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = SandboxConfig(
        root=root,
        host=host,
        sftp_port=sftp_port,
        accounts=_accounts(accounts),
        host_key_path=host_key,
        poll_seconds=poll_seconds,
        remit_delay_seconds=remit_delay_seconds,
    )
    if payers is not None:
        config.payers = load_payers(payers)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if sftp_port is not None:
        click.echo(f"sandbox clearinghouse SFTP {host}:{sftp_port} host key {host_key_fingerprint(config)}")
    click.echo(f"sandbox clearinghouse watching {root}/<account>/inbox")
    run_sandbox(config, stop)
