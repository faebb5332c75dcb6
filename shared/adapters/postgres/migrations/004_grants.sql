-- Roles per database and user, written only by applying GRANT events (and the creator's admin role
-- when a database is created).
CREATE TABLE docs.grants (
  db_name text NOT NULL,
  user_id text NOT NULL,
  role    text,
  version integer NOT NULL,
  doc     jsonb NOT NULL,
  PRIMARY KEY (db_name, user_id)
);
