"""Content-addressed disk cache of compiled modules.

Deserializing compiled code trusts its input completely, so the disk cache only ever
loads files this package wrote: each file carries an HMAC-SHA256 tag under a random key
kept (0600) in the cache directory (0700). A file whose tag does not check is ignored
and rewritten, never loaded. The directory and the key must belong to this user and be
closed to others (`wasm_sandbox.home`), and only regular files are read, without blocking.
A write that fails (a full disk) leaves no temporary file: the module is then just not
cached, with one warning line.

A new module is written before it is returned, on the compiling thread: a writer thread of
its own made a cold run of a small module 0.7-0.8 ms slower (its GIL hand-offs), while the
write itself costs ~0.3 ms, and little beside compiling a large module
(`benchmarks/RESULTS.md`, "Module cache writes").
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime

from .errors import HomeError
from .home import private_dir, read_private, replace_file, write_new

_TAG = 32
_META_LEN = struct.Struct("<Q")


class ModuleCache:
    """Compiled `wasmtime.Module`s (and components) on disk by SHA-256 of their wasm bytes,
    each with the metadata bytes its compiler returned (under the same tag).

    ``fingerprint`` names the engine configuration and wasmtime version: code compiled
    under another configuration lives under another name and is never loaded.
    """

    def __init__(self, directory: Path | None, fingerprint: str) -> None:
        self._dir = private_dir(directory, "cache directory") if directory is not None else None
        self._fingerprint = fingerprint
        self._key = _cache_key(self._dir) if self._dir is not None else b""

    def get(
        self,
        digest: str,
        engine: wasmtime.Engine,
        compile: Callable[[], tuple[Any, bytes]],
        load: Callable[[wasmtime.Engine, bytes], Any] = wasmtime.Module.deserialize,
    ) -> tuple[Any, bytes, str]:
        """The module for ``digest``, its metadata and where it came from: ``disk`` (then
        ``load`` deserialized it: ``Component.deserialize`` for a component) or ``miss``
        (then ``compile`` made both)."""
        found = self._load(digest, engine, load)
        if found is not None:
            return *found, "disk"
        module, meta = compile()
        path = self._path(digest)
        if path is not None:
            self._store(path, digest, module, meta)
        return module, meta, "miss"

    def has(self, digest: str) -> bool:
        """Whether an entry for ``digest`` is on disk (it is still checked when loaded)."""
        path = self._path(digest)
        return path is not None and path.is_file()

    def _path(self, digest: str) -> Path | None:
        return None if self._dir is None else self._dir / f"{digest}.{self._fingerprint}.cwasm"

    def _load(
        self, digest: str, engine: wasmtime.Engine, load: Callable[[wasmtime.Engine, bytes], Any]
    ) -> tuple[Any, bytes] | None:
        path = self._path(digest)
        if path is None:
            return None
        blob = _read_entry(path)
        body, tag = blob[:-_TAG], blob[-_TAG:]
        if len(blob) <= _TAG or not hmac.compare_digest(tag, self._mac(digest, body)):
            return None
        (size,) = _META_LEN.unpack_from(body)
        start = _META_LEN.size + size
        return load(engine, body[start:]), body[_META_LEN.size : start]

    def _store(self, path: Path, digest: str, module: Any, meta: bytes) -> None:
        body = _META_LEN.pack(len(meta)) + meta + bytes(module.serialize())
        try:
            replace_file(path, body + self._mac(digest, body))
        except OSError as exc:
            logging.getLogger(__name__).warning(
                "wasm-sandbox: not caching the compiled module in %s (%s)",
                path.parent,
                exc.strerror,
            )

    def _mac(self, digest: str, body: bytes) -> bytes:
        name = f"{digest}.{self._fingerprint}".encode()
        return hmac.new(self._key, name + b"\0" + body, hashlib.sha256).digest()


def _read_entry(path: Path) -> bytes:
    """A cache file's bytes; empty when it is missing or not a regular file (never blocks)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _cache_key(directory: Path) -> bytes:
    """The cache's HMAC key, created once (0600) and published with ``link`` (of racing
    processes one wins and all use its key)."""
    path = directory / "cache.key"
    if not os.path.lexists(path):
        try:
            write_new(path, os.urandom(32))
        except OSError as exc:
            raise HomeError(f"cache key {path}: cannot write it ({exc.strerror})") from None
    key = read_private(path, "cache key")
    if len(key) != 32:
        raise HomeError(f"cache key {path} is {len(key)} bytes, not 32; remove it")
    return key
