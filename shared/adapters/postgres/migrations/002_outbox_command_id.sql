-- Which command an outbox row carries, so the reconciliation sweep can tell when it was last queued.
ALTER TABLE outbox ADD COLUMN command_id uuid;
CREATE INDEX outbox_command ON outbox (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX events_command ON events (command_id);
