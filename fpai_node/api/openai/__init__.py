"""The OpenAI-compatible API: request validation, response shapes, routes."""
