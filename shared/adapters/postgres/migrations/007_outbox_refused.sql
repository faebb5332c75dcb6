-- Why the relay gave a row up (too large for the broker): it is marked published so the rows after it go
-- out, dead-lettered, and the reconciliation sweep does not queue its command again.
ALTER TABLE outbox ADD COLUMN refused text;
