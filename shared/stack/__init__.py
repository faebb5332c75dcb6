"""Local PostgreSQL, Redis and Kafka for development and tests: install-free start/stop, loopback only."""
