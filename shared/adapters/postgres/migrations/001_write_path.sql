-- Command log, event store and outbox of the write path.

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TABLE commands (
  command_id       uuid PRIMARY KEY,
  command_type     text NOT NULL,
  aggregate_type   text NOT NULL,
  aggregate_id     text NOT NULL,
  db_name          text NOT NULL,
  actor            text NOT NULL,
  payload          jsonb NOT NULL,
  expected_version integer,
  idempotency_key  text,
  metadata         jsonb NOT NULL DEFAULT '{}',
  created_at       timestamptz NOT NULL,
  recorded_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX commands_idempotency ON commands (actor, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX commands_aggregate ON commands (db_name, aggregate_id);
CREATE TRIGGER commands_append_only BEFORE UPDATE OR DELETE ON commands
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER commands_no_truncate BEFORE TRUNCATE ON commands
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE events (
  position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id       uuid NOT NULL UNIQUE,
  event_type     text NOT NULL,
  aggregate_type text NOT NULL,
  aggregate_id   text NOT NULL,
  db_name        text NOT NULL,
  version        integer,
  command_id     uuid NOT NULL,
  actor          text NOT NULL,
  occurred_at    timestamptz NOT NULL,
  data           jsonb NOT NULL,
  -- One version of an aggregate is decided once; COMMAND_FAILED events carry no version.
  UNIQUE (db_name, aggregate_type, aggregate_id, version),
  -- A command produces one event per aggregate it touches: the redelivery guarantee.
  UNIQUE (command_id, aggregate_id)
);
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE outbox (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- The writing transaction's id: the relay orders by (txid, id) and only reads transactions
  -- that every snapshot now sees as finished (see relay.py for the commit-order reasoning).
  txid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
  topic      text NOT NULL,
  key        text NOT NULL,
  value      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX outbox_order ON outbox (txid, id);

CREATE TABLE relay_cursor (
  name       text PRIMARY KEY,
  txid       xid8 NOT NULL,
  id         bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Delivered at commit, once per transaction: wakes relays without polling.
  PERFORM pg_notify('spice_outbox', '');
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The embedded document store (TerminusDB's role when none is configured).
CREATE SCHEMA docs;
CREATE TABLE docs.databases (
  name    text PRIMARY KEY,
  version integer NOT NULL,
  deleted boolean NOT NULL DEFAULT false,
  doc     jsonb NOT NULL
);
CREATE TABLE docs.classes (
  db_name  text NOT NULL,
  class_id text NOT NULL,
  version  integer NOT NULL,
  deleted  boolean NOT NULL DEFAULT false,
  doc      jsonb NOT NULL,
  PRIMARY KEY (db_name, class_id)
);
