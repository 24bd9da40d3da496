"""Accounts, roles and Google SSO."""
