"""One image, several entry points: ``reef operator``, ``reef agent``, ``reef version``."""

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="reef",
        description="Permanent WireGuard mesh addresses for Kubernetes nodes.",
        epilog="Settings come from REEF_* environment variables; see docs/settings.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("operator", help="run the allocation operator (kopf)")
    commands.add_parser("agent", help="run the node agent (WireGuard)")
    commands.add_parser("version", help="print the version")
    arguments = parser.parse_args(argv)

    if arguments.command == "operator":
        from reef.operator.main import run_operator

        return run_operator()
    if arguments.command == "agent":
        from reef.agent.main import run_agent

        return run_agent()
    from reef import __version__

    print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
