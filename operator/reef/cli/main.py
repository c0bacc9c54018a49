"""The ``reef`` CLI verbs, also installed as ``kubectl-reef`` (a kubectl plugin).

Exit codes: 0 success (``status``: the mesh is healthy), 1 the mesh is unhealthy,
2 the command could not do what was asked (the message says why).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reef.__main__ import CLI_VERBS as VERBS
from reef.api.names import DEFAULT_NETWORK, EXTERNAL_HOST_ROLE

if TYPE_CHECKING:
    from reef.cli.cluster import Cluster


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: like kubectl)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get("REEF_NAMESPACE", "reef-system"),
        help="namespace of the reef release (operator, host identities); default reef-system",
    )


def build_parser(prog: str = "reef") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    status = verbs.add_parser("status", help=VERBS["status"])
    _common(status)
    status.add_argument("--network", help="only this MeshNetwork")
    status.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    status.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    graph = verbs.add_parser("graph", help=VERBS["graph"])
    _common(graph)
    graph.add_argument("--network", help="only this MeshNetwork")
    graph.add_argument("--format", choices=["dot", "svg", "png"], default="dot")
    graph.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    key_dir = argparse.ArgumentParser(add_help=False)
    key_dir.add_argument(
        "--key-dir",
        type=Path,
        default=Path("~/.config/reef/keys"),
        help="where <NAME>.key (the private key, 0600) lives; default ~/.config/reef/keys",
    )
    join = verbs.add_parser("join", help=VERBS["join"], parents=[key_dir])
    _common(join)
    join.add_argument("name", help="MeshAgent name of this host (a DNS label)")
    join.add_argument("--network", default=DEFAULT_NETWORK)
    join.add_argument("--endpoint", help="host:port where members reach this host; omit behind NAT")
    join.add_argument("--address", help="ask for this permanent address (inside the pool, free)")
    join.add_argument("-o", "--output", type=Path, help="wg-quick config file (default: stdout)")
    join.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an address")
    join.add_argument(
        "--agent-kubeconfig",
        type=Path,
        metavar="FILE",
        help="instead of a wg-quick config: create the host's own identity (ServiceAccount"
        " reef-host-NAME) and write a kubeconfig for it, for `reef agent` on the host",
    )
    join.add_argument(
        "--host-role",
        default=EXTERNAL_HOST_ROLE,
        help="the chart's ClusterRole for external hosts (<release>-external-host)",
    )
    join.add_argument(
        "--token-hours", type=int, default=24 * 365, help="lifetime asked for the host's token"
    )

    showconf = verbs.add_parser("showconf", help=VERBS["showconf"], parents=[key_dir])
    _common(showconf)
    showconf.add_argument("name")
    showconf.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    leave = verbs.add_parser("leave", help=VERBS["leave"])
    _common(leave)
    leave.add_argument("name")
    leave.add_argument("--timeout", type=float, default=120.0)

    keygen = verbs.add_parser("keygen", help=VERBS["keygen"])
    keygen.add_argument("file", type=Path, help="private key file to create (never overwritten)")
    return parser


def _colour(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _keygen(path: Path) -> int:
    from reef.agent.keys import KeyFileError, load_or_create_key

    if path.suffix != ".key":
        print(f"reef keygen: {path}: the file name must end in .key", file=sys.stderr)
        return 2
    try:
        key, created = load_or_create_key(path.parent, path.stem)
    except KeyFileError as error:
        print(f"reef keygen: {error}", file=sys.stderr)
        return 2
    if not created:
        print(f"reef keygen: {path} exists; a key file is never overwritten", file=sys.stderr)
        return 2
    print(key.public_key().base64())
    return 0


def run(arguments: argparse.Namespace) -> int:
    from reef.cli.cluster import Cluster, Target

    cluster = Cluster(Target(arguments.kubeconfig, arguments.context, arguments.namespace))
    try:
        return _dispatch(cluster, arguments)
    finally:
        cluster.close()


def _dispatch(cluster: Cluster, arguments: argparse.Namespace) -> int:
    from reef.cli import join as joining

    if arguments.verb == "status":
        from reef.cli.status import gather
        from reef.cli.table import render_status

        report = gather(cluster, arguments.network)
        if arguments.output == "json":
            print(json.dumps(report.as_dict(), indent=2))
        elif arguments.output == "yaml":
            import yaml

            print(yaml.safe_dump(report.as_dict(), sort_keys=False), end="")
        else:
            print(render_status(report, colour=_colour(arguments.color)), end="")
        return 0 if report.healthy else 1
    if arguments.verb == "graph":
        from reef.cli.graph import render_dot
        from reef.cli.status import gather

        report = gather(cluster, arguments.network)
        dot = render_dot(report.pools, report.members)
        return _emit_graph(dot, arguments.format, arguments.output)
    key_dir = getattr(arguments, "key_dir", Path()).expanduser()
    if arguments.verb == "join":
        if arguments.agent_kubeconfig is not None:
            return _join_agent_identity(cluster, arguments)
        text = joining.join(
            cluster,
            name=arguments.name,
            network=arguments.network,
            endpoint=arguments.endpoint,
            address=arguments.address,
            key_dir=key_dir,
            timeout=arguments.timeout,
        )
        joining.write_private(arguments.output, text)
        if arguments.output is not None:
            print(
                f"{arguments.name} joined; wg-quick config in {arguments.output}", file=sys.stderr
            )
        return 0
    if arguments.verb == "showconf":
        joining.write_private(
            arguments.output, joining.showconf(cluster, name=arguments.name, key_dir=key_dir)
        )
        return 0
    from reef.cli.identity import remove_identity

    left = joining.leave(cluster, name=arguments.name, timeout=arguments.timeout)
    identity = remove_identity(cluster, arguments.name)
    if not left and not identity:
        print(f"reef leave: {arguments.name} is not a member", file=sys.stderr)
        return 2
    print(f"{arguments.name} left the mesh", file=sys.stderr)
    return 0


def _join_agent_identity(cluster: Cluster, arguments: argparse.Namespace) -> int:
    import yaml

    from reef.cli import join as joining
    from reef.cli.identity import ensure_identity, host_kubeconfig, host_user

    cluster.networks(arguments.network)
    token, seconds = ensure_identity(
        cluster, arguments.name, arguments.host_role, arguments.token_hours * 3600
    )
    config = host_kubeconfig(cluster.cluster_entry(), arguments.name, token)
    joining.write_private(arguments.agent_kubeconfig, yaml.safe_dump(config, sort_keys=False))
    lifetime = f"{seconds // 3600} h" if seconds is not None else "no expiry"
    endpoint = f" REEF_ENDPOINT={arguments.endpoint}" if arguments.endpoint else ""
    print(
        f"identity {host_user(cluster.target.namespace, arguments.name)} (token: {lifetime})"
        f" written to {arguments.agent_kubeconfig}. On the host run:\n"
        f"  REEF_EXTERNAL_HOST=true REEF_NODE_NAME={arguments.name}"
        f" REEF_NETWORK={arguments.network} REEF_KUBECONFIG={arguments.agent_kubeconfig}"
        f"{endpoint} reef agent",
        file=sys.stderr,
    )
    return 0


def _emit_graph(dot: str, fmt: str, output: Path | None) -> int:
    if fmt == "dot":
        if output is None:
            sys.stdout.write(dot)
        else:
            output.write_text(dot)
        return 0
    binary = shutil.which("dot")
    if binary is None:
        print(
            f"reef graph: --format {fmt} needs Graphviz's `dot` (apt-get install graphviz);"
            " --format dot works without it",
            file=sys.stderr,
        )
        return 2
    rendered = subprocess.run(
        [binary, f"-T{fmt}"], input=dot.encode(), capture_output=True, check=False
    )
    if rendered.returncode != 0:
        print(f"reef graph: dot failed: {rendered.stderr.decode()}", file=sys.stderr)
        return 2
    if output is None:
        sys.stdout.buffer.write(rendered.stdout)
    else:
        output.write_bytes(rendered.stdout)
    return 0


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of ``kubectl-reef`` (and of ``reef <verb>``)."""
    if prog is None:
        prog = "kubectl reef" if Path(sys.argv[0]).name == "kubectl-reef" else "reef"
    arguments = build_parser(prog).parse_args(argv)
    if arguments.verb == "keygen":
        return _keygen(arguments.file)
    from kubernetes.client.exceptions import ApiException

    from reef.cli.cluster import CliError

    try:
        return run(arguments)
    except CliError as error:
        print(f"{prog} {arguments.verb}: {error}", file=sys.stderr)
        return 2
    except ApiException as error:
        print(
            f"{prog} {arguments.verb}: the API server said {error.status} {error.reason}:"
            f" {error.body}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
