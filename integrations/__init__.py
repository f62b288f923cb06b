"""Edges to the outside world: X12, clearinghouse, storage, PDF, agency formats."""
