"""Associations v4: which types a pair allows, labels, the primary-company rule, add/replace/remove."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_common.cloudevents import CloudEvent, event_dict, now_iso
from crm_common.errors import HubSpotError
from crm_common.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.domain.associations import DEFAULT_TYPES, HUBSPOT_DEFINED, PRIMARY_TYPES, USER_DEFINED
from records_svc.domain.object_types import ObjectType
from records_svc.service import SOURCE, WriteSource, association_journal, journal

MAX_LABELS_PER_PAIR = 10


@dataclass(frozen=True)
class AssociationKind:
    category: str
    type_id: int
    label: str | None
    inverse_type_id: int | None


@dataclass
class PairTypes:
    """Every association type defined from one object type to another, for one account."""

    from_type: ObjectType
    to_type: ObjectType
    kinds: dict[tuple[str, int], AssociationKind]
    default: AssociationKind | None

    def get(self, category: str, type_id: int) -> AssociationKind:
        kind = self.kinds.get((category, type_id))
        if kind is None:
            raise HubSpotError(
                400, f"Association type {type_id} ({category}) is not defined from {self.from_type.name} to "
                     f"{self.to_type.name}; list the pair's types at "
                     f"/crm/v4/associations/{self.from_type.id}/{self.to_type.id}/labels",
                errors=[{"message": "unknown association type", "code": "INVALID_ASSOCIATION_TYPE",
                         "context": {"associationTypeId": [str(type_id)]}}])
        return kind

    def user_labels(self) -> list[AssociationKind]:
        return [k for k in self.kinds.values() if k.category == USER_DEFINED]


async def pair_types(session: AsyncSession, account_id: int, from_type: ObjectType,
                     to_type: ObjectType) -> PairTypes:
    kinds: dict[tuple[str, int], AssociationKind] = {}
    default = None
    standard = DEFAULT_TYPES.get((from_type.id, to_type.id))
    if standard:
        default = AssociationKind(HUBSPOT_DEFINED, standard.type_id, None, standard.inverse_type_id)
        kinds[(HUBSPOT_DEFINED, standard.type_id)] = default
    primary = PRIMARY_TYPES.get((from_type.id, to_type.id))
    if primary:
        kinds[(HUBSPOT_DEFINED, primary.type_id)] = AssociationKind(HUBSPOT_DEFINED, primary.type_id, "Primary",
                                                                    primary.inverse_type_id)
    for row in await repository.association_definitions(session, account_id, from_type.id, to_type.id):
        kind = AssociationKind(row["category"], row["type_id"], row["label"], row["inverse_type_id"])
        kinds[(kind.category, kind.type_id)] = kind
        if kind.category == HUBSPOT_DEFINED and kind.label is None and default is None:
            default = kind
    if default is None:
        raise HubSpotError(400, f"{from_type.name} and {to_type.name} cannot be associated: define the association "
                                "on the custom object's schema first",
                           errors=[{"message": "pair not associable", "code": "ASSOCIATION_NOT_ALLOWED"}])
    return PairTypes(from_type, to_type, kinds, default)


def _event(kind: str, account_id: int, row: tuple[str, int, str, int, str, int]) -> CloudEvent:
    ft, fi, tt, ti, category, type_id = row
    return CloudEvent(source=SOURCE, type=kind, subject=f"{ft}/{fi}", corralaccount=account_id,
                      data={"fromObjectTypeId": ft, "fromObjectId": str(fi), "toObjectTypeId": tt,
                            "toObjectId": str(ti), "associationCategory": category, "associationTypeId": type_id})


async def _check_records(session: AsyncSession, account_id: int, object_type: ObjectType, ids: list[int]) -> None:
    found = await repository.existing_record_ids(session, account_id, object_type.id, ids)
    missing = sorted(set(ids) - found)
    if missing:
        raise HubSpotError(404, f"No {object_type.singular} with id {missing[0]} was found",
                           category="OBJECT_NOT_FOUND")


async def _check_primary(session: AsyncSession, account_id: int, pair: PairTypes, from_id: int, kind: AssociationKind,
                         to_id: int) -> None:
    primary = PRIMARY_TYPES.get((pair.from_type.id, pair.to_type.id))
    if primary is None or kind.type_id != primary.type_id or kind.category != HUBSPOT_DEFINED:
        return
    holders = await repository.primary_associations(session, account_id, from_id, pair.to_type.id, primary.type_id)
    others = [h for h in holders if h != to_id]
    if others:
        raise HubSpotError(
            400, f"{pair.from_type.singular} {from_id} already has a primary {pair.to_type.singular} ({others[0]}); "
                 f"remove that label first",
            errors=[{"message": "a record has at most one primary company", "code": "PRIMARY_ALREADY_SET",
                     "context": {"existingPrimaryId": [str(others[0])]}}])


async def add(session: AsyncSession, *, account_id: int, pair: PairTypes, from_id: int, to_id: int,
              kinds: list[AssociationKind], source: WriteSource, replace: bool = False) -> list[AssociationKind]:
    """Associate two records with the given kinds (plus the pair's default); `replace` drops other labels."""
    await _check_records(session, account_id, pair.from_type, [from_id])
    await _check_records(session, account_id, pair.to_type, [to_id])
    wanted = list(dict.fromkeys([*kinds, *( [pair.default] if pair.default else [])]))
    for kind in wanted:
        await _check_primary(session, account_id, pair, from_id, kind, to_id)
    removed: list[tuple[str, int, str, int, str, int]] = []
    if replace:
        existing = await repository.association_rows_between(session, account_id, from_id, to_id)
        keep = {(k.category, k.type_id) for k in wanted}
        drop = [(r["from_id"], r["to_id"], r["category"], r["type_id"]) for r in existing
                if (r["category"], r["type_id"]) not in keep]
        inverse_drop = []
        for f, t, c, ty in drop:
            kind = pair.kinds.get((c, ty))
            if kind and kind.inverse_type_id is not None:
                inverse_drop.append((t, f, c, kind.inverse_type_id))
        gone = await repository.delete_associations(session, account_id, drop + inverse_drop)
        removed = [(pair.from_type.id if (f, t) == (from_id, to_id) else pair.to_type.id, f,
                    pair.to_type.id if (f, t) == (from_id, to_id) else pair.from_type.id, t, c, ty)
                   for f, t, c, ty in gone]
    rows = []
    for kind in wanted:
        rows.append((pair.from_type.id, from_id, pair.to_type.id, to_id, kind.category, kind.type_id))
        if kind.inverse_type_id is not None:
            rows.append((pair.to_type.id, to_id, pair.from_type.id, from_id, kind.category, kind.inverse_type_id))
    added = await repository.insert_associations(session, account_id, rows)
    await journal(session, source, association_journal(source, account_id, added, "ASSOCIATE")
                  + association_journal(source, account_id, removed, "DISSOCIATE"))
    await add_events(session, [_event("association.created", account_id, r) for r in added]
                     + [_event("association.removed", account_id, r) for r in removed])
    current = await repository.association_rows_between(session, account_id, from_id, to_id)
    return [pair.kinds[(r["category"], r["type_id"])] for r in current if (r["category"], r["type_id"]) in pair.kinds]


async def remove(session: AsyncSession, *, account_id: int, pair: PairTypes, from_id: int, to_ids: list[int],
                 kinds: list[AssociationKind] | None, source: WriteSource) -> int:
    """Remove all associations (or only `kinds`) from one record to others, both directions."""
    doomed: list[tuple[int, int, str, int]] = []
    for to_id in to_ids:
        for row in await repository.association_rows_between(session, account_id, from_id, to_id):
            key = (row["category"], row["type_id"])
            if kinds is not None and key not in {(k.category, k.type_id) for k in kinds}:
                continue
            doomed.append((from_id, to_id, row["category"], row["type_id"]))
            kind = pair.kinds.get(key)
            if kind and kind.inverse_type_id is not None:
                doomed.append((to_id, from_id, row["category"], kind.inverse_type_id))
    gone = await repository.delete_associations(session, account_id, doomed)
    rows = [(pair.from_type.id if f == from_id else pair.to_type.id, f,
             pair.to_type.id if f == from_id else pair.from_type.id, t, c, ty) for f, t, c, ty in gone]
    await journal(session, source, association_journal(source, account_id, rows, "DISSOCIATE"))
    await add_events(session, [_event("association.removed", account_id, r) for r in rows])
    return len(gone)


def labels_out(kinds: list[AssociationKind]) -> list[dict[str, Any]]:
    return [{"category": k.category, "typeId": k.type_id, "label": k.label} for k in kinds]


async def create_label(session: AsyncSession, *, account_id: int, pair: PairTypes, reverse: PairTypes, label: str,
                       name: str, inverse_label: str | None) -> list[AssociationKind]:
    if len(pair.user_labels()) >= MAX_LABELS_PER_PAIR:
        raise HubSpotError(400, f"{pair.from_type.name} to {pair.to_type.name} already has {MAX_LABELS_PER_PAIR} "
                                "association labels, the most a pair may have",
                           errors=[{"message": "label limit reached", "code": "TOO_MANY_LABELS"}])
    if any((k.label or "").lower() == label.lower() for k in pair.user_labels()):
        raise HubSpotError(409, f"An association label named '{label}' already exists between "
                                f"{pair.from_type.name} and {pair.to_type.name}", category="CONFLICT")
    forward = await repository.insert_association_definition(session, account_id, pair.from_type.id,
                                                             pair.to_type.id, name, label)
    created = [AssociationKind(USER_DEFINED, forward["type_id"], label, None)]
    same_pair = pair.from_type.id == pair.to_type.id
    if inverse_label or not same_pair:
        backward = await repository.insert_association_definition(
            session, account_id, pair.to_type.id, pair.from_type.id, f"{name}_inverse" if inverse_label else name,
            inverse_label or label)
        await repository.link_inverse_definitions(session, account_id, forward["type_id"], backward["type_id"])
        created = [AssociationKind(USER_DEFINED, forward["type_id"], label, backward["type_id"]),
                   AssociationKind(USER_DEFINED, backward["type_id"], inverse_label or label, forward["type_id"])]
    else:
        await repository.link_inverse_definitions(session, account_id, forward["type_id"], forward["type_id"])
    return created


@dataclass
class PairRequest:
    """One input of a batch: associate `from_id` with `to_id` with `kinds` (the default always comes too)."""

    index: int
    from_id: int
    to_id: int
    kinds: list[AssociationKind]


@dataclass
class BatchOutcome:
    labels: dict[int, list[AssociationKind]]  # input index -> the pair's kinds after the write
    errors: dict[int, str]  # input index -> why it was refused


async def add_many(session: AsyncSession, *, account_id: int, pair: PairTypes, requests: list[PairRequest],
                   source: WriteSource) -> BatchOutcome:
    """Set-based `add` for batch endpoints and imports: a few statements per call, not per input."""
    errors: dict[int, str] = {}
    from_found = await repository.existing_record_ids(session, account_id, pair.from_type.id,
                                                      sorted({r.from_id for r in requests}))
    to_found = await repository.existing_record_ids(session, account_id, pair.to_type.id,
                                                    sorted({r.to_id for r in requests}))
    for r in requests:
        if r.from_id not in from_found:
            errors[r.index] = f"No {pair.from_type.singular} with id {r.from_id} was found"
        elif r.to_id not in to_found:
            errors[r.index] = f"No {pair.to_type.singular} with id {r.to_id} was found"
    primary = PRIMARY_TYPES.get((pair.from_type.id, pair.to_type.id))
    if primary is not None:
        wanting = [r for r in requests if r.index not in errors
                   and any(k.category == HUBSPOT_DEFINED and k.type_id == primary.type_id for k in r.kinds)]
        if wanting:
            holders = await repository.primary_holders(session, account_id, [r.from_id for r in wanting],
                                                       pair.to_type.id, primary.type_id)
            for r in wanting:
                current = holders.get(r.from_id)
                if current is not None and current != r.to_id:
                    errors[r.index] = (f"{pair.from_type.singular} {r.from_id} already has a primary "
                                       f"{pair.to_type.singular} ({current})")
                else:
                    holders[r.from_id] = r.to_id  # a second input of this batch may not take it either
    rows = []
    for r in requests:
        if r.index in errors:
            continue
        for kind in dict.fromkeys([*r.kinds, *([pair.default] if pair.default else [])]):
            rows.append((pair.from_type.id, r.from_id, pair.to_type.id, r.to_id, kind.category, kind.type_id))
            if kind.inverse_type_id is not None:
                rows.append((pair.to_type.id, r.to_id, pair.from_type.id, r.from_id, kind.category,
                             kind.inverse_type_id))
    added = await repository.insert_associations(session, account_id, rows)
    await journal(session, source, association_journal(source, account_id, added, "ASSOCIATE"))
    time = now_iso()
    await add_events(session, [_event_dict("association.created", account_id, row, time) for row in added])
    ok = [r for r in requests if r.index not in errors]
    current = await repository.associations_between_pairs(session, account_id, [(r.from_id, r.to_id) for r in ok])
    labels = {r.index: [pair.kinds[key] for key in current.get((r.from_id, r.to_id), []) if key in pair.kinds]
              for r in ok}
    return BatchOutcome(labels=labels, errors=errors)


async def remove_many(session: AsyncSession, *, account_id: int, pair: PairTypes, pairs: list[tuple[int, int]],
                      kinds: dict[tuple[int, int], list[AssociationKind]] | None, source: WriteSource) -> int:
    """Set-based `remove`: all associations (or only the given kinds) between each pair, both directions."""
    current = await repository.associations_between_pairs(session, account_id, pairs)
    doomed: list[tuple[int, int, str, int]] = []
    for from_id, to_id in pairs:
        wanted = None if kinds is None else {(k.category, k.type_id) for k in kinds.get((from_id, to_id), [])}
        for category, type_id in current.get((from_id, to_id), []):
            if wanted is not None and (category, type_id) not in wanted:
                continue
            doomed.append((from_id, to_id, category, type_id))
            kind = pair.kinds.get((category, type_id))
            if kind and kind.inverse_type_id is not None:
                doomed.append((to_id, from_id, category, kind.inverse_type_id))
    gone = await repository.delete_associations(session, account_id, doomed)
    from_ids = {f for f, _ in pairs}
    rows = [(pair.from_type.id if f in from_ids else pair.to_type.id, f,
             pair.to_type.id if f in from_ids else pair.from_type.id, t, c, ty) for f, t, c, ty in gone]
    await journal(session, source, association_journal(source, account_id, rows, "DISSOCIATE"))
    time = now_iso()
    await add_events(session, [_event_dict("association.removed", account_id, row, time) for row in rows])
    return len(gone)


def _event_dict(kind: str, account_id: int, row: tuple[str, int, str, int, str, int], time: str) -> dict[str, Any]:
    ft, fi, tt, ti, category, type_id = row
    return event_dict(source=SOURCE, type=kind, account_id=account_id, subject=f"{ft}/{fi}", time=time,
                      data={"fromObjectTypeId": ft, "fromObjectId": str(fi), "toObjectTypeId": tt,
                            "toObjectId": str(ti), "associationCategory": category, "associationTypeId": type_id})
