"""The event archive on S3 (versitygw, MinIO, AWS) through aiobotocore, with conditional puts."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from shared.adapters.archive import check_key
from shared.ports import EventArchive

# S3 answers a conditional write in flight against another one on the same key with 409; retrying
# settles it (the loser then gets 412 PreconditionFailed).
_CONFLICT_RETRIES = 5


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3EventArchive(EventArchive):
    """Objects in one bucket; put_once is `PutObject` with `If-None-Match: *`."""

    def __init__(self, client: Any, bucket: str, exit_stack: contextlib.AsyncExitStack | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self._exit_stack = exit_stack

    @classmethod
    async def open(
        cls, endpoint: str, bucket: str, access_key: str, secret_key: str, *, region: str = "us-east-1",
        max_connections: int = 50,
    ) -> S3EventArchive:
        """Connect and make sure the bucket exists (created when missing; idempotent)."""
        stack = contextlib.AsyncExitStack()
        config = AioConfig(
            s3={"addressing_style": "path"}, max_pool_connections=max_connections,
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30,
        )
        try:
            client = await stack.enter_async_context(get_session().create_client(
                "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
                aws_secret_access_key=secret_key, config=config,
            ))
            archive = cls(client, bucket, stack)
            await archive.ensure_bucket()
        except BaseException:
            await stack.aclose()
            raise
        return archive

    async def ensure_bucket(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _status(e) != 404 and _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        try:
            await self.client.create_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _code(e) != "BucketAlreadyOwnedByYou":
                raise

    async def put_once(self, key: str, body: bytes) -> bool:
        check_key(key)
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        for attempt in range(_CONFLICT_RETRIES + 1):
            try:
                await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ContentType=content_type
                )
                return True
            except ClientError as e:
                if _code(e) == "PreconditionFailed" or _status(e) == 412:
                    return False
                if _code(e) == "ConditionalRequestConflict" and attempt < _CONFLICT_RETRIES:
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                raise
        raise AssertionError("unreachable")

    async def get(self, key: str) -> bytes | None:
        check_key(key)
        try:
            resp = await self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404", "NotFound") or _status(e) == 404:
                return None
            raise
        async with resp["Body"] as stream:
            data: bytes = await stream.read()
        return data

    async def keys(self, prefix: str) -> list[str]:
        check_key(prefix, prefix=True)
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(obj["Key"] for obj in page.get("Contents", ()))
        return sorted(found)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{check_key(key)}"

    async def close(self) -> None:
        if self._exit_stack is not None:
            stack, self._exit_stack = self._exit_stack, None
            await stack.aclose()
