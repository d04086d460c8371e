"""The memory API: Mem0's routes (routes.py), session handoff, and fact extraction through the
router (extract.py)."""
