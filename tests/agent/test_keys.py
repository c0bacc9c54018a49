"""The node's private key: created once with mode 0600, reused, never silently replaced."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import kubernetes.client
import pytest

from reef.agent.keys import KeyFileError, key_path, load_or_create_key
from reef.dataplane import Key
from tests.support.mesh import MeshApi


def test_a_key_is_created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    key, created = load_or_create_key(tmp_path / "keys", "net")
    again, created_again = load_or_create_key(tmp_path / "keys", "net")

    assert created
    assert not created_again
    assert again == key
    path = key_path(tmp_path / "keys", "net")
    assert path.stat().st_mode & 0o777 == 0o600
    assert Key.from_base64(path.read_text().strip()) == key


def test_a_key_readable_by_others_is_refused_and_left_alone(tmp_path: Path) -> None:
    load_or_create_key(tmp_path, "net")
    path = key_path(tmp_path, "net")
    path.chmod(0o644)
    content = path.read_bytes()

    with pytest.raises(KeyFileError, match="mode 0644"):
        load_or_create_key(tmp_path, "net")
    assert path.read_bytes() == content


def test_a_key_file_with_garbage_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = key_path(tmp_path, "net")
    path.write_text("not a key\n")
    path.chmod(0o600)

    with pytest.raises(KeyFileError, match="does not hold a WireGuard private key"):
        load_or_create_key(tmp_path, "net")
    assert path.read_text() == "not a key\n"


def test_the_agent_exits_with_a_message_and_an_event_on_a_bad_key_file(
    kubeconfig: Path, mesh: MeshApi, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    node = unique_name("node")
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    bad = key_dir / "default.key"
    bad.write_text(Key.generate().base64() + "\n")
    bad.chmod(0o640)
    env = {
        **os.environ,
        "REEF_NODE_NAME": node,
        "REEF_KEY_DIR": str(key_dir),
        "REEF_KUBECONFIG": str(kubeconfig),
        "REEF_METRICS_PORT": "0",
        "REEF_LOG_FORMAT": "text",
    }
    result = subprocess.run(
        [sys.executable, "-m", "reef", "agent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert "chmod 600" in result.stderr + result.stdout
    assert bad.stat().st_mode & 0o777 == 0o640
    events = kubernetes.client.CoreV1Api(mesh.core.api_client).list_namespaced_event(
        "default", field_selector=f"involvedObject.name={node},reason=KeyError"
    )
    assert events.items, "a KeyError Event names the node's MeshAgent"
