"""Governance HTML views, one module per area."""
