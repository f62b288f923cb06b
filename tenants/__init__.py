"""Tenancy: the shared registry (companies, practices, users, roles, tokens, agencies, audit), schema-scoped sessions,
provisioning and migrations of practice schemas."""
