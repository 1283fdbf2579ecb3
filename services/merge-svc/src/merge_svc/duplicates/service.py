"""Duplicate suggestions: settings, scan jobs, suggestions, dismissals, check before create, and keeping
suggestions current as records change. Keyword-only use cases; the caller owns the transaction."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_common.contracts.base import ServiceCallError
from crm_common.contracts.records import RecordsClient
from crm_common.errors import HubSpotError
from crm_common.timestamps import timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession

from merge_svc.domain import matching
from merge_svc.domain.clustering import connected_components
from merge_svc.domain.matching import Kind, MatchingSettings, MatchProperty, SettingsError, TrainedModel
from merge_svc.duplicates import repository

MAX_CHECK_RESULTS = 10


@dataclass(frozen=True)
class ObjectTypeRef:
    id: str
    name: str


_STANDARD = {key: ObjectTypeRef(type_id, plural) for type_id, plural, singular in (
    ("0-1", "contacts", "contact"), ("0-2", "companies", "company"), ("0-3", "deals", "deal"),
    ("0-5", "tickets", "ticket")) for key in (type_id, plural, singular)}


# Object type ids (2-17) and names (p123_cars, cars): anything else cannot name a type.
_TYPE_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


async def resolve_type(*, account_id: int, object_type: str, records: RecordsClient) -> ObjectTypeRef:
    """The object type as records-svc knows it (any spelling: plural, singular, 0-1, 2-5, a custom name);
    the common standard types without asking."""
    if object_type.lower() in _STANDARD:
        return _STANDARD[object_type.lower()]
    if not _TYPE_NAME.fullmatch(object_type):
        raise HubSpotError(404, f"Unknown object type {object_type!r}", category="OBJECT_NOT_FOUND")
    try:
        page = await records.export_page(account_id, object_type,
                                         properties=["hs_object_id"], limit=1)
    except ServiceCallError as exc:
        if exc.status in (400, 404):
            raise HubSpotError(404, f"Unknown object type {object_type!r}", category="OBJECT_NOT_FOUND") from None
        raise
    return ObjectTypeRef(id=page.objectTypeId, name=page.objectType)


async def _property_types(records: RecordsClient, account_id: int, object_type_id: str) -> dict[str, str]:
    """Every property of the object type with its type (string, number, date, enumeration, ...)."""
    return {name: str(p.get("type", "string")) for name, p in (await records.properties(account_id, object_type_id)).items()}


async def default_settings(*, account_id: int, object_type: ObjectTypeRef,
                           records: RecordsClient) -> MatchingSettings:
    """The built-in defaults of a standard type, or a custom object's display and searchable properties;
    only properties the account's object type has."""
    known = await _property_types(records, account_id, object_type.id)
    settings = matching.DEFAULT_SETTINGS.get(object_type.id)
    if settings is None:
        schema = await records.custom_schema(account_id, object_type.id) or {}
        wanted = [schema.get("primaryDisplayProperty"), *(schema.get("secondaryDisplayProperties") or []),
                  *(schema.get("searchableProperties") or [])]
        settings = matching.custom_object_defaults((n, known[n]) for n in wanted if n and n in known)
    kept = tuple(p for p in settings.properties if p.name in known)
    return MatchingSettings(kept, settings.threshold)


async def current_settings(*, account_id: int, object_type: ObjectTypeRef, records: RecordsClient,
                           session: AsyncSession) -> tuple[MatchingSettings, bool]:
    """(settings, whether they are the defaults)."""
    stored = await repository.get_settings(session, account_id, object_type.id)
    if stored is not None:
        return MatchingSettings.from_json(stored), False
    return await default_settings(account_id=account_id, object_type=object_type, records=records), True


def parse_settings(body: Mapping[str, Any]) -> MatchingSettings:
    """Settings from a request body, refusing unknown kinds with the property they were given for."""
    raw_properties = body.get("properties")
    if not isinstance(raw_properties, list):
        raise HubSpotError(400, "properties must be a list of {\"name\", \"kind\"}", category="VALIDATION_ERROR")
    kinds = ", ".join(k.value for k in Kind)
    parsed = []
    for index, item in enumerate(raw_properties):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise HubSpotError(400, f"properties[{index}] must be {{\"name\": <property>, \"kind\": <kind>}}",
                               category="VALIDATION_ERROR")
        try:
            kind = Kind(str(item.get("kind", "")).lower())
        except ValueError:
            raise HubSpotError(400, f"properties[{index}] ({item['name']}): unknown kind {item.get('kind')!r}; "
                                    f"use one of {kinds}", category="VALIDATION_ERROR",
                               errors=[{"message": f"unknown kind {item.get('kind')!r}", "code": "INVALID_KIND",
                                        "in": f"properties[{index}].kind",
                                        "context": {"propertyName": [item["name"]]}}]) from None
        parsed.append(MatchProperty(item["name"], kind))
    threshold = body.get("threshold", matching.DEFAULT_THRESHOLD)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise HubSpotError(400, "threshold must be a number between 0 and 1", category="VALIDATION_ERROR")
    return MatchingSettings(tuple(parsed), float(threshold))


async def put_settings(*, account_id: int, object_type: ObjectTypeRef, settings: MatchingSettings,
                       records: RecordsClient, session: AsyncSession) -> None:
    known = await _property_types(records, account_id, object_type.id)
    try:
        matching.validate(settings, known)
    except SettingsError as exc:
        errors = [{"message": str(exc), "code": "PROPERTY_DOESNT_EXIST" if exc.property_name else "INVALID_SETTINGS",
                   "in": "properties", **({"context": {"propertyName": [exc.property_name]}}
                                          if exc.property_name else {})}]
        raise HubSpotError(400, f"{object_type.name}: {exc}", category="VALIDATION_ERROR", errors=errors) from None
    await repository.put_settings(session, account_id, object_type.id, settings.as_json())


async def start_scan(*, account_id: int, object_type: ObjectTypeRef, records: RecordsClient,
                     session: AsyncSession) -> dict[str, Any]:
    settings, _ = await current_settings(account_id=account_id, object_type=object_type, records=records,
                                         session=session)
    if not settings.properties:
        raise HubSpotError(400, f"No property of {object_type.name} is compared; set the matching settings first")
    first = await records.export_page(account_id, object_type.id, properties=["hs_object_id"],
                                      limit=1)
    if not first.results:
        raise HubSpotError(400, f"There are no {object_type.name} records in this account to scan for duplicates",
                           category="VALIDATION_ERROR", sub_category="NO_RECORDS")
    await repository.lock_type(session, account_id, object_type.id)
    running = await repository.open_job(session, account_id, object_type.id)
    if running is not None:
        raise HubSpotError(409, f"A duplicate scan of {object_type.name} is already running (job {running['id']})",
                           category="CONFLICT", context={"jobId": [str(running["id"])]})
    return await repository.create_job(session, account_id=account_id, object_type_id=object_type.id,
                                       object_type=object_type.name, settings=settings.as_json())


def job_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "objectType": row["object_type"], "objectTypeId": row["object_type_id"],
            "status": row["status"], "phase": row.get("phase"), "progress": row.get("progress") or {},
            "error": row.get("error"), "createdAt": timestamp_or_none(row["created_at"]), "startedAt": timestamp_or_none(row.get("started_at")),
            "completedAt": timestamp_or_none(row.get("finished_at"))}


# --- suggestions ----------------------------------------------------------------------------------------


async def suggestions(*, account_id: int, object_type: ObjectTypeRef, min_score: float, after: int, limit: int,
                      session: AsyncSession) -> dict[str, Any]:
    rows = await repository.list_clusters(session, account_id, object_type.id, min_score=min_score, after=after,
                                          limit=limit + 1)
    page = rows[:limit]
    pairs = await repository.pairs_of_clusters(session, [r["id"] for r in page])
    body: dict[str, Any] = {"results": [cluster_view(r, object_type.name, pairs.get(r["id"], [])) for r in page]}
    if len(rows) > limit:
        body["paging"] = {"next": {"after": str(page[-1]["id"])}}
    return body


def cluster_view(row: Mapping[str, Any], object_type: str, pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"id": str(row["id"]), "objectType": object_type, "objectTypeId": row["object_type_id"],
            "recordIds": [str(i) for i in row["record_ids"]], "score": round(float(row["score"]), 6),
            "pairs": [{"recordIds": [str(p["left_id"]), str(p["right_id"])], "score": round(float(p["score"]), 6),
                       "matchedOn": p["matched_on"]} for p in pairs]}


async def dismiss(*, account_id: int, cluster_id: int, session: AsyncSession) -> dict[str, Any]:
    """Every pair of the cluster is dismissed with its records' current fingerprints; the cluster goes."""
    cluster = await repository.get_cluster(session, account_id, cluster_id)
    if cluster is None:
        raise HubSpotError(404, f"Duplicate suggestion {cluster_id} does not exist (dismissed, merged, or replaced "
                                "by a newer scan)", category="OBJECT_NOT_FOUND")
    type_id = cluster["object_type_id"]
    await repository.lock_type(session, account_id, type_id)
    cluster = await repository.get_cluster(session, account_id, cluster_id, for_update=True)
    if cluster is None:
        raise HubSpotError(404, f"Duplicate suggestion {cluster_id} does not exist", category="OBJECT_NOT_FOUND")
    members = sorted(int(i) for i in cluster["record_ids"])
    indexed = await repository.indexed(session, account_id, type_id, members)
    dismissed = [(a, b, indexed[a][1], indexed[b][1]) for i, a in enumerate(members) for b in members[i + 1:]
                 if a in indexed and b in indexed]
    await repository.dismiss_pairs(session, account_id, type_id, dismissed)
    await repository.delete_clusters(session, [cluster_id])
    await repository.delete_pairs_within(session, account_id, type_id, members)
    return {"id": str(cluster_id), "dismissed": True, "recordIds": [str(i) for i in members]}


# --- scoring one record against the index ---------------------------------------------------------------


def _still_dismissed(pair: tuple[int, int], fingerprints: Mapping[int, str],
                     dismissals: Mapping[tuple[int, int], tuple[str, str]]) -> bool:
    seen = dismissals.get(pair)
    return seen is not None and seen == (fingerprints.get(pair[0]), fingerprints.get(pair[1]))


async def _model(session: AsyncSession, account_id: int, type_id: str) -> tuple[MatchingSettings, TrainedModel] | None:
    row = await repository.get_model(session, account_id, type_id)
    if row is None:
        return None
    return MatchingSettings.from_json(row["settings"]), TrainedModel.from_json(row["model"])


async def check(*, account_id: int, object_type: ObjectTypeRef, properties: Mapping[str, Any],
                session: AsyncSession, min_score: float | None = None) -> dict[str, Any]:
    """The likely existing duplicates of a record about to be created, best first."""
    trained = await _model(session, account_id, object_type.id)
    if trained is None:
        raise HubSpotError(409, f"No duplicate model for {object_type.name} yet: run a duplicate scan first "
                                "(POST /corral/v1/duplicates/jobs)", category="CONFLICT", sub_category="NO_MODEL")
    settings, model = trained
    values = matching.features(properties, settings)
    found = await repository.candidates(session, account_id, object_type.id, matching.block_keys(values, settings),
                                        max_block=matching.MAX_BLOCK)
    specs = matching.comparisons(settings)
    floor = settings.threshold if min_score is None else min_score
    scored = []
    for record_id, (other, _) in found.items():
        result = matching.score(model, specs, values, other)
        if result.probability >= floor:
            scored.append((result.probability, record_id, result.matched_on))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return {"objectType": object_type.name, "threshold": settings.threshold,
            "results": [{"id": str(rid), "score": round(p, 6), "matchedOn": on}
                        for p, rid, on in scored[:MAX_CHECK_RESULTS]]}


async def refresh_records(*, account_id: int, type_id: str, current: Mapping[int, Mapping[str, Any] | None],
                          session: AsyncSession) -> None:
    """Re-file records whose values changed (None: archived, merged away or deleted) and re-form the
    clusters they were or now are in. Nothing happens before the type's first scan (no model yet)."""
    trained = await _model(session, account_id, type_id)
    if trained is None or not current:
        return
    settings, model = trained
    specs = matching.comparisons(settings)
    await repository.lock_type(session, account_id, type_id)
    filed = _features(settings, current)
    # A record filed with the same compared values is where it was (the scan or an earlier event scored it
    # with this model): the changes a scan has already read cost one query, not a re-scoring each.
    unchanged = {rid for rid, (_, fp) in (await repository.indexed(session, account_id, type_id, sorted(filed))).items()
                 if filed[rid][1] == fp}
    current = {rid: props for rid, props in current.items() if rid not in unchanged}
    if not current:
        return
    touched = set(current)
    before = await repository.clusters_of(session, account_id, type_id, sorted(touched))
    for cluster in before:
        touched.update(int(i) for i in cluster["record_ids"])
    await repository.delete_pairs_of(session, account_id, type_id, sorted(current))
    gone = [rid for rid, props in current.items() if props is None]
    await repository.remove_from_index(session, account_id, type_id, gone)
    new_pairs: list[tuple[int, int, float, dict[str, str]]] = []
    for record_id, props in current.items():
        if props is None:
            continue
        values, fingerprint = filed[record_id]
        keys = matching.block_keys(values, settings)
        await repository.upsert_indexed(session, account_id, type_id, record_id, values, fingerprint, keys)
        found = await repository.candidates(session, account_id, type_id, keys, max_block=matching.MAX_BLOCK,
                                            exclude=record_id)
        dismissals = await repository.dismissed(session, account_id, type_id, [record_id])
        fingerprints = {record_id: fingerprint, **{rid: fp for rid, (_, fp) in found.items()}}
        for other_id, (other, _) in found.items():
            if other_id in current and current[other_id] is None:
                continue
            result = matching.score(model, specs, values, other)
            pair = (min(record_id, other_id), max(record_id, other_id))
            if result.probability >= settings.threshold and not _still_dismissed(pair, fingerprints, dismissals):
                new_pairs.append((*pair, result.probability, result.matched_on))
                touched.add(other_id)
    await repository.insert_pairs(session, account_id, type_id, _dedupe(new_pairs))
    await recluster(session=session, account_id=account_id, type_id=type_id, around=touched)


def _features(settings: MatchingSettings, current: Mapping[int, Mapping[str, Any] | None]
                    ) -> dict[int, tuple[dict[str, Any], str]]:
    """The compared values and fingerprint of each live record."""
    filed = {}
    for record_id, props in current.items():
        if props is not None:
            values = matching.features(props, settings)
            filed[record_id] = (values, matching.fingerprint(values))
    return filed


def _dedupe(pairs: Iterable[tuple[int, int, float, dict[str, str]]]) -> list[tuple[int, int, float, dict[str, str]]]:
    return list({(a, b): (a, b, s, m) for a, b, s, m in pairs}.values())


async def recluster(*, session: AsyncSession, account_id: int, type_id: str, around: Iterable[int]) -> None:
    """Replace the clusters of the connected components that contain `around`."""
    frontier = set(around)
    component: set[int] = set()
    pairs: dict[tuple[int, int], tuple[int, int, float, dict[str, str]]] = {}
    while frontier:
        component |= frontier
        found = await repository.pairs_among(session, account_id, type_id, sorted(frontier))
        frontier = set()
        for pair in found:
            pairs[(pair[0], pair[1])] = pair
            frontier.update(i for i in pair[:2] if i not in component)
    old = await repository.clusters_of(session, account_id, type_id, sorted(component))
    await repository.delete_clusters(session, [c["id"] for c in old])
    await repository.insert_clusters(session, account_id, type_id, connected_components(pairs.values()))


