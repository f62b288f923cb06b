"""WSGI entry point for gunicorn: `gunicorn medbill.wsgi:app`."""

from medbill.app import create_app

app = create_app()
