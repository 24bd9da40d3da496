"""Helpers the test suite and `make test` share (no runtime code depends on them)."""
