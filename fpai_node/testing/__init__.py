"""Helpers for tests, conformance and other implementations: vectors, fixtures, in-memory parts."""
