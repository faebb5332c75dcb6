-- Current state of instances, written only by applying INSTANCE_* events. instance_id is unique
-- within a database; a deleted instance keeps a tombstone row so an older write cannot resurrect it.
CREATE TABLE docs.instances (
  db_name     text NOT NULL,
  instance_id text NOT NULL,
  class_id    text NOT NULL,
  version     integer NOT NULL,
  deleted     boolean NOT NULL DEFAULT false,
  doc         jsonb NOT NULL,
  PRIMARY KEY (db_name, instance_id)
);
CREATE INDEX instances_by_class ON docs.instances (db_name, class_id, instance_id) WHERE NOT deleted;
