"""The immutable event archive: S3 (versitygw, MinIO, AWS) or a local directory when no endpoint is set."""
from __future__ import annotations

from shared.config import Settings
from shared.ports import EventArchive


def check_key(key: str, *, prefix: bool = False) -> str:
    """A key (or a listing prefix) as given, or ValueError when it could escape or alias another key.

    Keys look like `db/class/instance/0000000001/<event_id>.json`: relative, no `..`, no empty or `.`
    segments, no NUL. A prefix may be empty and may end with `/`.
    """
    if not isinstance(key, str):
        raise ValueError(f"archive key must be a string, not {type(key).__name__}")
    if not key and not prefix:
        raise ValueError("archive key must not be empty")
    if key.startswith("/"):
        raise ValueError(f"archive key must not start with '/': {key!r}")
    if ".." in key or "\0" in key or "\\" in key:
        raise ValueError(f"archive key must not contain '..', NUL or backslash: {key!r}")
    segments = key.split("/")
    if prefix:
        segments = segments[:-1]  # the last part of a prefix may be partial or empty
    if any(s in ("", ".") for s in segments):
        raise ValueError(f"archive key has an empty or '.' segment: {key!r}")
    return key


async def open_archive(settings: Settings) -> EventArchive:
    """S3 when settings.s3_endpoint is set (the bucket is created if missing), else home/archive."""
    if settings.s3_endpoint:
        from shared.adapters.archive.s3 import S3EventArchive

        return await S3EventArchive.open(
            settings.s3_endpoint, settings.s3_bucket, settings.s3_access_key, settings.s3_secret_key
        )
    from shared.adapters.archive.local_dir import LocalDirEventArchive

    return LocalDirEventArchive(settings.home / "archive")


__all__ = ["check_key", "open_archive"]
