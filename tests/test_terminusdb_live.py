"""The DocumentStore contract against a live TerminusDB server (only when TERMINUSDB_URL is set)."""
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from shared.adapters.terminusdb import TerminusDocumentStore
from shared.adapters.terminusdb import document_store as terminus_document_store
from shared.ports import DocumentStore
from tests.contracts.document_store import DocumentStoreContract

URL = os.environ.get("TERMINUSDB_URL") or os.environ.get("SPICE_TERMINUSDB_URL")

pytestmark = pytest.mark.skipif(
    not URL, reason="no live TerminusDB: set TERMINUSDB_URL (e.g. http://admin:root@127.0.0.1:6363); TerminusDB is "
                    "on no registry this machine reaches, so it was not verified live here")

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[TerminusDocumentStore]:
    # A catalog and a database-name prefix of this run's own, all dropped afterwards.
    store = TerminusDocumentStore(URL or "", catalog=f"SpiceTestCatalog_{RUN}", db_prefix=f"spicetest_{RUN}_")
    yield store
    for doc in await store.databases():
        await store.client.delete_db(store.terminus_db(doc["name"]))
    await store.client.delete_db(store.catalog)
    await store.close()


class TestTerminusDocumentStoreLive(DocumentStoreContract):
    @pytest.fixture
    def store(self, live: TerminusDocumentStore) -> DocumentStore:
        return live

    @pytest.fixture(autouse=True)
    def small_pages(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pages of three records: every listing of the contract crosses page boundaries."""
        monkeypatch.setattr(terminus_document_store, "VERSIONS_PAGE", 3)
