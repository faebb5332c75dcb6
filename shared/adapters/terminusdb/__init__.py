"""TerminusDB document store adapter (HTTP document API over aiohttp)."""
from shared.adapters.terminusdb.client import DataVersionMismatch, TerminusClient, TerminusError
from shared.adapters.terminusdb.document_store import TerminusDocumentStore

__all__ = ["DataVersionMismatch", "TerminusClient", "TerminusDocumentStore", "TerminusError"]
