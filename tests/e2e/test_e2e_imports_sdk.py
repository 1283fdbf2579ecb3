"""A two-file contacts + companies import started, polled and inspected with the official SDK through the gateway."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from hubspot.crm.companies import Filter, FilterGroup, PublicObjectSearchRequest

pytestmark = pytest.mark.xdist_group("e2e-api")


def test_two_file_import_through_the_gateway(hubspot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:8]
    contacts = tmp_path / "contacts.csv"
    companies = tmp_path / "companies.csv"
    contacts.write_text(f"Email,First Name\nalice@{tag}-acme.com,Alice\nbob@{tag}-acme.com,Bob\n"
                        f"broken-email,Nobody\n", encoding="utf-8")
    companies.write_text(f"Domain,Company name,Email\n{tag}-acme.com,Acme,alice@{tag}-acme.com\n"
                         f"{tag}-acme.com,Acme Inc,bob@{tag}-acme.com\n", encoding="utf-8")
    request = {
        "name": f"two files {tag}", "importOperations": {"0-1": "UPSERT", "0-2": "UPSERT"},
        "files": [
            {"fileName": "contacts.csv", "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": [
                {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email",
                 "associationIdentifierColumn": True},
                {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"}]}},
            {"fileName": "companies.csv", "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": [
                {"columnObjectTypeId": "0-2", "columnName": "Domain", "propertyName": "domain",
                 "columnType": "HUBSPOT_ALTERNATE_ID"},
                {"columnObjectTypeId": "0-2", "columnName": "Company name", "propertyName": "name"},
                {"columnObjectTypeId": "0-2", "toColumnObjectTypeId": "0-1", "columnName": "Email",
                 "propertyName": None,
                 "foreignKeyType": {"associationTypeId": 280, "associationCategory": "HUBSPOT_DEFINED"}}]}}]}

    started = hubspot.crm.imports.core_api.create(files=[str(contacts), str(companies)],
                                                  import_request=json.dumps(request))
    assert started.id and sorted(started.mapped_object_type_ids) == ["0-1", "0-2"]
    status = started
    for _ in range(300):
        status = hubspot.crm.imports.core_api.get_by_id(started.id)
        if status.state in ("DONE", "FAILED", "CANCELED"):
            break
        time.sleep(0.2)
    assert status.state == "DONE"

    errors = hubspot.crm.imports.public_imports_api.get_errors(started.id, include_error_message=True,
                                                               include_row_data=True).results
    assert [(e.error_type, e.source_data.line_number) for e in errors] == [("INVALID_EMAIL", 4)]

    found = hubspot.crm.companies.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="domain", operator="EQ", value=f"{tag}-acme.com")])],
        properties=["name", "domain"]))
    [company] = found.results
    assert company.properties["name"] == "Acme Inc"
    linked = hubspot.crm.associations.v4.basic_api.get_page(object_type="companies", object_id=company.id,
                                                            to_object_type="contacts")
    emails = {hubspot.crm.contacts.basic_api.get_by_id(str(r.to_object_id)).properties["email"]
              for r in linked.results}
    assert emails == {f"alice@{tag}-acme.com", f"bob@{tag}-acme.com"}
