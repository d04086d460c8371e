"""Cut and heal links between hosts with permanent neighbour entries.

This kernel has no netem, iptables or tc actions. A permanent neighbour entry that maps the
peer's address to a MAC address nobody has sends every frame for that peer into the void: the
bridge floods it, no interface takes it, and the sender sees silence, as in a real partition
(no RST, no ICMP). Both ends get an entry, so neither direction passes.
"""

from collections.abc import Iterable

import structlog

from fpai_node.testing.netns.commands import ip
from fpai_node.testing.netns.hosts import Host

log = structlog.get_logger(__name__)

NOWHERE_MAC = "02:00:00:00:00:99"  # locally administered, unicast, and on no interface here

Link = frozenset[Host]


def link(a: Host, b: Host) -> Link:
    return frozenset((a, b))


def between(side: Iterable[Host], other: Iterable[Host]) -> set[Link]:
    """Every link from a host in `side` to a host in `other`."""
    return {link(a, b) for a in side for b in other if a != b}


def _ends(cut: Link) -> tuple[Host, Host]:
    a, b = sorted(cut, key=lambda h: h.index)
    return a, b


def cut(links: Iterable[Link]) -> None:
    for each in links:
        a, b = _ends(each)
        for here, there in ((a, b), (b, a)):
            ip(
                "neigh", "replace", there.address, "lladdr", NOWHERE_MAC,
                "dev", here.interface, "nud", "permanent", namespace=here.namespace,
            )  # fmt: skip
    log.info("links cut", links=sorted(label(each) for each in links))


def heal(links: Iterable[Link]) -> None:
    """Remove the entries; the next packet re-resolves the peer's real MAC address by ARP."""
    for each in links:
        a, b = _ends(each)
        for here, there in ((a, b), (b, a)):
            ip(
                "neigh", "del", there.address, "dev", here.interface,
                namespace=here.namespace, check=False,
            )  # fmt: skip
    log.info("links healed", links=sorted(label(each) for each in links))


def label(each: Link) -> str:
    a, b = _ends(each)
    return f"{a.name}-{b.name}"
