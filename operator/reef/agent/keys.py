"""The node's WireGuard private key: created once, kept on the host, never replaced.

The key lives in ``<key_dir>/<network>.key`` (base64, as ``wg genkey`` writes it),
mode 0600. A file that is there but wrong — readable by others, or not a key — is
an error the admin must look at: silently generating a new key would change the
node's identity in the mesh and hide a tampered or corrupted file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from reef.dataplane import InvalidKeyError, Key

KEY_MODE = 0o600


class KeyFileError(RuntimeError):
    """The key file exists but cannot be used; the message says what to do."""


def key_path(key_dir: Path, network: str) -> Path:
    return key_dir / f"{network}.key"


def load_key(path: Path) -> Key:
    """Read an existing key file, refusing loose permissions and malformed content."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(
            f"{path} is not a regular file; remove it or point REEF_KEY_DIR elsewhere"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"{path} has mode {mode:04o}; a private key must not be readable by group or"
            f" others (expected {KEY_MODE:04o}): check who changed it, then `chmod 600 {path}`"
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        return Key.from_base64(text)
    except InvalidKeyError as error:
        raise KeyFileError(
            f"{path} does not hold a WireGuard private key (expected 44 base64 characters,"
            f" as `wg genkey` prints): {error}. It is not replaced automatically, because a"
            " new key changes this node's identity; restore it, or delete it to start over"
        ) from error


def load_or_create_key(key_dir: Path, network: str) -> tuple[Key, bool]:
    """The private key for ``network``, and whether it was created just now."""
    path = key_path(key_dir, network)
    with contextlib.suppress(FileNotFoundError):
        return load_key(path), False
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Key.generate()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key.base64() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            # link(), unlike rename(), fails when the name exists: two agents racing
            # at first start keep the first key, never a silent overwrite.
            os.link(temporary, path)
        except FileExistsError:
            return load_key(path), False
    finally:
        temporary.unlink(missing_ok=True)
    return key, True
