"""What one sync cycle of one account works with: the org's client, each object's mappings, the counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_common.cloudevents import CloudEvent
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sync_svc.domain.objects import LAST_SYNC_PROPERTY, SyncObjectType
from sync_svc.domain.reconcile import ActiveMapping
from sync_svc.domain.rules import SyncRule
from sync_svc.domain.values import ValueKind
from sync_svc.records import SyncRecords
from sync_svc.repositories.errors import ErrorWrite
from sync_svc.salesforce.client import SalesforceClient
from sync_svc.settings import Settings

SOURCE = "sync-svc"
# Salesforce fields every read asks for besides the mapped ones.
SYSTEM_FIELDS = ("Id", "SystemModstamp", "LastModifiedDate", "LastModifiedById", "CreatedById")


@dataclass
class ObjectSetup:
    """One enabled object: its Salesforce object, active mappings and where the link lives."""

    object_type: SyncObjectType
    salesforce_object: str
    mappings: list[ActiveMapping]
    watermark: Any = None
    started_from: Any = None

    @property
    def name(self) -> str:
        return self.object_type.name

    @property
    def type_id(self) -> str:
        return self.object_type.object_type_id

    @property
    def link_property(self) -> str:
        return self.object_type.link_property(self.salesforce_object)

    @property
    def match_key(self) -> tuple[str, str] | None:
        return self.object_type.match_key(self.salesforce_object)

    @property
    def name_field(self) -> str:
        return self.object_type.name_fields[self.salesforce_object]

    def corral_properties(self) -> list[str]:
        """Every property a sync of this object reads in Corral."""
        names = {m.property for m in self.mappings if m.rule is not SyncRule.DONT_SYNC}
        if self.match_key:
            names.add(self.match_key[0])
        return sorted(names | {self.link_property, LAST_SYNC_PROPERTY})

    def salesforce_fields(self) -> list[str]:
        """Every Salesforce field a sync of this object reads."""
        names = {m.field for m in self.mappings if m.rule is not SyncRule.DONT_SYNC}
        if self.match_key:
            names.add(self.match_key[1])
        names.add(self.name_field)
        return list(dict.fromkeys([*SYSTEM_FIELDS, *sorted(names)]))


def active_mappings(rows: list[dict[str, Any]]) -> list[ActiveMapping]:
    return [ActiveMapping(property=r["property"], field=r["salesforce_field"], rule=SyncRule(r["sync_rule"]),
                          kind=ValueKind(property_type=r["property_type"], salesforce_type=r["salesforce_type"],
                                         multi=r["property_type"] == "enumeration"
                                         and r["property_field_type"] == "checkbox",
                                         email=r["property"] == "email" or r["salesforce_type"] == "email"))
            for r in rows]


@dataclass
class DirectionCounts:
    """What one direction did for one object in a cycle (the numbers `sync/run` and the status show)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, amount: int = 1) -> None:
        if amount:
            self.counts[name] += amount

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


@dataclass
class Cycle:
    account_id: int
    connection: dict[str, Any]
    client: SalesforceClient
    records: SyncRecords
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    operation_id: str
    # Seconds the org's clock is ahead of ours (kept across cycles by the engine).
    clock_offset: float = 0.0
    inbound: dict[str, DirectionCounts] = field(default_factory=dict)
    outbound: dict[str, DirectionCounts] = field(default_factory=dict)
    # Written in the same transactions as the state they report (through the outbox).
    pending_events: list[CloudEvent] = field(default_factory=list)

    def server_now(self) -> datetime:
        """The org's clock (its Date header, as of the latest answer) or ours when it never answered yet."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset)

    @property
    def integration_user_id(self) -> str:
        return str(self.connection.get("user_id") or "")

    def counts(self, direction: str, object_type: str) -> DirectionCounts:
        table = self.inbound if direction == "INBOUND" else self.outbound
        return table.setdefault(object_type, DirectionCounts())

    def event(self, event_type: str, data: dict[str, Any], subject: str | None = None) -> CloudEvent:
        return account_event(self.account_id, event_type, data, subject)


def synced_event(cycle: Cycle, setup: ObjectSetup, *, record_id: int, salesforce_id: str, direction: str,
                 operation: str, properties: list[str]) -> CloudEvent:
    return cycle.event("sync.record.synced", {
        "objectType": setup.name, "objectTypeId": setup.type_id, "id": str(record_id),
        "salesforceObject": setup.salesforce_object, "salesforceId": salesforce_id, "direction": direction,
        "operation": operation, "properties": properties}, subject=f"{setup.type_id}/{record_id}")


def account_event(account_id: int, event_type: str, data: dict[str, Any], subject: str | None = None) -> CloudEvent:
    return CloudEvent(source=SOURCE, type=event_type, subject=subject, corralaccount=account_id, data=data)


def error_event(account_id: int, row: dict[str, Any]) -> CloudEvent:
    """`sync.error` for a stored error row."""
    return account_event(account_id, "sync.error", {
        "errorId": str(row["id"]), "category": row["category"], "direction": row["direction"],
        "objectType": row["object_type"] or None, "recordId": str(row["record_id"]) if row["record_id"] else None,
        "salesforceId": row["salesforce_id"], "code": row["code"], "message": row["message"],
        "attempts": row["attempts"]})


__all__ = [
    "SYSTEM_FIELDS",
    "Cycle",
    "DirectionCounts",
    "ErrorWrite",
    "ObjectSetup",
    "account_event",
    "active_mappings",
    "error_event",
    "synced_event",
]
