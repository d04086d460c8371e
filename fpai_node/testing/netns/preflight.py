"""What the campaign needs from the machine, said in one line when it is missing."""

import os
from pathlib import Path

from fpai_node.testing.netns.commands import CommandError, ip
from fpai_node.testing.netns.hosts import PREFIX

TUN_DEVICE = Path("/dev/net/tun")  # the slow-links fault's relay needs it


def unavailable() -> str | None:
    """Why the campaign cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root: network namespaces, bridges and TUN devices are privileged"
    trial = f"{PREFIX}-{os.getpid()}-preflight"  # a leftover of it is removed like any other
    try:
        ip("netns", "add", trial)
        ip("netns", "delete", trial)
    except CommandError as exc:
        return f"`ip netns` is unavailable ({exc})"
    if not TUN_DEVICE.exists():
        return f"{TUN_DEVICE} is missing: no TUN devices for the delay relay"
    return None
