"""What every fuzz target here shares: seed the corpus directories named on the command line
(those without a seed file yet), then hand the target to atheris."""

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import atheris


def run(test_one_input: Callable[[bytes], None], seeds: Callable[[], Mapping[str, bytes]]) -> None:
    for arg in sys.argv[1:]:
        corpus = Path(arg)
        if arg.startswith("-") or not corpus.is_dir() or any(corpus.glob("seed_*.bin")):
            continue
        for name, data in seeds().items():
            (corpus / f"seed_{name}.bin").write_bytes(data)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
