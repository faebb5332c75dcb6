"""GET /metrics on the web view, the worker and the relay: Prometheus text with the counts that moved."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from shared.config import Settings
from tests.stack import Stack


async def scrape(stack: Stack, url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with stack.client.get(url) as resp:  # no token: counts only
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items()))


async def test_each_process_counts_what_it_did(stack: Stack, settings: Settings) -> None:
    web_before = await scrape(stack, f"{stack.base}/metrics")
    db = await stack.new_database()
    await stack.run("POST", f"/api/v1/ontology/{db}/async/create", {"id": "Thing"})
    conflict = await stack.run("PUT", f"/api/v1/ontology/{db}/async/Thing", {"description": "x", "expected_version": 7})
    assert conflict["status"] == "FAILED"

    web = await scrape(stack, f"{stack.base}/metrics")
    for command_type in ("CREATE_DATABASE", "CREATE_ONTOLOGY_CLASS"):
        assert value(web, "spice_commands_accepted_total", command_type=command_type) > value(
            web_before, "spice_commands_accepted_total", command_type=command_type)
    route = "/api/v1/ontology/{db_name}/async/create"
    assert value(web, "spice_http_requests_total", method="POST", route=route, status="202") >= 1
    assert value(web, "spice_http_request_seconds_count", method="POST", route=route) >= 1
    assert not [labels for labels, _ in web["spice_http_requests_total"] if db in labels["route"]]  # templates only
    assert "spice_websocket_connections" in web

    worker = await scrape(stack, f"{settings.worker_url}/metrics")
    assert value(worker, "spice_commands_finished_total", command_type="CREATE_ONTOLOGY_CLASS",
                 status="COMPLETED") >= 1
    assert value(worker, "spice_commands_finished_total", command_type="UPDATE_ONTOLOGY_CLASS",
                 status="FAILED") >= 1
    assert value(worker, "spice_command_final_seconds_count", command_type="CREATE_DATABASE") >= 1
    lagged = {labels["topic"] for labels, _ in worker["spice_consumer_lag"]}
    assert settings.topic("ontology-commands") in lagged and settings.topic("instance-events") in lagged
    assert "spice_projection_lag" in worker

    relay = await scrape(stack, f"http://127.0.0.1:{settings.relay_port}/metrics")
    assert value(relay, "spice_relay_published_total", topic=settings.topic("ontology-commands")) >= 2  # create, update
    assert "spice_relay_backlog" in relay
