"""Merges through the gateway with the official SDK, and the record.merged event on the broker."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from crm_common.settings import DEFAULT_AMQP_URL
from hubspot.crm.companies import PublicMergeInput as CompanyMerge
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate
from hubspot.crm.contacts import PublicMergeInput, SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.contacts.exceptions import ApiException

pytestmark = pytest.mark.xdist_group("e2e-api")


async def _listen(exchange_name: str, queue_name: str, ready: asyncio.Event, found: list[dict],
                  want_id: str) -> None:
    connection = await aio_pika.connect(DEFAULT_AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(queue_name, exclusive=True)
        await queue.bind(exchange, routing_key="record.merged")
        ready.set()
        for _ in range(300):
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            payload = json.loads(message.body)
            events = payload if isinstance(payload, list) else [payload]
            found.extend(e for e in events if e["data"].get("id") == want_id or want_id in
                         {str(i) for i in e["data"].get("mergedIds", [])})
            if found:
                return
    finally:
        await connection.close()


def test_contacts_merge_through_the_sdk(hubspot) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    primary = hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={
        "email": f"primary-{tag}@example.com", "firstname": "Pia", "lifecyclestage": "lead",
        "num_conversion_events": "2"}))
    secondary = hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={
        "email": f"secondary-{tag}@example.com", "firstname": "Sol", "lastname": "Secondary",
        "lifecyclestage": "customer", "num_conversion_events": "3"}))

    merged = hubspot.crm.contacts.basic_api.merge(public_merge_input=PublicMergeInput(
        primary_object_id=primary.id, object_id_to_merge=secondary.id))
    assert merged.id not in (primary.id, secondary.id)
    result = hubspot.crm.contacts.basic_api.get_by_id(merged.id, properties=[
        "email", "firstname", "lastname", "lifecyclestage", "num_conversion_events", "hs_additional_emails",
        "hs_merged_object_ids"])
    props = result.properties
    assert props["email"] == f"primary-{tag}@example.com"
    assert props["firstname"] == "Pia"  # the primary's value wins
    assert props["lastname"] == "Secondary"  # an empty primary value takes the secondary's
    assert props["lifecyclestage"] == "customer"  # furthest in the funnel
    assert float(props["num_conversion_events"]) == 5  # summed
    assert f"secondary-{tag}@example.com" in props["hs_additional_emails"]
    assert set(props["hs_merged_object_ids"].split(";")) == {primary.id, secondary.id}

    for old in (primary.id, secondary.id):
        assert hubspot.crm.contacts.basic_api.get_by_id(old).id == merged.id
    updated = hubspot.crm.contacts.basic_api.update(secondary.id, SimplePublicObjectInput(properties={"city": "Oslo"}))
    assert updated.id == merged.id

    with pytest.raises(ApiException) as itself:
        hubspot.crm.contacts.basic_api.merge(public_merge_input=PublicMergeInput(
            primary_object_id=merged.id, object_id_to_merge=merged.id))
    assert 400 <= itself.value.status < 500


def test_companies_merge_and_the_record_merged_event(hubspot, suite) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    first = hubspot.crm.companies.basic_api.create(CompanyCreate(properties={"name": f"One {tag}",
                                                                             "domain": f"one-{tag}.com"}))
    second = hubspot.crm.companies.basic_api.create(CompanyCreate(properties={"name": f"Two {tag}",
                                                                              "domain": f"two-{tag}.com"}))
    found: list[dict] = []

    async def scenario() -> None:
        ready = asyncio.Event()
        listener = asyncio.create_task(_listen(suite.exchange, f"e2e.merged.{tag}", ready, found, first.id))
        await asyncio.wait_for(ready.wait(), 20)
        merged = await asyncio.to_thread(hubspot.crm.companies.basic_api.merge, public_merge_input=CompanyMerge(
            primary_object_id=first.id, object_id_to_merge=second.id))
        await asyncio.wait_for(listener, 40)
        assert merged.properties["domain"] == f"one-{tag}.com"
        full = await asyncio.to_thread(hubspot.crm.companies.basic_api.get_by_id, merged.id,
                                       properties=["hs_additional_domains"])
        assert full.properties["hs_additional_domains"] == f"two-{tag}.com"

    asyncio.run(scenario())
    [event] = found
    assert event["type"] == "record.merged" and event["data"]["objectTypeId"] == "0-2"
    assert {str(i) for i in event["data"]["mergedIds"]} >= {first.id, second.id}
