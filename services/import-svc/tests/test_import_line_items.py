"""Line items: created with deals, tied to existing products by Product ID, never updated."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import all_errors, search_all, start_import, wait_final
from .test_import_kinds import associated_ids

DEALS_AND_LINE_ITEMS = [
    {"columnObjectTypeId": "0-1", "columnName": "Contact email", "propertyName": "email"},
    {"columnObjectTypeId": "0-3", "columnName": "Deal", "propertyName": "dealname"},
    {"columnObjectTypeId": "0-3", "columnName": "Pipeline", "propertyName": "pipeline"},
    {"columnObjectTypeId": "0-3", "columnName": "Stage", "propertyName": "dealstage"},
    {"columnObjectTypeId": "0-8", "columnName": "Product ID", "propertyName": "hs_product_id"},
    {"columnObjectTypeId": "0-8", "columnName": "Quantity", "propertyName": "quantity"},
    {"columnObjectTypeId": "0-8", "columnName": "Line item", "propertyName": "name"},
    {"columnObjectTypeId": "0-8", "columnName": "Unit price", "propertyName": "price"},
]
LINE_ITEM_PROPERTIES = ["name", "price", "quantity", "hs_product_id", "hs_sku"]


async def create_product(records: httpx.AsyncClient, properties: dict[str, str]) -> dict[str, Any]:
    response = await records.post("/crm/v3/objects/products", json={"properties": properties})
    assert response.status_code == 201, response.text
    return response.json()


async def test_line_items_take_their_product_and_belong_to_the_rows_deal(imports: httpx.AsyncClient,
                                                                       records: httpx.AsyncClient) -> None:
    widget = await create_product(records, {"name": "Widget", "price": "10.50", "hs_sku": "W-1"})
    gadget = await create_product(records, {"name": "Gadget", "price": "99", "hs_sku": "G-7"})
    content = ("Contact email,Deal,Pipeline,Stage,Product ID,Quantity,Line item,Unit price\n"
               f"ann@li-imports.com,Widgets for Ann,default,appointmentscheduled,{widget['id']},3,,\n"
               f"ben@li-imports.com,Gadget for Ben,default,qualifiedtobuy,{gadget['id']},1,Custom gadget,80\n"
               "cid@li-imports.com,Ghost product,default,appointmentscheduled,999999999,2,,\n"
               "dan@li-imports.com,Hours for Dan,default,appointmentscheduled,,5,Service hours,120\n"
               "eve@li-imports.com,Typo deal,default,appointmentscheduled,abc,1,,\n")
    request = {"name": "deals with line items", "files": [{"fileName": "deals.csv", "fileImportPage": {
        "hasHeader": True, "columnMappings": DEALS_AND_LINE_ITEMS}}]}
    done = await wait_final(imports, (await start_import(imports, request, {"deals.csv": content.encode()})).json()["id"])
    assert done["state"] == "DONE", done

    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"], e["invalidValue"], e["knownColumnNumber"],
             e["objectTypeId"]) for e in errors] == [(4, "INVALID_OBJECT_ID", "999999999", 5, "0-8"),
                                                     (6, "INVALID_OBJECT_ID", "abc", 5, "0-8")]
    assert "999999999" in errors[0]["errorMessage"]

    deals = {d["properties"]["dealname"]: d["id"] for d in await search_all(records, "deals", ["dealname"])}
    assert len(deals) == 5  # a row's deal is imported even when its line item is refused
    items = await search_all(records, "line_items", LINE_ITEM_PROPERTIES)
    assert len(items) == 3
    by_name = {i["properties"]["name"]: i for i in items}
    stored_widget = (await records.get(f"/crm/v3/objects/products/{widget['id']}",
                                       params={"properties": "name,price,hs_sku"})).json()["properties"]
    # Filled from the product where the row says nothing; the row's own values win.
    widget_item = by_name["Widget"]["properties"]
    assert (widget_item["price"], widget_item["hs_sku"], widget_item["quantity"], widget_item["hs_product_id"]) == (
        stored_widget["price"], "W-1", "3", widget["id"])
    gadget_item = by_name["Custom gadget"]["properties"]
    assert (gadget_item["price"], gadget_item["hs_sku"], gadget_item["hs_product_id"]) == ("80", "G-7", gadget["id"])
    assert not by_name["Service hours"]["properties"].get("hs_product_id")

    for deal, item in (("Widgets for Ann", "Widget"), ("Gadget for Ben", "Custom gadget"),
                       ("Hours for Dan", "Service hours")):
        assert set(await associated_ids(records, "line_items", by_name[item]["id"], "deals")) == {deals[deal]}
    assert await associated_ids(records, "deals", deals["Ghost product"], "line_items") == {}
    # Each row's contact goes with its deal; a line item belongs to its deal only.
    contacts = {c["properties"]["email"]: c["id"] for c in await search_all(records, "contacts", ["email"])}
    assert set(await associated_ids(records, "contacts", contacts["ann@li-imports.com"], "deals")) == {
        deals["Widgets for Ann"]}
    assert done["metadata"]["counters"]["CREATED_ASSOCIATIONS"] == 5 + 3
    # The products themselves are only read.
    assert (await records.get(f"/crm/v3/objects/products/{widget['id']}", params={"properties": "name,price,hs_sku"})
            ).json()["properties"] == stored_widget


async def test_existing_line_items_are_never_updated(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    product = await create_product(records, {"name": "Bolt", "price": "2"})
    existing = await records.post("/crm/v3/objects/line_items", json={"properties": {
        "name": "Bolt", "quantity": "10", "hs_product_id": product["id"]}})
    assert existing.status_code == 201, existing.text
    request = {"name": "line item update attempt", "importOperations": {"0-8": "UPDATE"}, "files": [
        {"fileName": "items.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-8", "columnName": "Line item ID", "columnType": "HUBSPOT_OBJECT_ID"},
            {"columnObjectTypeId": "0-8", "columnName": "Product ID", "propertyName": "hs_product_id"},
            {"columnObjectTypeId": "0-8", "columnName": "Quantity", "propertyName": "quantity"}]}}]}
    content = f"Line item ID,Product ID,Quantity\n{existing.json()['id']},{product['id']},99\n,{product['id']},4\n"
    done = await wait_final(imports, (await start_import(imports, request, {"items.csv": content.encode()})).json()["id"])
    assert done["state"] == "DONE", done
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in await all_errors(imports, done["id"])] == [
        (2, "CREATE_ONLY_IMPORT")]
    counters = done["metadata"]["counters"]
    assert counters["CREATED_OBJECTS"] == 1 and counters.get("UPDATED_OBJECTS", 0) == 0
    items = {i["id"]: i["properties"] for i in await search_all(records, "line_items", LINE_ITEM_PROPERTIES)}
    assert items[existing.json()["id"]]["quantity"] == "10"
    (new_id,) = set(items) - {existing.json()["id"]}
    assert (items[new_id]["name"], items[new_id]["quantity"]) == ("Bolt", "4")
