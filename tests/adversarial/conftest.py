"""Every attack here runs against a federation in each trust mode (issue 13): `open`, where the
attacker needs no one's leave, and `federation`, where it is a member the CA certified."""

import pytest

from fpai_node.testing.trust import TRUST_MODES, Trust


@pytest.fixture(scope="module", params=TRUST_MODES)
def trust(request: pytest.FixtureRequest) -> Trust:
    return Trust.create(request.param)
