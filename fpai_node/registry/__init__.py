"""The federation registry: commands and their pure application (specs/0005-registry.md)."""
