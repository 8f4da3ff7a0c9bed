"""Private files and folders of the embedded stack: owner-only from the moment they exist.

Secrets (S3 credentials, SeaweedFS JWT keys, signing keys) are created with mode 0600 by
``os.open`` itself, never written first and ``chmod``-ed after, so there is no moment at
which another local user could read them. Folders are 0700. Child processes of the stack
run with umask 077, so the files they write (broker and store data, logs) are owner-only.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; tighten it if it already exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` atomically, the file being 0600 from its creation."""
    private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def world_accessible(root: Path) -> list[Path]:
    """Every file or folder under ``root`` (itself included) that group or others may access."""
    found: list[Path] = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except OSError:
            continue  # vanished while walking (a live stack writes as we look)
        if path.is_symlink():
            continue
        if mode & 0o077:
            found.append(path)
    return found
