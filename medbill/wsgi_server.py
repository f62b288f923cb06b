"""Runs gunicorn in-process for `medbill web` with the project's gunicorn configuration."""

from __future__ import annotations

from pathlib import Path

from gunicorn.app.wsgiapp import WSGIApplication

CONFIG = Path(__file__).resolve().parent.parent / "infra" / "gunicorn.conf.py"


class _App(WSGIApplication):
    def __init__(self, options: dict) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        if CONFIG.exists():
            self.load_config_from_file(str(CONFIG))
        for key, value in self._options.items():
            self.cfg.set(key, value)
        # gunicorn's own load_config sets app_uri from the command line; we replace it, so set it here.
        self.app_uri = self.cfg.wsgi_app or "medbill.wsgi:app"


def serve(*, host: str, port: int, processes: int) -> None:
    import sys

    sys.argv = ["gunicorn", "medbill.wsgi:app"]
    _App({"bind": f"{host}:{port}", "workers": processes}).run()
