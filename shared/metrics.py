"""Prometheus metrics of the web view, the worker and the relay (each process serves its own at /metrics).
Declarations only. Label values stay bounded: command types, statuses, reasons, topics, route templates."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# The web view.
HTTP_REQUESTS = Counter("spice_http_requests", "HTTP requests answered by the web view",
                        ["method", "route", "status"])
HTTP_SECONDS = Histogram("spice_http_request_seconds", "From a request's arrival to its answer (for a write: "
                         "the submission, until its 202)", ["method", "route"], buckets=SECONDS)
ACCEPTED = Counter("spice_commands_accepted", "Commands recorded by the web view (answered 202)", ["command_type"])
WEBSOCKETS = Gauge("spice_websocket_connections", "Open WebSocket connections")

# The worker.
FINISHED = Counter("spice_commands_finished", "Commands that reached a final status (COMPLETED or FAILED)",
                   ["command_type", "status"])
FINAL_SECONDS = Histogram("spice_command_final_seconds", "From a command's submission to its final status",
                          ["command_type"], buckets=SECONDS)
RETRIES = Counter("spice_command_retries", "RETRYING transitions of commands", ["command_type"])
DEAD_LETTERS = Counter("spice_dead_letters", "Messages put on the dead-letter topic", ["reason"])
CONSUMER_LAG = Gauge("spice_consumer_lag", "Messages on a topic the worker's consumer group has not committed "
                     "(read when scraped)", ["topic"])
PROJECTION_LAG = Gauge("spice_projection_lag", "Events not yet projected into the search read model "
                       "(the consumer lag over the event topics)")

# The outbox relay.
RELAY_PUBLISHED = Counter("spice_relay_published", "Outbox rows published to Kafka", ["topic"])
RELAY_REFUSED = Counter("spice_relay_refused", "Outbox rows refused (larger than a Kafka message) and "
                        "dead-lettered")
RELAY_BACKLOG = Gauge("spice_relay_backlog", "Outbox rows not yet published (read when scraped)")
