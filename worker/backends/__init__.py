"""Adapters to outside systems, each behind an interface chosen by settings."""
