"""Owner-only files: the keyring, its key files and exports that carry a pre-shared key.

`read_owner_only` refuses a file that its group or others may access (mode & 0o077);
`write_owner_only` replaces a file atomically (temporary file + os.replace) with mode 0600.
Failures raise ConfigError naming the file, never its content.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from pipeline.errors import ConfigError


def check_owner_only(path: Path) -> None:
    """ConfigError unless `path` exists and grants nothing to group or others."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        raise ConfigError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"key material must be owner-only: chmod 600 {path}"
        )


def read_owner_only(path: Path) -> bytes:
    """The bytes of an owner-only file; ConfigError if it is missing, unreadable or too open."""
    check_owner_only(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def write_owner_only(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, mode 0600 (readers never see a partial file)."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    _fsync_directory(path.parent)


def create_owner_only(path: Path, data: bytes) -> None:
    """Create a new file with mode 0600; ConfigError if it already exists (keys are never overwritten)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite key material") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def make_private_dir(path: Path) -> None:
    """Create directory `path` (and missing parents) with mode 0700 unless it already exists."""
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise ConfigError(f"cannot create directory {path}: {exc.strerror}") from None


def _fsync_directory(path: Path) -> None:
    # Makes the rename itself durable; best effort where directories cannot be opened.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
