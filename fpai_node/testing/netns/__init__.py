"""A fault campaign in Linux network namespaces (issue 21).

N hosts as network namespaces on a bridge run a real federation (preset `federation`, a private
CA); a registry workload and chat requests come from the root namespace through the bridge while
six faults are injected and healed, and the history is checked afterwards. Needs root and
`ip netns`. Entry point: `python -m fpai_node.testing.netns --help`.

Modules, bottom up: `commands` (run `ip`), `namespaces` (enter one from a thread), `hosts`
(the bridge and its hosts), `links` (cut and heal), `tun_relay` (delay and loss), `probes`
(check that a fault took effect), `api_client` (HTTP to the nodes), `federation` (CA, homes,
node processes), `history` and `workload` (the registry operations), `chat`, `observers`
(status), `recovery` (after a heal), `faults`, `checks`, `report`, `campaign`, `cli`.
"""
