"""Choosing the document store: TerminusDB when a URL is configured, else the embedded PostgreSQL one."""
from __future__ import annotations

from shared.adapters.postgres.document_store import PostgresDocumentStore
from shared.adapters.postgres.pool import Pool
from shared.adapters.terminusdb.document_store import TerminusDocumentStore
from shared.config import Settings
from shared.ports import DocumentStore


def open_document_store(settings: Settings, pool: Pool) -> DocumentStore:
    """TerminusDocumentStore for settings.terminusdb_url (Basic auth from the URL, e.g.
    http://admin:root@127.0.0.1:6363; organisation, catalog and database prefix from the settings);
    PostgresDocumentStore(pool) when it is empty."""
    if not settings.terminusdb_url:
        return PostgresDocumentStore(pool)
    return TerminusDocumentStore(settings.terminusdb_url, org=settings.terminusdb_org,
                                 catalog=settings.terminusdb_catalog, db_prefix=settings.terminusdb_prefix)
