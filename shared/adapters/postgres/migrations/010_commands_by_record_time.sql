-- Commands in the order they were recorded: the sweep reads those after the oldest still without an event,
-- not every command ever recorded.
CREATE INDEX IF NOT EXISTS commands_recorded ON commands (recorded_at);
