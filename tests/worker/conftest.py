"""Fixtures for the worker's adapters: local stand-ins for the outside systems."""

from tests.fakes.vertex_server import vertex_server as vertex_server
