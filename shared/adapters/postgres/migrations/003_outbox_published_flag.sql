-- The relay marks what it published instead of keeping a (txid, id) cursor: a row is selected for as
-- long as it is unpublished, so a row committed late with a lower id can never fall behind a cursor.
ALTER TABLE outbox ADD COLUMN published_at timestamptz;
UPDATE outbox SET published_at = clock_timestamp();
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
DROP INDEX outbox_order;
ALTER TABLE outbox DROP COLUMN txid;
DROP TABLE relay_cursor;
