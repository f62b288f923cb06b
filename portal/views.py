"""Portal pages (placeholder until the portal shell lands)."""

from flask import Blueprint

bp = Blueprint("portal", __name__)
