"""Pure pieces: value conversion, mapping checks and warnings, secrets at rest, the OAuth state, the budget."""

from __future__ import annotations

import time

import pytest
from sync_svc.crypto import EncryptionUnavailable, SecretBox, generate_key
from sync_svc.domain import mappings as rules
from sync_svc.domain.budget import Budget
from sync_svc.domain.errors import category_of
from sync_svc.domain.oauth_state import AuthorizationState, InvalidState, sign_state, verify_state
from sync_svc.domain.rules import SyncRule
from sync_svc.domain.values import UnconvertibleValue, ValueKind, canonical, from_salesforce, to_salesforce


def prop(name: str, type_: str = "string", field_type: str = "text", **extra) -> dict:
    return {"name": name, "label": name, "type": type_, "fieldType": field_type, "options": [],
            "calculated": False, "modificationMetadata": {"readOnlyValue": False}, **extra}


def field(name: str, type_: str = "string", **extra) -> dict:
    return {"name": name, "type": type_, "length": 255, "createable": True, "updateable": True, "nillable": True,
            "defaultedOnCreate": False, "calculated": False, **extra}


@pytest.mark.parametrize(("raw", "kind", "corral"), [
    (True, ValueKind("bool", "boolean"), "true"),
    (12.0, ValueKind("number", "double"), "12"),
    (12.50, ValueKind("number", "currency"), "12.5"),
    (7, ValueKind("number", "int"), "7"),
    ("2026-03-04", ValueKind("date", "date"), "2026-03-04"),
    ("2026-03-04T05:06:07.000+0000", ValueKind("datetime", "datetime"), "2026-03-04T05:06:07.000Z"),
    ("2026-03-04T05:06:07.000+0000", ValueKind("date", "datetime"), "2026-03-04"),
    ("2026-03-04", ValueKind("datetime", "date"), "2026-03-04T00:00:00.000Z"),
    ("A;B", ValueKind("enumeration", "multipicklist", multi=True), "A;B"),
    (None, ValueKind("string", "string"), ""),
])
def test_values_from_salesforce(raw, kind, corral) -> None:
    assert from_salesforce(raw, kind) == corral


@pytest.mark.parametrize(("corral", "kind", "raw"), [
    ("true", ValueKind("bool", "boolean"), True),
    ("12", ValueKind("number", "double"), 12),
    ("12.5", ValueKind("number", "currency"), 12.5),
    ("2026-03-04T05:06:07.000Z", ValueKind("datetime", "date"), "2026-03-04"),
    ("2026-03-04", ValueKind("date", "datetime"), "2026-03-04T00:00:00.000Z"),
    ("", ValueKind("string", "string"), None),
    ("B; A", ValueKind("enumeration", "multipicklist", multi=True), "B;A"),
])
def test_values_to_salesforce(corral, kind, raw) -> None:
    assert to_salesforce(corral, kind) == raw


def test_canonical_forms_hide_representation_differences() -> None:
    number = ValueKind("number", "double")
    assert canonical("100.50", number) == canonical("100.5", number) == "100.5"
    assert canonical("1E+2", number) == canonical("100", number)
    assert canonical("Ada@Example.COM", ValueKind("string", "email", email=True)) == "ada@example.com"
    assert canonical("B;A", ValueKind("enumeration", "multipicklist", multi=True)) == "A;B"
    with pytest.raises(UnconvertibleValue):
        to_salesforce("1.5", ValueKind("number", "int"))
    with pytest.raises(UnconvertibleValue):
        from_salesforce({"city": "x"}, ValueKind("string", "address"))


def check(p: dict | None, f: dict | None, rule: SyncRule = SyncRule.TWO_WAY, existing=(), replacing=None) -> None:
    rules.check_mapping(object_label="contacts", salesforce_object="Contact", prop=p, property_name="p",
                        field=f, field_name="F", rule=rule, existing=existing, replacing=replacing)


def test_type_compatibility_table() -> None:
    ok = [("select", "enumeration", "picklist"), ("radio", "enumeration", "reference"),
          ("checkbox", "enumeration", "multipicklist"), ("booleancheckbox", "bool", "boolean"),
          ("number", "number", "double"), ("number", "number", "int"), ("number", "number", "currency"),
          ("text", "string", "string"), ("text", "string", "textarea"), ("text", "string", "email"),
          ("textarea", "string", "textarea"), ("date", "date", "date"), ("date", "datetime", "datetime")]
    for field_type, type_, sf_type in ok:
        check(prop("p", type_, field_type), field("F", sf_type))
    bad = [("text", "string", "boolean"), ("textarea", "string", "string"), ("number", "number", "string"),
           ("select", "enumeration", "multipicklist"), ("date", "date", "string"), ("checkbox", "enumeration",
                                                                                      "picklist")]
    for field_type, type_, sf_type in bad:
        with pytest.raises(rules.MappingRefused) as refused:
            check(prop("p", type_, field_type), field("F", sf_type))
        assert refused.value.status == 400 and "Type mismatch" in refused.value.message
        assert sf_type in refused.value.message and rules.field_type_name(field_type) in refused.value.message


def test_refusals_name_what_is_wrong() -> None:
    existing = [rules.ExistingMapping(7, "jobtitle", "Title", SyncRule.TWO_WAY)]
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("jobtitle"), field("Department"), existing=existing)
    assert refused.value.status == 409 and "jobtitle is already mapped to Contact.Title" in refused.value.message
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("city"), field("Title"), existing=existing)
    assert refused.value.status == 409 and "Contact.Title is already mapped to the property jobtitle" \
        in refused.value.message
    check(prop("jobtitle"), field("Title"), existing=existing, replacing=7)  # editing itself is fine
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("hubspot_owner_id"), field("F"))
    assert refused.value.status == 400 and "user property" in refused.value.message
    many = [rules.ExistingMapping(i, f"p{i}", f"F{i}", SyncRule.TWO_WAY) for i in range(500)]
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("x"), field("X"), existing=many)
    assert refused.value.status == 400 and "500" in refused.value.message
    with pytest.raises(rules.MappingRefused) as refused:
        check(None, field("F"))
    assert "no contact property" in refused.value.message
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("p"), None)
    assert "Salesforce's Contact has no field named 'F'" in refused.value.message
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("p"), field("Name", calculated=True, createable=False, updateable=False))
    assert "read-only" in refused.value.message
    check(prop("p"), field("Name", calculated=True, createable=False, updateable=False), SyncRule.ALWAYS_SALESFORCE)
    with pytest.raises(rules.MappingRefused) as refused:
        check(prop("p", calculated=True), field("F"))
    assert "read-only in Corral" in refused.value.message


def test_warnings() -> None:
    required = field("LastName", nillable=False)
    assert "REQUIRED_FIELD_MISSING" in rules.mapping_warnings(salesforce_object="Contact", prop=prop("lastname"),
                                                              field=required, rule=SyncRule.DONT_SYNC)[0]
    options = [{"value": "gold"}, {"value": "tin"}]
    picklist = field("Tier__c", "picklist", restrictedPicklist=True, picklistValues=[{"value": "Gold", "active": True}])
    [warning] = rules.mapping_warnings(salesforce_object="Contact", rule=SyncRule.TWO_WAY, field=picklist,
                                       prop=prop("tier", "enumeration", "select", options=options))
    assert "tin" in warning and "gold" not in warning.split("without the options")[1]
    short = field("Title", length=128)
    assert "128 characters" in rules.mapping_warnings(salesforce_object="Contact", prop=prop("jobtitle"),
                                                      field=short, rule=SyncRule.TWO_WAY)[0]
    assert rules.object_warnings(salesforce_object="Contact", fields=[required, field("Email")],
                                 mapped={"Email": SyncRule.TWO_WAY})[0].startswith("Contact.LastName is required")
    assert rules.object_warnings(salesforce_object="Contact", fields=[required],
                                 mapped={"lastname": SyncRule.TWO_WAY}) == []


def test_secret_box_rotation() -> None:
    old, new = generate_key(), generate_key()
    sealed = SecretBox([old]).seal({"clientSecret": "s3cret"})
    assert b"s3cret" not in sealed
    rotated_box = SecretBox([new, old])
    assert rotated_box.open(sealed) == {"clientSecret": "s3cret"}
    resealed = rotated_box.rotate(sealed)
    assert SecretBox([new]).open(resealed) == {"clientSecret": "s3cret"}
    with pytest.raises(EncryptionUnavailable):
        SecretBox([new]).open(sealed)
    with pytest.raises(EncryptionUnavailable):
        SecretBox(["not-a-key"])


def test_oauth_state_is_signed_and_expires() -> None:
    state = AuthorizationState(42, "https://app/cb", "https://login.salesforce.com", "app", int(time.time()) + 60)
    token = sign_state(state, "secret")
    assert verify_state(token, "secret") == state
    with pytest.raises(InvalidState):
        verify_state(token, "other secret")
    with pytest.raises(InvalidState):
        verify_state(token[:-2] + "xx", "secret")
    with pytest.raises(InvalidState, match="expired"):
        verify_state(token, "secret", now=time.time() + 120)


def test_budget_and_categories() -> None:
    assert Budget(used=99, cap=100).retries_allowed is False
    assert Budget(used=74, cap=100).retries_allowed and not Budget(used=74, cap=100).exhausted
    assert Budget(used=100, cap=100).exhausted
    assert Budget(used=4_999, cap=None).retries_allowed and not Budget(used=5_000, cap=None).retries_allowed
    assert category_of("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") == "PROPERTY_VALUES"
    assert category_of("STRING_TOO_LONG") == "PROPERTY_VALUES"
    assert category_of("REQUIRED_FIELD_MISSING") == "PROPERTY_VALUES"
    assert category_of("FIELD_CUSTOM_VALIDATION_EXCEPTION") == "CUSTOM_CODE"
    assert category_of("DUPLICATES_DETECTED") == "DUPLICATES"
    assert category_of("INSUFFICIENT_ACCESS_OR_READONLY") == "PERMISSIONS"
