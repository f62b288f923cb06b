"""Alembic migrations: `shared/` for the registry, `tenant/` for the tables of every practice schema."""
