"""Who may do what: a user's role on a database, and the role each command needs."""
from __future__ import annotations

from shared.domain.access import Role
from shared.domain.commands import CommandType
from shared.ports import CommandLog, DocumentStore

# CREATE_DATABASE needs no role: any authenticated user may create a database (and becomes its admin).
REQUIRED: dict[CommandType, Role | None] = {
    CommandType.CREATE_DATABASE: None,
    CommandType.DELETE_DATABASE: Role.ADMIN,
    CommandType.GRANT_ROLE: Role.ADMIN,
    CommandType.CREATE_ONTOLOGY_CLASS: Role.WRITER,
    CommandType.UPDATE_ONTOLOGY_CLASS: Role.WRITER,
    CommandType.DELETE_ONTOLOGY_CLASS: Role.WRITER,
    CommandType.CREATE_INSTANCE: Role.WRITER,
    CommandType.UPDATE_INSTANCE: Role.WRITER,
    CommandType.DELETE_INSTANCE: Role.WRITER,
    CommandType.BULK_CREATE_INSTANCES: Role.WRITER,
    CommandType.RECONCILE_DATABASE: Role.ADMIN,
    CommandType.REQUEST_REPLAY: Role.ADMIN,
    CommandType.APPROVE_REPLAY: Role.ADMIN,
    CommandType.REJECT_REPLAY: Role.ADMIN,
    CommandType.COMPLETE_REPLAY: Role.ADMIN,
}


async def role_of(docs: DocumentStore, commands: CommandLog, admin_user: str, db_name: str,
                  user: str) -> Role | None:
    if user == admin_user:
        return Role.ADMIN
    grant = await docs.grant(db_name, user)
    if grant is not None and grant.get("role"):
        return Role(grant["role"])
    # The database may still be on its way: its creator is its admin from the moment it is recorded.
    if await docs.database(db_name) is None and await commands.pending_creator(db_name) == user:
        return Role.ADMIN
    return None
