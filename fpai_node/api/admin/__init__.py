"""Operator routes of the client API (/fpai/v1/...)."""
