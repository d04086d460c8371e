"""`python -m fpai_node.testing.netns`: run the fault campaign and write its report.

Exit status: 0 every check passed, 1 some check failed (the report says which), 2 bad
arguments or a machine that cannot run it, 3 the campaign itself broke (a fault that did not
take effect, a federation that did not form).
"""

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import NoReturn

import structlog

from fpai_node.log import configure_logging
from fpai_node.testing.netns.campaign import FULL, CampaignConfig, Timing, run_campaign
from fpai_node.testing.netns.faults import FAULT_NAMES
from fpai_node.testing.netns.preflight import unavailable

log = structlog.get_logger(__name__)

PROG = "python -m fpai_node.testing.netns"
SIZES = (3, 5, 7)  # every node votes (--registry-voters N), and the registry takes 3, 5 or 7


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, choices=SIZES, default=3)
    parser.add_argument(
        "--faults",
        default="all",
        help=f"all, or a comma-separated list of {', '.join(FAULT_NAMES)}",
    )
    parser.add_argument("--report", type=Path, default=Path("build/faults"), help="directory")
    parser.add_argument("--hold", type=float, default=FULL.hold_s, help="seconds per fault")
    parser.add_argument("--baseline", type=float, default=FULL.baseline_s, help="seconds")
    parser.add_argument(
        "--observe", type=float, default=FULL.observe_cap_s, help="recovery cap, seconds"
    )
    parser.add_argument("--model-nodes", type=int, default=1, help="hosts serving the model")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--keep-workdir", action="store_true", help="keep homes for a post-mortem")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    args = parser.parse_args(argv)
    names = list(FAULT_NAMES) if args.faults == "all" else args.faults.split(",")
    unknown = [n for n in names if n not in FAULT_NAMES]
    if unknown or not names:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(FAULT_NAMES)}")
    args.fault_names = names
    if min(args.hold, args.baseline) < 0 or args.observe <= 0:
        parser.error("--hold and --baseline must be >= 0 and --observe > 0")
    if not 0 <= args.model_nodes <= args.nodes:
        parser.error(f"--model-nodes must be between 0 and --nodes ({args.nodes})")
    return args


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` tears down what was started


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    configure_logging("auto", args.log_level)
    reason = unavailable()
    if reason:
        print(f"{PROG}: {reason}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupted)
    config = CampaignConfig(
        nodes=args.nodes,
        faults=args.fault_names,
        report_dir=args.report,
        timing=Timing(args.baseline, args.hold, args.observe),
        model_nodes=args.model_nodes,
        seed=args.seed,
        keep_workdir=args.keep_workdir,
    )
    try:
        result = run_campaign(config)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        log.exception("the campaign broke")
        print(f"{PROG}: the campaign broke: {exc}", file=sys.stderr)
        return 3
    assert result.markdown is not None
    print(result.markdown.read_text())
    print(f"report: {result.markdown} and {result.json}")
    return 1 if result.failures() else 0
