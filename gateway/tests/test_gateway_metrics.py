"""The gateway's figures: on their own port only, requests named by route pattern, refusals by reason."""

from __future__ import annotations

import httpx
from crm_common.testing import Scrape


async def scrape(gateway, client) -> Scrape:  # type: ignore[no-untyped-def]
    response = await client.get(gateway.metrics_url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def test_metrics_are_not_served_on_the_public_port(gateway, client, make_token) -> None:
    token = await make_token()
    anonymous = await client.get(f"{gateway.url}/metrics")
    assert anonymous.status_code == 401
    with_token = await client.get(f"{gateway.url}/metrics", headers=token.headers)
    assert with_token.status_code == 404
    assert "corral_http_requests" not in with_token.text
    # ...and a service's own /metrics is no route of the gateway either.
    assert (
        await client.get(f"{gateway.url}/crm/v3/objects/metrics/../../../metrics", headers=token.headers)
    ).status_code == 404


async def test_requests_are_counted_by_route_pattern_and_refusals_by_reason(
    gateway, client, make_token
) -> None:
    token = await make_token()
    before = await scrape(gateway, client)
    for record_id in ("101", "102", "103"):
        response = await client.get(
            f"{gateway.url}/crm/v3/objects/contacts/{record_id}", headers=token.headers
        )
        assert response.status_code == 200
    assert (
        await client.get(f"{gateway.url}/crm/v3/objects/contacts/9", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    assert (await client.get(f"{gateway.url}/no/such/route", headers=token.headers)).status_code == 404
    after = await scrape(gateway, client)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("corral_http_requests_total", method="GET", route="/crm/v3/objects", status="200") == 3
    assert moved("corral_http_request_duration_seconds_count", method="GET", route="/crm/v3/objects") == 4
    assert moved("corral_gateway_rejections_total", reason="invalid_token") == 1
    assert moved("corral_gateway_rejections_total", reason="no_route") == 1
    assert moved("corral_gateway_upstream_duration_seconds_count", backend="records") == 3
    # Never one series per raw path: ids and unknown paths do not become label values.
    routes = after.labels("corral_http_requests_total", "route")
    assert not [r for r in routes if any(ch.isdigit() for ch in r.split("/")[-1]) or "such" in r], routes


async def test_an_unreachable_backend_is_counted(degraded_gateway, client, make_token) -> None:
    token = await make_token()
    response = await client.get(f"{degraded_gateway.url}/corral/v1/sync/status", headers=token.headers)
    assert response.status_code == 503
    figures = Scrape(httpx.get(degraded_gateway.metrics_url, timeout=5).text)
    assert figures.value("corral_gateway_upstream_failures_total", backend="sync", kind="unavailable") >= 1
    assert figures.value("corral_http_requests_total", route="/corral/v1/sync", status="503") >= 1
