"""The revenue-cycle domain: models in every practice schema and the services that act on them. Plain Python over
SQLAlchemy sessions; no Flask, RQ or S3 here."""
