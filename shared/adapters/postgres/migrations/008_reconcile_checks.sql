-- The relay's periodic reconciliation: the last check of each database (drift counted, never repaired).
CREATE TABLE reconcile_checks (
  db_name    text PRIMARY KEY,
  checked_at timestamptz NOT NULL,
  checked    integer NOT NULL,
  drift      integer NOT NULL,
  sample     jsonb NOT NULL DEFAULT '[]'  -- the first drifted objects, as the report names them
);
