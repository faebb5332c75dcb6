-- One database's events in position order (the search rebuild and replay read them without the others').
CREATE INDEX IF NOT EXISTS events_db_position ON events (db_name, position);
