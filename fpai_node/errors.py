"""User-facing errors: each one carries a message fit to print as a single line."""


class FpaiError(Exception):
    """An error the user can act on; the CLI prints `fpai-node: <message>` and exits non-zero."""


class ConfigError(FpaiError):
    """A bad value in node.toml, the environment or a flag."""


class IdentityError(FpaiError):
    """A missing, corrupt or unsafe node key."""


class NodeNotRunningError(FpaiError):
    """No node answers at the address a command was given or found."""
