"""The org's data: records indexed by id, by type and by unique/external-id value, plus the delete log.

All mutating methods are synchronous and take a re-entrant lock: on the event loop they therefore run
without interleaving, and admin calls from other threads (tests, benchmarks) stay safe too.
Every change goes through `_replace`, which keeps the indexes right and feeds the undo log that
allOrNone collections and composite requests roll back with.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from salesforce_emulator import ids
from salesforce_emulator.clock import EmulatorClock, format_datetime, parse_datetime
from salesforce_emulator.errors import SalesforceError, entity_is_deleted, malformed_id, not_found
from salesforce_emulator.schema import (
    FieldDef,
    SObjectDef,
    custom_field_from_spec,
    custom_object_from_spec,
    standard_objects,
)
from salesforce_emulator.soql.compiler import (
    ChildQuery,
    CompiledQuery,
    QueryCompiler,
    ResolvedPath,
    aggregate_rows,
    sort_records,
)
from salesforce_emulator.soql.parser import parse_soql
from salesforce_emulator.validation import missing_required, normalise_write

Record = dict[str, Any]
RECYCLE_BIN_DAYS = 15
UPDATED_WINDOW_DAYS = 30
MAX_OFFSET = 2000
INTEGRATION_USERNAME = "integration@corral-emulator.example"
ADMIN_USERNAME = "admin@corral-emulator.example"
_SEEDABLE_SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp")
_undo_log: ContextVar[list[tuple[Record | None, Record | None]] | None] = ContextVar("undo_log", default=None)


@dataclass
class Cursor:
    rows: list[Record]
    projection: Callable[[Record], Record]
    issued_at: datetime
    page_size: int


@dataclass
class ValidationRule:
    """An admin-defined rule: when `condition` (a SOQL WHERE expression) holds, the write fails."""

    sobject: str
    name: str
    predicate: Callable[[Record], bool]
    message: str
    field: str | None = None


@dataclass
class DuplicateRule:
    """An admin-defined blocking duplicate rule with an exact, case-insensitive match on `fields`."""

    sobject: str
    name: str
    fields: list[str]


# Set for a request carrying `Sforce-Duplicate-Rule-Header: allowSave=true`.
allow_duplicates: ContextVar[bool] = ContextVar("allow_duplicates", default=False)


def duplicates_detected(sobject: SObjectDef, rule: DuplicateRule, record_ids: list[str]) -> SalesforceError:
    match_records = [{"additionalInformation": [], "fieldDiffs": [], "matchConfidence": 100.0,
                      "record": {"attributes": {"type": sobject.name, "url": f"/services/data/v60.0/sobjects/"
                                                                            f"{sobject.name}/{record_id}"},
                                 "Id": record_id}} for record_id in record_ids]
    duplicate_result = {
        "allowSave": False, "duplicateRule": rule.name, "duplicateRuleEntityType": sobject.name,
        "errorMessage": "You're creating a duplicate record. We recommend you use an existing record instead.",
        "matchResults": [{"entityType": sobject.name, "errorMessage": None, "matchEngine": "ExactMatchEngine",
                          "matchRecords": match_records, "rule": f"{rule.name}_Match", "size": len(record_ids),
                          "success": True}],
    }
    return SalesforceError(400, "DUPLICATES_DETECTED", "Use one of these records?", [],
                           {"duplicateResult": duplicate_result})


@dataclass
class DeleteLogEntry:
    record_id: str
    sobject: str
    deleted_date: str


@dataclass
class Limits:
    replication_id_limit: int = 600_000
    query_locator_cache: int = 500
    extra: dict[str, Any] = field(default_factory=dict)


class RecordStore:
    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.id_generator = ids.IdGenerator()
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.integration_user_id: str | None = None
            self.limits = Limits()
            self.objects: dict[str, SObjectDef] = {}
            self._objects_by_lower: dict[str, SObjectDef] = {}
            self._objects_by_prefix: dict[str, SObjectDef] = {}
            self.records: dict[str, Record] = {}
            self.by_type: dict[str, dict[str, Record]] = {}
            self.unique_index: dict[tuple[str, str], dict[Any, set[str]]] = {}
            # (child object, cascading reference field) -> parent id -> live child ids
            self.children_index: dict[tuple[str, str], dict[str, set[str]]] = {}
            self.delete_log: list[DeleteLogEntry] = []
            self.cursors: OrderedDict[str, Cursor] = OrderedDict()
            self.validation_rules: list[ValidationRule] = []
            self.duplicate_rules: list[DuplicateRule] = []
            self.org_created = self.clock.now()
            self.purged_through: datetime | None = None
            self.schema_modified = self.clock.now()
            self._custom_prefix_serial = 0
            for definition in standard_objects().values():
                self._register_object(definition)
            self.integration_user_id = self.create("User", {
                "Username": INTEGRATION_USERNAME, "LastName": "Integration", "FirstName": "Corral",
                "Email": INTEGRATION_USERNAME, "Alias": "corral"}, user_id=None)
            self.admin_user_id = self.create("User", {
                "Username": ADMIN_USERNAME, "LastName": "Admin", "FirstName": "Salesforce",
                "Email": ADMIN_USERNAME, "Alias": "sfadmin"}, user_id=None)

    # -- metadata ------------------------------------------------------------------------------------------
    def _register_object(self, definition: SObjectDef) -> None:
        self.objects[definition.name] = definition
        self._objects_by_lower[definition.name.lower()] = definition
        self._objects_by_prefix[definition.key_prefix] = definition
        self.by_type.setdefault(definition.name, {})
        for lookup_field in definition.lookup_fields:
            self.unique_index.setdefault((definition.name, lookup_field.name), {})
        for cascade_field in definition.cascade_fields:
            self.children_index.setdefault((definition.name, cascade_field.name), {})
        self.schema_modified = self.clock.now()

    def describe(self, name: str) -> SObjectDef | None:
        return self._objects_by_lower.get(name.lower())

    def require_object(self, name: str) -> SObjectDef:
        definition = self.describe(name)
        if definition is None:
            raise not_found()
        return definition

    def object_for_id(self, record_id: str) -> SObjectDef | None:
        return self._objects_by_prefix.get(record_id[:3])

    def define_object(self, spec: dict[str, Any]) -> SObjectDef:
        with self.lock:
            existing = self.describe(spec["name"])
            if existing is not None:
                for field_spec in spec.get("fields", []):
                    self.define_field(existing.name, field_spec)
                return existing
            prefix = "a" + ids.base62(self._custom_prefix_serial, 2)
            self._custom_prefix_serial += 1
            definition = custom_object_from_spec(spec, prefix)
            self._register_object(definition)
            return definition

    def define_field(self, sobject_name: str, spec: dict[str, Any]) -> SObjectDef:
        with self.lock:
            definition = self.require_object(sobject_name)
            new_field = custom_field_from_spec(spec)
            definition.add_field(new_field)
            if new_field.external_id or new_field.unique:
                index: dict[Any, set[str]] = {}
                for record in self.by_type[definition.name].values():
                    if not record["IsDeleted"] and record.get(new_field.name) is not None:
                        index.setdefault(_index_key(record[new_field.name]), set()).add(record["Id"])
                self.unique_index[(definition.name, new_field.name)] = index
            if new_field.cascade_delete and new_field.type == "reference":
                children: dict[str, set[str]] = {}
                for record in self.by_type[definition.name].values():
                    if not record["IsDeleted"] and record.get(new_field.name) is not None:
                        children.setdefault(record[new_field.name], set()).add(record["Id"])
                self.children_index[(definition.name, new_field.name)] = children
            self.schema_modified = self.clock.now()
            return definition

    @staticmethod
    def _child_relationship_name(child: SObjectDef, child_field: FieldDef) -> str | None:
        if child_field.name in ("CreatedById", "LastModifiedById", "OwnerId"):
            return None
        if child_field.child_relationship_name:
            return child_field.child_relationship_name
        if child.custom or child_field.custom:
            return child.label_plural.replace(" ", "_") + "__r"
        return child.label_plural.replace(" ", "")

    def child_relationships(self, parent: SObjectDef) -> list[dict[str, Any]]:
        relationships = []
        for child in self.objects.values():
            for child_field in child.fields.values():
                if parent.name in child_field.reference_to and child_field.relationship_name:
                    relationships.append({
                        "cascadeDelete": child_field.cascade_delete, "childSObject": child.name,
                        "deprecatedAndHidden": False, "field": child_field.name, "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": self._child_relationship_name(child, child_field),
                        "restrictedDelete": False})
        return relationships

    def child_relationship(self, parent: SObjectDef, name: str) -> tuple[SObjectDef, FieldDef, str] | None:
        """Resolve a subquery's FROM (e.g. `Contacts`) to the child object, its reference field and the
        relationship's own spelling."""
        wanted = name.lower()
        for child in self.objects.values():
            for child_field in child.fields.values():
                if parent.name in child_field.reference_to:
                    relationship_name = self._child_relationship_name(child, child_field)
                    if relationship_name and relationship_name.lower() == wanted:
                        return child, child_field, relationship_name
        return None

    # -- reading -------------------------------------------------------------------------------------------
    def fetch(self, record_id: str) -> Record | None:
        return self.records.get(record_id)

    def canonical_id(self, sobject: SObjectDef, raw_id: str) -> str:
        """Validate a path id for `sobject`: malformed or another object's prefix is MALFORMED_ID."""
        try:
            record_id = ids.to_18(raw_id)
        except ValueError:
            raise malformed_id(raw_id) from None
        if record_id[:3] != sobject.key_prefix:
            raise malformed_id(raw_id)
        return record_id

    def get_live(self, sobject: SObjectDef, raw_id: str) -> Record:
        record = self.records.get(self.canonical_id(sobject, raw_id))
        if record is None:
            raise not_found()
        if record["IsDeleted"]:
            raise entity_is_deleted()
        return record

    def find_by_field(self, sobject: SObjectDef, field_name: str, value: Any) -> list[str]:
        definition = sobject.field(field_name)
        if definition is None or not (definition.external_id or definition.unique or definition.name == "Id"):
            raise SalesforceError(404, "NOT_FOUND",
                                  f"Provided external ID field does not exist or is not accessible: {field_name}")
        if definition.name == "Id":
            try:
                record = self.records.get(ids.to_18(str(value)))
            except ValueError:
                return []
            return [record["Id"]] if record and not record["IsDeleted"] else []
        index = self.unique_index[(sobject.name, definition.name)]
        return sorted(index.get(_index_key(value), ()))

    # -- writing -------------------------------------------------------------------------------------------
    def _replace(self, old: Record | None, new: Record | None) -> None:
        """The only place records change: keeps every index and the delete log consistent."""
        record = new or old
        assert record is not None
        record_id = record["Id"]
        sobject = self.object_for_id(record_id)
        assert sobject is not None
        for lookup_field in sobject.lookup_fields:
            index = self.unique_index[(sobject.name, lookup_field.name)]
            if old is not None and not old["IsDeleted"] and old.get(lookup_field.name) is not None:
                holders = index.get(_index_key(old[lookup_field.name]))
                if holders:
                    holders.discard(record_id)
                    if not holders:
                        del index[_index_key(old[lookup_field.name])]
            if new is not None and not new["IsDeleted"] and new.get(lookup_field.name) is not None:
                index.setdefault(_index_key(new[lookup_field.name]), set()).add(record_id)
        for cascade_field in sobject.cascade_fields:
            children = self.children_index[(sobject.name, cascade_field.name)]
            old_parent = old.get(cascade_field.name) if old is not None and not old["IsDeleted"] else None
            new_parent = new.get(cascade_field.name) if new is not None and not new["IsDeleted"] else None
            if old_parent != new_parent:
                if old_parent is not None and (siblings := children.get(old_parent)) is not None:
                    siblings.discard(record_id)
                    if not siblings:
                        del children[old_parent]
                if new_parent is not None:
                    children.setdefault(new_parent, set()).add(record_id)
        if new is None:
            self.records.pop(record_id, None)
            self.by_type[sobject.name].pop(record_id, None)
        else:
            self.records[record_id] = new
            self.by_type[sobject.name][record_id] = new
        was_deleted = old is not None and old["IsDeleted"]
        is_deleted = new is not None and new["IsDeleted"]
        if is_deleted and not was_deleted:
            self.delete_log.append(DeleteLogEntry(record_id, sobject.name, new["SystemModstamp"]))
        elif was_deleted and new is not None and not is_deleted:
            for position in range(len(self.delete_log) - 1, -1, -1):
                if self.delete_log[position].record_id == record_id:
                    del self.delete_log[position]
                    break
        undo = _undo_log.get()
        if undo is not None:
            undo.append((old, new))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[list[tuple[Record | None, Record | None]]]:
        """Collect an undo log; nested transactions share the outermost one."""
        outer = _undo_log.get()
        if outer is not None:
            yield outer
            return
        log: list[tuple[Record | None, Record | None]] = []
        token = _undo_log.set(log)
        try:
            yield log
        finally:
            _undo_log.reset(token)

    def rollback(self, log: list[tuple[Record | None, Record | None]], savepoint: int = 0) -> None:
        """Undo every change logged after `savepoint` (a length of the log taken earlier)."""
        with self.lock:
            token = _undo_log.set(None)
            try:
                for old, new in reversed(log[savepoint:]):
                    self._replace(new, old)
            finally:
                _undo_log.reset(token)
            del log[savepoint:]

    def _stamp(self) -> str:
        return format_datetime(self.clock.now())

    def create(self, sobject_name: str, payload: dict[str, Any], *, user_id: str | None,
               allow_system_fields: bool = False) -> str:
        with self.lock:
            sobject = self.require_object(sobject_name)
            if any(key.lower() == "id" for key in payload) and not allow_system_fields:
                raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            values = normalise_write(sobject, payload, creating=True, allow_system_fields=allow_system_fields)
            now = self._stamp()
            actor = user_id or self.integration_user_id
            record: Record = dict(sobject.record_template)
            record.update(Id=self.id_generator.next_id(sobject.key_prefix), IsDeleted=False, CreatedDate=now,
                          CreatedById=actor, LastModifiedDate=now, LastModifiedById=actor, SystemModstamp=now)
            if sobject.has_owner:
                record["OwnerId"] = actor
            record.update({key: value for key, value in values.items() if key not in _SEEDABLE_SYSTEM_FIELDS})
            if allow_system_fields:
                self._apply_seeded_system_fields(sobject, record, values)
            _derive_fields(sobject, record)
            if error := missing_required(sobject, record):
                raise error
            self._check_integrity(sobject, record, None)
            self._replace(None, record)
            return record["Id"]

    def _apply_seeded_system_fields(self, sobject: SObjectDef, record: Record, values: dict[str, Any]) -> None:
        """Seeding may backdate a row: a given CreatedDate carries over to LastModifiedDate, and that to
        SystemModstamp, unless those are given too (so one date is enough to make a row look old)."""
        if values.get("Id"):
            record_id = self.canonical_id(sobject, values["Id"])
            if record_id in self.records:
                raise SalesforceError(400, "DUPLICATE_VALUE", f"duplicate value found: Id duplicates value on "
                                                              f"record with id: {record_id}", [])
            record["Id"] = record_id
        if values.get("CreatedDate"):
            record["CreatedDate"] = values["CreatedDate"]
        record["LastModifiedDate"] = values.get("LastModifiedDate") or record["CreatedDate"]
        record["SystemModstamp"] = values.get("SystemModstamp") or record["LastModifiedDate"]
        if values.get("IsDeleted"):
            record["IsDeleted"] = True

    def update(self, sobject: SObjectDef, record_id: str, payload: dict[str, Any], *, user_id: str | None,
               system_only: bool = False, allow_system_fields: bool = False) -> Record:
        with self.lock:
            current = self.get_live(sobject, record_id)
            if any(key.lower() == "id" for key in payload):
                payload = {key: value for key, value in payload.items() if key.lower() != "id"}
            values = normalise_write(sobject, payload, creating=False, allow_system_fields=allow_system_fields)
            record = dict(current)
            record.update(values)
            now = self._stamp()
            record["SystemModstamp"] = values.get("SystemModstamp") or now
            if not system_only:
                record["LastModifiedDate"] = values.get("LastModifiedDate") or now
                record["LastModifiedById"] = user_id or self.integration_user_id
            _derive_fields(sobject, record)
            if error := missing_required(sobject, record, touched=set(values)):
                raise error
            self._check_integrity(sobject, record, current)
            self._replace(current, record)
            return record

    def delete(self, sobject: SObjectDef, record_id: str, *, user_id: str | None) -> None:
        with self.lock:
            current = self.get_live(sobject, record_id)
            if not sobject.deletable:
                raise SalesforceError(400, "INVALID_TYPE_FOR_OPERATION", "entity type cannot be deleted", [])
            now = self._stamp()
            deleted = dict(current, IsDeleted=True, SystemModstamp=now, LastModifiedDate=now,
                           LastModifiedById=user_id or self.integration_user_id)
            self._replace(current, deleted)
            self._cascade_delete(sobject, current["Id"], user_id)

    def _cascade_delete(self, parent: SObjectDef, parent_id: str, user_id: str | None) -> None:
        """Delete the children whose master-detail-like reference cascades (Contact/Opportunity.AccountId)."""
        for child in self.objects.values():
            for cascade_field in child.cascade_fields:
                if parent.name not in cascade_field.reference_to:
                    continue
                children = self.children_index[(child.name, cascade_field.name)].get(parent_id)
                for child_id in sorted(children or ()):
                    self.delete(child, child_id, user_id=user_id)

    def upsert(self, sobject: SObjectDef, field_name: str, value: str, payload: dict[str, Any], *,
               user_id: str | None) -> tuple[str, bool]:
        """Returns (id, created); several matches raise the 300 Multiple Choices answer."""
        with self.lock:
            matches = self.find_by_field(sobject, field_name, value)
            if len(matches) > 1:
                raise MultipleMatches(sobject, matches)
            external_field = sobject.field(field_name)
            assert external_field is not None
            body = {key: val for key, val in payload.items() if key.lower() != external_field.name.lower()}
            if matches:
                self.update(sobject, matches[0], body, user_id=user_id)
                return matches[0], False
            if external_field.name != "Id":
                body[external_field.name] = value
            elif value:
                raise not_found()
            return self.create(sobject.name, body, user_id=user_id), True

    def _check_integrity(self, sobject: SObjectDef, record: Record, previous: Record | None) -> None:
        for definition in sobject.integrity_fields:
            value = record.get(definition.name)
            if value is None:
                continue
            if previous is not None and previous.get(definition.name) == value:
                continue
            if definition.type == "reference" and definition.createable:
                target = self.records.get(value)
                if target is None or target["IsDeleted"] or \
                        self.object_for_id(value).name not in definition.reference_to:  # type: ignore[union-attr]
                    raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                          [definition.name])
            if definition.unique:
                holders = self.unique_index[(sobject.name, definition.name)].get(_index_key(value), set())
                others = [holder for holder in holders if holder != record["Id"]]
                if others:
                    raise SalesforceError(400, "DUPLICATE_VALUE",
                                          f"duplicate value found: {definition.name} duplicates value on record "
                                          f"with id: {others[0]}", [])
        if self.duplicate_rules and not allow_duplicates.get():
            self._check_duplicate_rules(sobject, record)
        for rule in self.validation_rules:
            if rule.sobject == sobject.name and rule.predicate(record):
                raise SalesforceError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message,
                                      [rule.field] if rule.field else [])

    def _check_duplicate_rules(self, sobject: SObjectDef, record: Record) -> None:
        """Blocking duplicate rules: another live row with the same values (ignoring case) in every field.
        Rows are scanned, which is fine for the handful a test defines rules over."""
        for rule in self.duplicate_rules:
            if rule.sobject != sobject.name:
                continue
            wanted = [_index_key(record.get(name)) for name in rule.fields]
            if any(value is None for value in wanted):
                continue
            matches = [other["Id"] for other in self.by_type[sobject.name].values()
                       if other["Id"] != record["Id"] and not other["IsDeleted"]
                       and [_index_key(other.get(name)) for name in rule.fields] == wanted]
            if matches:
                raise duplicates_detected(sobject, rule, matches[:10])

    def add_duplicate_rule(self, sobject_name: str, name: str, field_names: list[str]) -> None:
        with self.lock:
            sobject = self.require_object(sobject_name)
            fields = []
            for field_name in field_names:
                definition = sobject.field(field_name)
                if definition is None:
                    raise SalesforceError(400, "INVALID_FIELD",
                                          f"No such column '{field_name}' on sobject of type {sobject.name}")
                fields.append(definition.name)
            if not fields:
                raise ValueError("a duplicate rule needs at least one field")
            self.duplicate_rules.append(DuplicateRule(sobject.name, name, fields))

    def add_validation_rule(self, sobject_name: str, name: str, condition: str, message: str,
                            field_name: str | None) -> None:
        with self.lock:
            sobject = self.require_object(sobject_name)
            soql = f"SELECT Id FROM {sobject.name} WHERE {condition}"
            compiled = QueryCompiler(soql, self.describe, self.fetch, self.clock.now()).compile(parse_soql(soql))
            self.validation_rules.append(ValidationRule(sobject.name, name, compiled.predicate, message, field_name))

    # -- purge and replication -----------------------------------------------------------------------------
    def purge_recycle_bin(self) -> None:
        """Rows deleted more than 15 days ago leave the recycle bin and the getDeleted window for good."""
        with self.lock:
            cutoff = format_datetime(self.clock.now() - timedelta(days=RECYCLE_BIN_DAYS))
            purge_count = 0
            for entry in self.delete_log:
                if entry.deleted_date >= cutoff:
                    break
                purge_count += 1
                record = self.records.get(entry.record_id)
                if record is not None and record["IsDeleted"]:
                    self._purge(record)
            if purge_count:
                self.purged_through = parse_datetime(self.delete_log[purge_count - 1].deleted_date)
                del self.delete_log[:purge_count]

    def hard_delete(self, record_id: str) -> None:
        """Bulk hardDelete: the row skips the recycle bin (its delete-log entry stays for getDeleted)."""
        with self.lock:
            record = self.records.get(record_id)
            if record is not None and record["IsDeleted"]:
                self._purge(record)

    def _purge(self, record: Record) -> None:
        """Physically remove a recycled row; purges are not part of any transaction, so never undone."""
        sobject = self.object_for_id(record["Id"])
        assert sobject is not None
        self.records.pop(record["Id"], None)
        self.by_type[sobject.name].pop(record["Id"], None)

    def updated_ids(self, sobject: SObjectDef, start: datetime, end: datetime) -> list[str]:
        low, high = format_datetime(start), format_datetime(end)
        return [record["Id"] for record in self.by_type[sobject.name].values()
                if not record["IsDeleted"] and low <= record["SystemModstamp"] < high]

    def deleted_entries(self, sobject: SObjectDef, start: datetime, end: datetime) -> list[DeleteLogEntry]:
        self.purge_recycle_bin()
        low, high = format_datetime(start), format_datetime(end)
        return [entry for entry in self.delete_log
                if entry.sobject == sobject.name and low <= entry.deleted_date < high]

    # -- queries -------------------------------------------------------------------------------------------
    def compile_query(self, soql: str) -> CompiledQuery:
        return QueryCompiler(soql, self.describe, self.fetch, self.clock.now(),
                             self.child_relationship).compile(parse_soql(soql))

    def run_query(self, soql: str, *, include_deleted: bool, version: str) -> tuple[CompiledQuery, list[Record],
                                                                                  Callable[[Record], Record]]:
        compiled = self.compile_query(soql)
        if compiled.offset is not None and compiled.offset > MAX_OFFSET:
            raise SalesforceError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        if include_deleted:
            self.purge_recycle_bin()
        with self.lock:
            candidates = list(self.by_type[compiled.sobject.name].values())
        predicate = compiled.predicate
        if include_deleted:
            rows = [record for record in candidates if predicate(record)]
        else:
            rows = [record for record in candidates if not record["IsDeleted"] and predicate(record)]
        if compiled.is_aggregate:
            return compiled, aggregate_rows(compiled, rows), _as_is
        if compiled.order:
            sort_records(rows, compiled.order)
        if compiled.offset:
            rows = rows[compiled.offset:]
        if compiled.limit is not None:
            rows = rows[: compiled.limit]
        children = [(child.relationship_name, self._child_rows(child, rows, include_deleted),
                     build_projection(child.compiled, version, self.fetch)) for child in compiled.children]
        return compiled, rows, build_projection(compiled, version, self.fetch, children)

    def _child_rows(self, child: ChildQuery, parents: list[Record],
                    include_deleted: bool) -> dict[str, list[Record]]:
        """One pass over the child object for the whole result, grouped by parent id."""
        parent_ids = {parent["Id"] for parent in parents}
        reference = child.reference_field
        predicate = child.compiled.predicate
        with self.lock:
            candidates = list(self.by_type[child.compiled.sobject.name].values())
        groups: dict[str, list[Record]] = {}
        for record in candidates:
            parent_id = record.get(reference)
            if parent_id in parent_ids and (include_deleted or not record["IsDeleted"]) and predicate(record):
                groups.setdefault(parent_id, []).append(record)
        for parent_id, group in groups.items():
            if child.compiled.order:
                sort_records(group, child.compiled.order)
            start = child.compiled.offset or 0
            end = start + child.compiled.limit if child.compiled.limit is not None else None
            groups[parent_id] = group[start:end]
        return groups

    def open_cursor(self, rows: list[Record], projection: Callable[[Record], Record], page_size: int) -> str:
        with self.lock:
            locator = self.id_generator.next_id("01g")
            self.cursors[locator] = Cursor(rows, projection, self.clock.now(), page_size)
            while len(self.cursors) > self.limits.query_locator_cache:
                self.cursors.popitem(last=False)
            return locator

    def cursor(self, locator: str) -> Cursor | None:
        with self.lock:
            cursor = self.cursors.get(locator)
            if cursor is not None:
                self.cursors.move_to_end(locator)
            return cursor

    def stats(self) -> dict[str, int]:
        return {name: sum(1 for record in rows.values() if not record["IsDeleted"])
                for name, rows in self.by_type.items()}


def _as_is(row: Record) -> Record:
    """The projection of rows that are already in output shape (aggregate results)."""
    return row


class MultipleMatches(Exception):
    def __init__(self, sobject: SObjectDef, record_ids: list[str]) -> None:
        super().__init__(record_ids)
        self.sobject = sobject
        self.record_ids = record_ids


def _index_key(value: Any) -> Any:
    # External ids and unique text fields match without regard to case, as in Salesforce by default.
    return value.casefold() if isinstance(value, str) else value


def _derive_fields(sobject: SObjectDef, record: Record) -> None:
    """Compute the read-only fields Salesforce derives from others (compound names, opportunity state)."""
    if sobject.name in ("Contact", "Lead", "User"):
        record["Name"] = " ".join(part for part in (record.get("FirstName"), record.get("LastName")) if part) or None
    elif sobject.name == "Opportunity":
        stage = record.get("StageName")
        record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
        record["IsWon"] = stage == "Closed Won"
        if record.get("Probability") is None and stage:
            record["Probability"] = {"Closed Won": 100, "Closed Lost": 0}.get(stage, 10)


ChildRows = tuple[str, dict[str, list[Record]], Callable[[Record], Record]]


def build_projection(compiled: CompiledQuery, version: str, fetch: Callable[[str], Record | None],
                     children: list[ChildRows] | None = None) -> Callable[[Record], Record]:
    """A function from a stored record to the query's output shape, parent relationships nested.

    Each level of the plan becomes its own closure once, so projecting a 2000-row page does no plan walking."""
    url_base = f"/services/data/v{version}/sobjects/"

    def compile_level(level: dict, type_name: str) -> Callable[[Record], Record]:
        url_prefix = url_base + type_name + "/"
        entries: list[tuple[str, str | None, Callable[[Record], Record] | None]] = []
        for key, item in level.items():
            if isinstance(item, str):
                entries.append((key, None, None))
            else:
                reference_field, parent_type, sublevel = item
                entries.append((key, reference_field, compile_level(sublevel, parent_type)))
        if all(reference is None for _, reference, _ in entries):
            keys = tuple(key for key, _, _ in entries)

            def project_flat(record: Record) -> Record:
                output: Record = {"attributes": {"type": type_name, "url": url_prefix + record["Id"]}}
                get = record.get
                for key in keys:
                    output[key] = get(key)
                return output

            return project_flat

        plain_keys = tuple(key for key, reference, _ in entries if reference is None)
        relationships = [(key, reference, project_parent, {}) for key, reference, project_parent in entries
                         if reference is not None]

        def project_nested(record: Record) -> Record:
            output: Record = {"attributes": {"type": type_name, "url": url_prefix + record["Id"]}}
            get = record.get
            for key in plain_keys:
                output[key] = get(key)
            for key, reference_field, project_parent, projected_parents in relationships:
                parent_id = get(reference_field)
                parent = fetch(parent_id) if parent_id else None
                if parent is None:
                    output[key] = None
                    continue
                # Many rows share a parent; stored rows are never mutated, so a parent's projection can be
                # reused for as long as the very same row object is current.
                cached = projected_parents.get(parent_id)
                if cached is None or cached[0] is not parent:
                    if len(projected_parents) > 50_000:
                        projected_parents.clear()
                    cached = (parent, project_parent(parent))
                    projected_parents[parent_id] = cached
                output[key] = cached[1]
            return output

        return project_nested

    project = compile_level(_projection_plan(compiled.selected), compiled.type_spelling)
    if not children:
        return project

    def project_with_children(record: Record) -> Record:
        output = project(record)
        for relationship_name, groups, project_child in children:
            rows = groups.get(record["Id"])
            # Salesforce gives a nested query result per parent, and null when there are no children.
            output[relationship_name] = {"totalSize": len(rows), "done": True,
                                         "records": [project_child(row) for row in rows]} if rows else None
        return output

    return project_with_children


def _projection_plan(selected: list[ResolvedPath]) -> dict:
    plan: dict = {}
    for resolved in selected:
        level = plan
        for hop in resolved.hops:
            assert hop.relationship_name is not None
            existing = level.get(hop.relationship_name)
            if not isinstance(existing, tuple):
                existing = (hop.name, hop.reference_to[0], {})
                level[hop.relationship_name] = existing
            level = existing[2]
        level[resolved.target.name] = resolved.target.name
    return plan
