"""Which driver failures are transient (a store or the broker away for now), for the retry policy."""
from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from botocore.exceptions import ConnectionError as S3ConnectionError
from botocore.exceptions import HTTPClientError as S3HTTPClientError

# Store unreachable, connection dropped, server shutting down or refusing connections for now, a
# timeout, a serialisation/deadlock abort: the same attempt can succeed later, unchanged.
_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionError, ConnectionRefusedError, socket errors
    TimeoutError,  # asyncio.TimeoutError is this class on 3.11
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError, ...
    asyncpg.OperatorInterventionError,  # AdminShutdownError, CannotConnectNowError, CrashShutdownError
    asyncpg.InsufficientResourcesError,  # TooManyConnectionsError, disk full
    asyncpg.TransactionRollbackError,  # SerializationError, DeadlockDetectedError
    KafkaConnectionError,
    KafkaTimeoutError,
    S3ConnectionError,  # the S3 archive unreachable (EndpointConnectionError, connect timeout)
    S3HTTPClientError,  # the S3 connection dropped or read timed out mid-request
)


def is_transient(exc: BaseException) -> bool:
    """True for failures of the environment (worth retrying as is), False for a bug or a bad message."""
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        # 'connection is closed', 'pool is closing': the connection went away under us. Other
        # interface errors (e.g. 'another operation is in progress') are programming errors.
        text = str(exc).lower()
        return "closed" in text or "closing" in text or "connection" in text
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
