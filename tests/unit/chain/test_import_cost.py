"""The command line starts without web3: importing it costs about a second, which every
`fpai-node` command and every node start would pay (CI measured 4 minutes over the suite)."""

import subprocess
import sys


def test_the_cli_does_not_import_web3_until_a_chain_command_runs() -> None:
    probe = "import sys, fpai_node.cli; print(sorted(m for m in ('web3', 'eth_account', 'py_ecc') if m in sys.modules))"  # noqa: E501
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
