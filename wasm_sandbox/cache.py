"""Content-addressed disk cache of compiled modules.

Deserializing compiled code trusts its input completely, so the disk cache only ever
loads files this package wrote: each file carries an HMAC-SHA256 tag under a random key
kept (0600) in the cache directory (0700). A file whose tag does not check is ignored
and rewritten, never loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import wasmtime

_TAG = 32
_META_LEN = struct.Struct("<Q")


class ModuleCache:
    """Compiled `wasmtime.Module`s on disk by SHA-256 of their wasm bytes, each with the
    metadata bytes its compiler returned (under the same tag).

    ``fingerprint`` names the engine configuration and wasmtime version: code compiled
    under another configuration lives under another name and is never loaded.
    """

    def __init__(self, directory: Path | None, fingerprint: str) -> None:
        self._dir = directory
        self._fingerprint = fingerprint
        self._key = _cache_key(directory) if directory is not None else b""

    def get(
        self,
        digest: str,
        engine: wasmtime.Engine,
        compile: Callable[[], tuple[wasmtime.Module, bytes]],
    ) -> tuple[wasmtime.Module, bytes, str]:
        """The module for ``digest``, its metadata and where it came from: ``disk`` or
        ``miss`` (then ``compile`` made both)."""
        found = self._load(digest, engine)
        if found is not None:
            return *found, "disk"
        module, meta = compile()
        self._store(digest, module, meta)
        return module, meta, "miss"

    def has(self, digest: str) -> bool:
        """Whether an entry for ``digest`` is on disk (it is still checked when loaded)."""
        path = self._path(digest)
        return path is not None and path.is_file()

    def _path(self, digest: str) -> Path | None:
        return None if self._dir is None else self._dir / f"{digest}.{self._fingerprint}.cwasm"

    def _load(self, digest: str, engine: wasmtime.Engine) -> tuple[wasmtime.Module, bytes] | None:
        path = self._path(digest)
        try:
            blob = path.read_bytes() if path else b""
        except OSError:
            return None
        body, tag = blob[:-_TAG], blob[-_TAG:]
        if len(blob) <= _TAG or not hmac.compare_digest(tag, self._mac(digest, body)):
            return None
        (size,) = _META_LEN.unpack_from(body)
        start = _META_LEN.size + size
        return wasmtime.Module.deserialize(engine, body[start:]), body[_META_LEN.size : start]

    def _store(self, digest: str, module: wasmtime.Module, meta: bytes) -> None:
        path = self._path(digest)
        if path is None:
            return
        body = _META_LEN.pack(len(meta)) + meta + bytes(module.serialize())
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(body + self._mac(digest, body))
        os.replace(tmp, path)

    def _mac(self, digest: str, body: bytes) -> bytes:
        name = f"{digest}.{self._fingerprint}".encode()
        return hmac.new(self._key, name + b"\0" + body, hashlib.sha256).digest()


def _cache_key(directory: Path) -> bytes:
    """The cache's HMAC key, created once (0600) in a directory only we may write (0700).

    The key is written to a temporary file and published with ``link``, which fails when
    another process got there first; then its key is used.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / "cache.key"
    if not path.exists():
        tmp = directory / f"cache.key.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(os.urandom(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()
