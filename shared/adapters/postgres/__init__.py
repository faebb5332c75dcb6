"""PostgreSQL adapters: command log, event store, document store, migrations and the outbox."""
