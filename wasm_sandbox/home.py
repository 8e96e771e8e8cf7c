"""The sandbox home's private places: refused unless only this user can change them.

Whoever can write the home, ``keys/``, ``cache/`` or a key file can swap keys or the
compiled code this process loads, so each is checked before use, at its real path (symlinks
followed): it must be owned by this user and have no group or other write bit. Every parent
up to ``/`` must be owned by this user or root and not writable by others unless sticky
(like ``/tmp``), or it could be renamed away. Non-regular files (FIFOs, devices,
directories) are refused without blocking. Every problem is one `HomeError` line that says
how to fix it.

Example::

    keys = private_dir(home / "keys", "key directory", mode=0o700)
    data = read_private(keys / "signing.pem", "key file")
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import HomeError

_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def private_dir(path: Path, what: str, *, forbidden: int = _OTHERS_WRITE) -> Path:
    """``path`` as a directory only this user can write (created 0700); its real path.

    ``forbidden`` are mode bits the directory may not have (``0o077``: private to the user).
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise HomeError(f"{what} {path} is not a directory (a file or a dangling link)") from None
    except OSError as exc:
        raise HomeError(f"{what} {path}: cannot create it ({exc.strerror})") from None
    try:
        real = path.resolve(strict=True)
        info = real.stat()
    except (OSError, RuntimeError) as exc:
        raise HomeError(f"{what} {path}: cannot resolve it ({exc})") from None
    _check_owner_mode(real, info, what, forbidden)
    _check_parents(real, what)
    if not os.access(real, os.W_OK | os.X_OK):
        raise HomeError(f"{what} {real} is not writable; run chmod u+rwx {real}")
    return real


def read_private(path: Path, what: str, *, forbidden: int = 0o077) -> bytes:
    """The bytes of a regular file owned by this user without the ``forbidden`` mode bits.

    Opens without following a final symlink and without blocking (a FIFO never hangs).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise HomeError(f"{what} {path}: cannot open it ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HomeError(f"{what} {path} is not a regular file; remove it")
        _check_owner_mode(path, info, what, forbidden)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> bool:
    """Publish ``data`` at ``path`` unless it exists; whether this call created it.

    The data goes to a 0600 temporary file beside ``path``, fsynced and hard-linked into
    place (``link`` fails if another process got there first). The temporary file is
    removed whatever happens, so a full disk leaves nothing half-written.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def replace_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (0600); the temp file never outlives a failure."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _check_owner_mode(path: Path, info: os.stat_result, what: str, forbidden: int) -> None:
    if info.st_uid != os.geteuid():
        raise HomeError(
            f"{what} {path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()}); "
            f"use a home of your own (--home or WASM_SANDBOX_HOME)"
        )
    mode = info.st_mode & 0o777
    if mode & forbidden:
        wanted = mode & ~forbidden & 0o777
        raise HomeError(f"{what} {path} has mode {mode:04o}; run chmod {wanted:o} {path}")


def _check_parents(real: Path, what: str) -> None:
    """Every parent is owned by this user or root, and only sticky ones are open to others."""
    for parent in real.parents:
        info = parent.stat()
        if info.st_uid not in (0, os.geteuid()):
            raise HomeError(
                f"{what} {real} is inside {parent}, owned by uid {info.st_uid}, who could "
                "replace it; use a home of your own"
            )
        if info.st_mode & _OTHERS_WRITE and not info.st_mode & stat.S_ISVTX:
            raise HomeError(
                f"{what} {real} is inside {parent} (mode {info.st_mode & 0o777:04o}), which "
                f"others can write; run chmod go-w {parent}"
            )
