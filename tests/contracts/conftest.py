"""One anvil chain and one deployment per session; each test runs in a snapshot, reverted after."""

from collections.abc import Iterator

import pytest
from web3 import Web3

from fpai_node.testing.anvil import running_anvil
from fpai_node.testing.chain import Federation, deploy_federation, revert, snapshot


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


@pytest.fixture(scope="session")
def w3(anvil_url: str) -> Web3:
    return Web3(Web3.HTTPProvider(anvil_url))


@pytest.fixture(scope="session")
def deployed(w3: Web3) -> Federation:
    return deploy_federation(w3, operators=3)


@pytest.fixture
def fed(w3: Web3, deployed: Federation) -> Iterator[Federation]:
    """The session's federation, as deployed: whatever a test does is reverted after it."""
    taken = snapshot(w3)
    yield deployed
    revert(w3, taken)
