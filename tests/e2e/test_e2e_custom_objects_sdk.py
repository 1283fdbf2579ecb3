"""Custom objects and labeled associations through the gateway with the official SDK."""

from __future__ import annotations

import uuid

import pytest
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.associations.v4.schema import PublicAssociationDefinitionCreateRequest
from hubspot.crm.contacts import (
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects import SimplePublicObjectInputForCreate as ObjectCreate
from hubspot.crm.schemas import ObjectSchemaEgg, ObjectTypeDefinitionLabels, ObjectTypePropertyCreate

pytestmark = pytest.mark.xdist_group("e2e-api")


def test_custom_object_with_labeled_associations(hubspot) -> None:  # type: ignore[no-untyped-def]
    name = f"machines_{uuid.uuid4().hex[:6]}"
    schema = hubspot.crm.schemas.core_api.create(object_schema_egg=ObjectSchemaEgg(
        name=name, labels=ObjectTypeDefinitionLabels(singular="Machine", plural="Machines"),
        primary_display_property="serial", required_properties=["serial"], searchable_properties=["serial"],
        secondary_display_properties=[], associated_objects=["CONTACT"],
        properties=[ObjectTypePropertyCreate(name="serial", label="Serial", type="string", field_type="text"),
                    ObjectTypePropertyCreate(name="weight", label="Weight", type="number", field_type="number")]))
    type_id = schema.object_type_id
    assert type_id.startswith("2-") and schema.fully_qualified_name.endswith(name)

    machine = hubspot.crm.objects.basic_api.create(
        object_type=type_id, simple_public_object_input_for_create=ObjectCreate(
            properties={"serial": "SN-1", "weight": "12.5"}))
    assert machine.properties["serial"] == "SN-1"
    contact = hubspot.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": f"op-{uuid.uuid4().hex[:8]}@example.com"}))

    labels = hubspot.crm.associations.v4.schema.definitions_api.create(
        from_object_type=type_id, to_object_type="contacts",
        public_association_definition_create_request=PublicAssociationDefinitionCreateRequest(
            label="Operator", name="operator", inverse_label="Operates"))
    operator = next(r for r in labels.results if r.label == "Operator")

    hubspot.crm.associations.v4.basic_api.create(
        object_type=type_id, object_id=machine.id, to_object_type="contacts", to_object_id=contact.id,
        association_spec=[AssociationSpec(association_category="USER_DEFINED", association_type_id=operator.type_id)])
    page = hubspot.crm.associations.v4.basic_api.get_page(object_type="contacts", object_id=contact.id,
                                                          to_object_type=type_id)
    [entry] = page.results
    assert str(entry.to_object_id) == machine.id
    assert "Operates" in {t.label for t in entry.association_types}

    company = hubspot.crm.companies.basic_api.create(
        __import__("hubspot.crm.companies", fromlist=["SimplePublicObjectInputForCreate"])
        .SimplePublicObjectInputForCreate(properties={"name": "Machine Works"}))
    hubspot.crm.associations.v4.basic_api.create_default(from_object_type="contacts", from_object_id=contact.id,
                                                         to_object_type="companies", to_object_id=company.id)
    found = hubspot.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(property_name="associations.company", operator="EQ",
                                                   value=company.id)])]))
    assert [c.id for c in found.results] == [contact.id]
