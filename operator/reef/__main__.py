"""One image, several entry points: ``reef operator``, ``reef agent``, ``reef version`` and
the CLI verbs.

The CLI verbs (``reef status``, ``graph``, ``join``, ``showconf``, ``leave``, ``keygen``;
also installed as ``kubectl-reef``) live in :mod:`reef.cli` and are imported only when
one is asked for, so the agent's and operator's start-up never loads them.
"""

import sys
from collections.abc import Sequence

#: CLI verbs and their one-line help (the parsers themselves are in reef.cli.main).
CLI_VERBS = {
    "status": "the mesh's health at a glance (exit code 1 when unhealthy)",
    "graph": "the mesh as a Graphviz graph",
    "join": "add a host outside the cluster",
    "showconf": "print a joined host's wg-quick config again",
    "leave": "remove a joined host",
    "keygen": "create a WireGuard private key file",
}


#: What ``reef agent`` imports before it can configure its interface.
AGENT_MODULES = ("reef.agent.main", "reef.dataplane.select")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["agent"]:
        # The DaemonSet's command, on the path to a node's first packet: no parser built
        # (importing argparse and building it is ≈ 6 ms before the node registers).
        return _agent()
    if args and args[0] in CLI_VERBS:
        from reef.cli.main import main as cli_main

        return cli_main(args, prog="reef")
    import argparse

    parser = argparse.ArgumentParser(
        prog="reef",
        description="Permanent WireGuard mesh addresses for Kubernetes nodes.",
        epilog="Settings come from REEF_* environment variables; see docs/settings.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("operator", help="run the allocation operator (kopf)")
    commands.add_parser("agent", help="run the node agent (WireGuard)")
    commands.add_parser("version", help="print the version")
    for verb, summary in CLI_VERBS.items():
        commands.add_parser(verb, help=summary)
    arguments = parser.parse_args(args)

    if arguments.command == "operator":
        from reef.operator.main import run_operator

        return run_operator()
    if arguments.command == "agent":
        return _agent()
    from reef import __version__

    print(__version__)
    return 0


def _agent() -> int:
    # Registered first, with the standard library only, while the agent's libraries
    # load: the operator allocates the address meanwhile (reef.agent.early).
    from reef.agent.early import register_early

    early = register_early(modules=AGENT_MODULES)
    from reef.agent.main import run_agent

    return run_agent(early)


if __name__ == "__main__":
    sys.exit(main())
