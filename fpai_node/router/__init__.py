"""Routing requests to the node that should serve them (specs/0006-routing.md)."""
