"""The federation's treasury run from its nodes: operator bindings and ballots shared through the
registry, proposals and their execution on the chain (specs/0009-treasury.md, docs/treasury.md)."""
