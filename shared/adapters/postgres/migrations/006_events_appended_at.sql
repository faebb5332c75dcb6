-- When an event was appended (occurred_at is when it was decided: a bulk command archives its events
-- in between, for minutes). The reconciliation sweep ages unapplied events by this.
ALTER TABLE events ADD COLUMN appended_at timestamptz NOT NULL DEFAULT clock_timestamp();
