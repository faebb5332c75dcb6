"""Objects on their way: recorded creates not executed yet, and events appended but not yet applied."""
from __future__ import annotations

from shared.domain.commands import AggregateType
from shared.ports import CommandLog, EventStore


async def on_their_way(commands: CommandLog, events: EventStore, db_name: str, aggregate_type: AggregateType,
                       missing: list[str]) -> set[str]:
    """Of `missing` (absent from the document store), those that will be there in a moment: a create is
    recorded but has no event yet, or the newest event is stored but its document not written yet
    (another partition's agent is between append and apply). A command that depends on them waits."""
    if not missing:
        return set()
    found = await commands.pending_creates(db_name, missing)
    for aggregate_id in set(missing) - found:
        history = await events.history(db_name, aggregate_type, aggregate_id)
        if history and not history[-1].data.get("deleted"):
            found.add(aggregate_id)
    return found
