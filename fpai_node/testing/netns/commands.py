"""Run `ip` and similar commands with a bounded wait and one clear error when they fail."""

import subprocess

import structlog

log = structlog.get_logger(__name__)

COMMAND_TIMEOUT_S = 20.0  # `ip` answers in milliseconds; a hang means a wedged kernel or lock


class CommandError(RuntimeError):
    """A command the campaign relies on failed: its output says why."""


def run(*argv: str, check: bool = True, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
    """Run `argv`, return its stdout; raise CommandError on a non-zero exit when `check`."""
    try:
        done = subprocess.run(  # noqa: S603 (fixed tools, arguments we built)
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]}: not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"{' '.join(argv)}: no answer within {timeout_s:g} s") from exc
    log.debug("command", argv=argv, exit=done.returncode)
    if check and done.returncode != 0:
        raise CommandError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """`ip [-n NAMESPACE] ARGS...`."""
    prefix = ("-n", namespace) if namespace else ()
    return run("ip", *prefix, *args, check=check)
