"""The event archive as files under a folder: each written once, atomically, never overwritten."""
from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

from shared.adapters.archive import check_key
from shared.ports import EventArchive

# A write goes to a temp file next to its target, then is hard-linked into place: link(2) fails with
# EEXIST when the key exists (O_CREAT|O_EXCL semantics), and a reader never sees a partial file.
_TEMP = re.compile(r"^\.tmp-[0-9a-f]{32}$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDirEventArchive(EventArchive):
    """Objects are files `root/<key>`; the embedded default when no S3 endpoint is configured."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(_TEMP.match(s) for s in key.split("/")):
            raise ValueError(f"archive key uses a reserved name: {key!r}")
        return self.root / key

    def _put_once(self, path: Path, body: bytes) -> bool:
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".tmp-{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            _fsync_dir(path.parent)
            return True
        finally:
            temp.unlink(missing_ok=True)

    async def put_once(self, key: str, body: bytes) -> bool:
        return await asyncio.to_thread(self._put_once, self._path(key), bytes(body))

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _keys(self, prefix: str) -> list[str]:
        base = self.root / prefix.rpartition("/")[0]
        found: list[str] = []
        for folder, _dirs, files in os.walk(base):
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                if _TEMP.match(name):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    found.append(key)
        return sorted(found)

    async def keys(self, prefix: str) -> list[str]:
        check_key(prefix, prefix=True)
        return await asyncio.to_thread(self._keys, prefix)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()
