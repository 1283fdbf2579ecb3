"""One batch of rows through records-svc: values converted, records upserted, rows associated.

Every call made here is idempotent by key (email, domain, record id, association), so a batch
that is sent again after a crash writes nothing twice; the checkpoint that follows it records
where the next batch starts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from crm_common.contracts.records import BulkRowInput, BulkUpsertOptions, RecordsClient

from import_svc.error_types import import_error_type
from import_svc.files import FileLayout
from import_svc.plan import ColumnMapping, FilePlan, ImportPlan
from import_svc.values import CouldNotParse, NumberFormat, convert

CONVERTED_TYPES = frozenset({"date", "datetime", "number"})
DEAL = "0-3"
PRODUCT = "0-7"
LINE_ITEM = "0-8"
# What a line item takes from its product when the row leaves it out, as HubSpot fills a line item
# created from a product (only those the line item type defines are copied).
PRODUCT_INHERITED_PROPERTIES = ("name", "price", "description", "hs_sku", "hs_cost_of_goods_sold",
                                "recurringbillingfrequency", "hs_recurring_billing_period")
# A line item belongs to its deal only: a row's other records (its contact, its company) are not linked to it.
LINE_ITEM_PARENTS = frozenset({DEAL})

# Mail providers whose domain says nothing about the contact's company.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "aol.com",
    "icloud.com", "me.com", "mail.com", "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com",
    "yandex.ru", "msn.com", "orange.fr", "free.fr", "qq.com", "163.com",
})


@dataclass
class JobContext:
    import_id: int
    account_id: int
    plan: ImportPlan
    records: RecordsClient
    catalogs: dict[str, dict[str, dict[str, Any]]]
    number_format: NumberFormat
    time_zone: ZoneInfo | None
    label_ids: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    replay_since: datetime | None = None
    converted: dict[str, dict[str, str | CouldNotParse]] = field(default_factory=dict)
    # product id -> what its line items inherit, or None when the account has no such product
    products: dict[str, dict[str, str] | None] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return f"import:{self.import_id}"

    @property
    def source_id(self) -> str:
        return str(self.import_id)


@dataclass
class BoundFile:
    file_id: int
    plan: FilePlan
    columns: list[ColumnMapping]
    layout: FileLayout
    path: Path

    @property
    def width(self) -> int:
        return len(self.layout.header or []) or (max((c.index for c in self.columns), default=-1) + 1)


@dataclass
class BatchOutcome:
    errors: list[dict[str, Any]] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


@dataclass
class _Pending:
    """Rows bound for one bulk-upsert call."""

    id_property: str | None
    rows: list[BulkRowInput] = field(default_factory=list)
    # ref -> every line the ref stands for (company rows sharing a domain travel as one).
    lines: dict[int, list[int]] = field(default_factory=dict)


class _Errors:
    def __init__(self, bound: BoundFile, out: BatchOutcome, cells_by_line: dict[int, list[str]]) -> None:
        self.bound = bound
        self.out = out
        self.cells = cells_by_line
        self.failed_lines: set[int] = set()

    def add(self, line: int, error_type: str, message: str, *, value: str | None = None,
            column: ColumnMapping | None = None, object_type_id: str | None = None, fails_row: bool = False) -> None:
        self.out.errors.append({
            "file_id": self.bound.file_id, "line_number": line, "error_type": import_error_type(error_type),
            "message": message,
            "invalid_value": value, "column_number": column.index if column else None,
            "column_name": _column_name(self.bound, column),
            "object_type_id": object_type_id or (column.object_type_id if column else None),
            "row_data": self.cells.get(line, []),
        })
        self.out.counters["ERRORS"] += 1
        if fails_row:
            self.failed_lines.add(line)


def _column_name(bound: BoundFile, column: ColumnMapping | None) -> str | None:
    if column is None:
        return None
    header = bound.layout.header or []
    return header[column.index] if column.index < len(header) else column.name


async def process_batch(ctx: JobContext, bound: BoundFile, rows: list[tuple[int, list[str]]]) -> BatchOutcome:
    out = BatchOutcome()
    cells_by_line = {line: cells for line, cells in rows}
    errors = _Errors(bound, out, cells_by_line)
    width = bound.width
    good: list[tuple[int, list[str]]] = []
    for line, cells in rows:
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            errors.add(line, "INCORRECT_NUMBER_OF_COLUMNS",
                       f"Row has {len(cells)} columns but the header has {width}", fails_row=True)
            continue
        good.append((line, cells))
    out.counters["ROWS_PROCESSED"] += len(rows)

    # line -> object type -> record id
    ids: dict[int, dict[str, str]] = {line: {} for line, _ in good}
    for type_id in bound.plan.object_types():
        await _write_object_type(ctx, bound, type_id, good, ids, errors, out)
    if ctx.plan.create_companies_from_domains and "0-1" in bound.plan.object_types() \
            and "0-2" not in bound.plan.object_types():
        await _companies_from_domains(ctx, bound, good, ids, errors, out)
    await _associate(ctx, bound, good, ids, errors, out)
    out.counters["ROWS_WITH_ERRORS"] += len({e["line_number"] for e in out.errors})
    return out


def _row_properties(ctx: JobContext, bound: BoundFile, type_id: str, line: int, cells: list[str],
                    columns: list[ColumnMapping], errors: _Errors) -> dict[str, str] | None:
    """The row's values for one object type; None when the row cannot address a record of it."""
    catalog = ctx.catalogs.get(type_id, {})
    props: dict[str, str] = {}
    for column in columns:
        raw = cells[column.index].strip() if column.index < len(cells) else ""
        if raw == "":
            continue  # a blank cell never clears a value
        name = column.property_name or ""
        if type_id == LINE_ITEM and name == "hs_product_id":
            props[name] = raw  # a record id, checked against the products (not a number to reformat)
            continue
        if name == "hs_object_id":
            if not raw.isdigit():
                errors.add(line, "INVALID_OBJECT_ID", f"{raw} is not a record ID", value=raw, column=column,
                           fails_row=True)
                return None
            props[name] = raw
            continue
        definition = catalog.get(name)
        if definition is None and name != "hs_object_id":
            errors.add(line, "PROPERTY_DEFINITION_NOT_FOUND", f'Property "{name}" does not exist', value=raw,
                       column=column)
            continue
        prop_type = (definition or {}).get("type", "string")
        if prop_type not in CONVERTED_TYPES:
            props[name] = raw
            continue
        # Converted once per distinct value of the column (dates and numbers repeat a lot).
        memo = ctx.converted.setdefault(f"{type_id}:{name}", {})
        outcome = memo.get(raw)
        if outcome is None:
            try:
                outcome = convert(raw, prop_type, date_format=ctx.plan.date_format, number_format=ctx.number_format,
                                  time_zone=ctx.time_zone)
            except CouldNotParse as exc:
                outcome = exc
            if len(memo) < 100_000:
                memo[raw] = outcome
        if isinstance(outcome, CouldNotParse):
            errors.add(line, outcome.code, outcome.message, value=raw, column=column)
            continue
        props[name] = outcome
    return props


def creation_key(ctx: JobContext, bound: BoundFile, line: int) -> str:
    return f"import:{ctx.import_id}:{bound.file_id}:{line}"


def _unique_key_property(ctx: JobContext, type_id: str, columns: list[ColumnMapping]) -> str | None:
    names = [c.property_name for c in columns]
    if type_id == "0-1" and "email" in names:
        return "email"
    if type_id == "0-2" and "domain" in names:
        return "domain"
    catalog = ctx.catalogs.get(type_id, {})
    for c in columns:
        if c.property_name and (catalog.get(c.property_name) or {}).get("hasUniqueValue"):
            return c.property_name
    return None


def _normalise_domain(value: str) -> str:
    domain = value.strip().lower()
    for prefix in ("https://", "http://"):
        domain = domain.removeprefix(prefix)
    domain = domain.split("/", 1)[0]
    return domain.removeprefix("www.")


async def _link_products(ctx: JobContext, columns: list[ColumnMapping], rows: list[tuple[int, dict[str, str]]],
                         errors: _Errors) -> list[tuple[int, dict[str, str]]]:
    """Line items whose Product ID names an existing product, filled from it; the others are errors.

    An import creates line items and never updates them, so one created with a product that does not
    exist could not be corrected by importing the fixed file again (that would create a second one):
    such a row creates no line item.
    """
    column = next((c for c in columns if c.property_name == "hs_product_id"), None)
    wanted = {str(int(p["hs_product_id"])) for _, p in rows if p.get("hs_product_id", "").isdigit()}
    known = {product_id: ctx.products[product_id] for product_id in wanted if product_id in ctx.products}
    unknown = sorted(wanted - set(known))
    if unknown:
        existing = await ctx.records.resolve(ctx.account_id, PRODUCT, "hs_object_id", unknown)
        inherited = [p for p in PRODUCT_INHERITED_PROPERTIES if p in ctx.catalogs.get(LINE_ITEM, {})]
        found = [product_id for product_id in unknown if product_id in existing]
        values = await ctx.records.record_properties(ctx.account_id, PRODUCT, found, inherited) \
            if found and inherited else {}
        for product_id in unknown:
            known[product_id] = values.get(product_id, {}) if product_id in existing else None
        if len(ctx.products) < 100_000:  # products repeat across batches; the memo only saves calls
            ctx.products.update({product_id: known[product_id] for product_id in unknown})
    kept: list[tuple[int, dict[str, str]]] = []
    for line, props in rows:
        raw = props.get("hs_product_id")
        if raw is None:
            kept.append((line, props))  # a line item of its own, tied to no product
            continue
        product = known.get(str(int(raw))) if raw.isdigit() else None
        if product is None:
            message = (f"No product with ID {raw} exists in this account" if raw.isdigit()
                       else f"{raw} is not a product ID")
            errors.add(line, "INVALID_OBJECT_ID", f"{message}; the line item was not created", value=raw,
                       column=column, object_type_id=LINE_ITEM, fails_row=True)
            continue
        props["hs_product_id"] = str(int(raw))
        for name, value in product.items():
            props.setdefault(name, value)
        kept.append((line, props))
    return kept


async def _write_object_type(ctx: JobContext, bound: BoundFile, type_id: str, good: list[tuple[int, list[str]]],
                             ids: dict[int, dict[str, str]], errors: _Errors, out: BatchOutcome) -> None:
    columns = [c for c in bound.columns if c.is_property and c.object_type_id == type_id]
    key_property = _unique_key_property(ctx, type_id, columns)
    by_id = _Pending("hs_object_id")
    by_key = _Pending(key_property)
    keyless = _Pending(None)
    domains: dict[str, dict[str, Any]] = {}  # company domain -> unit, in file order
    addressed: list[tuple[int, dict[str, str]]] = []
    for line, cells in good:
        props = _row_properties(ctx, bound, type_id, line, cells, columns, errors)
        if props:
            addressed.append((line, props))
    if type_id == LINE_ITEM:
        addressed = await _link_products(ctx, columns, addressed, errors)
    for line, props in addressed:
        record_id = props.pop("hs_object_id", None)
        out.counters["PROPERTY_VALUES_EMITTED"] += len(props)
        if record_id:
            by_id.rows.append({"ref": line, "id": record_id, "properties": props})
            by_id.lines[line] = [line]
        elif type_id == "0-2" and props.get("domain"):
            domain = _normalise_domain(props["domain"])
            unit = domains.setdefault(domain, {"lines": [], "properties": {}})
            unit["lines"].append(line)
            unit["properties"].update(props)
        elif key_property and key_property != "domain" and props.get(key_property):
            by_key.rows.append({"ref": line, "properties": props})
            by_key.lines[line] = [line]
        else:
            # No key to find the record again: a creation key makes a re-sent batch recognisable.
            props["hs_unique_creation_key"] = creation_key(ctx, bound, line)
            keyless.rows.append({"ref": line, "properties": props})
            keyless.lines[line] = [line]
    if domains:
        # Companies have no unique domain in records-svc: find existing ones by domain, create one
        # per new domain. Re-sending the batch finds what the first attempt created.
        matches = await ctx.records.resolve(ctx.account_id, type_id, "domain", list(domains))
        for domain, unit in domains.items():
            ref = unit["lines"][0]
            found = sorted(matches.get(domain, []), key=lambda v: int(v) if v.isdigit() else 0)
            if found:
                by_id.rows.append({"ref": ref, "id": found[0], "properties": unit["properties"]})
                by_id.lines[ref] = unit["lines"]
            else:
                keyless.rows.append({"ref": ref, "properties": unit["properties"]})
                keyless.lines[ref] = unit["lines"]
    keep = ["*"] if ctx.plan.keep_existing_all else [c.property_name for c in columns
                                                      if c.keep_existing and c.property_name]
    column_of = {c.property_name: c for c in columns}
    replayed: dict[int, str] = {}
    if ctx.replay_since is not None and keyless.rows:
        # After a crash, rows of this batch that the lost attempt created are found by their key.
        found = await ctx.records.find_by_values(ctx.account_id, type_id, "hs_unique_creation_key",
                                                 [r["properties"]["hs_unique_creation_key"] for r in keyless.rows])
        for row in keyless.rows:
            record_id = found.get(row["properties"]["hs_unique_creation_key"])
            if record_id is not None:
                replayed[row["ref"]] = record_id
        keyless.rows = [r for r in keyless.rows if r["ref"] not in replayed]
        for ref, record_id in replayed.items():
            for line in keyless.lines.get(ref, [ref]):
                ids.setdefault(line, {})[type_id] = record_id
        out.counters["CREATED_OBJECTS"] += len(set(replayed.values()))
        out.counters["UNIQUE_OBJECTS_WRITTEN"] += len(set(replayed.values()))
    for pending in (by_id, by_key, keyless):
        if not pending.rows:
            continue
        options = BulkUpsertOptions(operation=ctx.plan.operation(type_id), idProperty=pending.id_property,
                                    keepExisting=keep, sourceType="IMPORT", sourceId=ctx.source_id,
                                    operationId=ctx.operation_id)
        answer = await ctx.records.bulk_upsert(ctx.account_id, type_id, options, pending.rows)
        created: set[str] = set()
        updated: set[str] = set()
        unchanged: set[str] = set()
        for result in answer.results:
            lines = pending.lines.get(result["ref"], [result["ref"]])
            for e in result.get("errors") or []:
                column = column_of.get(e.get("property")) or (column_of.get(key_property) if e.get("property")
                                                              in (None, key_property) else None)
                for line in lines:
                    errors.add(line, e.get("code") or "UNKNOWN_ERROR", e.get("message") or "", value=e.get("value"),
                               column=column, object_type_id=type_id, fails_row=result["status"] == "ERROR")
            record_id = result.get("id")
            if record_id is None or result["status"] == "ERROR":
                continue
            for line in lines:
                ids.setdefault(line, {})[type_id] = str(record_id)
            {"CREATED": created, "UPDATED": updated, "UNCHANGED": unchanged}[result["status"]].add(str(record_id))
        updated -= created
        unchanged -= created | updated
        if ctx.replay_since is not None and (updated or unchanged):
            created, updated, unchanged = await _reclassify_replay(ctx, type_id, created, updated, unchanged)
        out.counters["CREATED_OBJECTS"] += len(created)
        out.counters["UPDATED_OBJECTS"] += len(updated)
        out.counters["UNCHANGED_OBJECTS"] += len(unchanged)
        out.counters["UNIQUE_OBJECTS_WRITTEN"] += len(created) + len(updated)


async def _reclassify_replay(ctx: JobContext, type_id: str, created: set[str], updated: set[str],
                             unchanged: set[str]) -> tuple[set[str], set[str], set[str]]:
    """Records the crashed attempt created or updated count as such, not as UNCHANGED."""
    assert ctx.replay_since is not None
    since = ctx.replay_since.replace(microsecond=ctx.replay_since.microsecond // 1000 * 1000)  # records-svc sends ms
    times = await _timestamps(ctx, type_id, sorted(updated | unchanged))
    for record_id in sorted(updated | unchanged):
        created_at, updated_at = times.get(record_id, (None, None))
        if created_at is not None and created_at >= since:
            updated.discard(record_id)
            unchanged.discard(record_id)
            created.add(record_id)
        elif updated_at is not None and updated_at >= since and record_id in unchanged:
            unchanged.discard(record_id)
            updated.add(record_id)
    return created, updated, unchanged


async def _companies_from_domains(ctx: JobContext, bound: BoundFile, good: list[tuple[int, list[str]]],
                                  ids: dict[int, dict[str, str]], errors: _Errors, out: BatchOutcome) -> None:
    domains: dict[str, list[int]] = {}
    for line, _ in good:
        if "0-1" not in ids.get(line, {}):
            continue
        email_column = next((c for c in bound.columns if c.is_property and c.object_type_id == "0-1"
                             and c.property_name == "email"), None)
        if email_column is None:
            return
        email = cells_at(good, line)[email_column.index].strip().lower()
        domain = email.rsplit("@", 1)[-1] if "@" in email else ""
        if domain and domain not in FREE_MAIL_DOMAINS:
            domains.setdefault(domain, []).append(line)
    if not domains:
        return
    matches = await ctx.records.resolve(ctx.account_id, "0-2", "domain", list(domains))
    new = [d for d in domains if not matches.get(d)]
    if new:
        answer = await ctx.records.bulk_upsert(
            ctx.account_id, "0-2", BulkUpsertOptions(operation="CREATE", sourceType="IMPORT", sourceId=ctx.source_id,
                                                     operationId=ctx.operation_id),
            [{"ref": i, "properties": {"domain": d, "name": d}} for i, d in enumerate(new)])
        for result in answer.results:
            if result.get("id") and result["status"] == "CREATED":
                matches[new[result["ref"]]] = [str(result["id"])]
                out.counters["CREATED_OBJECTS"] += 1
                out.counters["UNIQUE_OBJECTS_WRITTEN"] += 1
    for domain, lines in domains.items():
        found = sorted(matches.get(domain, []), key=lambda v: int(v) if v.isdigit() else 0)
        if found:
            for line in lines:
                ids[line]["0-2"] = found[0]


def cells_at(rows: list[tuple[int, list[str]]], line: int) -> list[str]:
    for candidate, cells in rows:
        if candidate == line:
            return cells
    return []


async def _label_type_ids(ctx: JobContext, from_type: str, to_type: str) -> dict[str, int]:
    key = (from_type, to_type)
    if key not in ctx.label_ids:
        labels = await ctx.records.association_labels(ctx.account_id, from_type, to_type)
        ctx.label_ids[key] = {str(item.get("label") or "").strip().lower(): int(item["typeId"])
                              for item in labels if item.get("label")}
    return ctx.label_ids[key]


async def _associate(ctx: JobContext, bound: BoundFile, good: list[tuple[int, list[str]]],
                     ids: dict[int, dict[str, str]], errors: _Errors, out: BatchOutcome) -> None:
    inputs: list[dict[str, Any]] = []
    origin: list[tuple[int, ColumnMapping | None]] = []
    seen: set[tuple[Any, ...]] = set()

    def add(line: int, column: ColumnMapping | None, from_type: str, from_id: str, to_type: str, to_id: str,
            type_id: int | None, category: str) -> None:
        key = (from_type, from_id, to_type, to_id, type_id)
        if key in seen:
            return
        seen.add(key)
        item: dict[str, Any] = {"fromObjectType": from_type, "fromId": from_id, "toObjectType": to_type,
                                "toId": to_id, "associationCategory": category}
        if type_id is not None:
            item["associationTypeId"] = type_id
        inputs.append(item)
        origin.append((line, column))

    types = bound.plan.object_types()
    if ctx.plan.create_companies_from_domains and "0-1" in types and "0-2" not in types:
        types = [*types, "0-2"]
    foreign = [c for c in bound.columns if c.is_foreign_key and c.object_type_id]
    labels = [c for c in bound.columns if c.is_label and c.object_type_id and c.to_object_type_id]
    # Foreign-key values resolved per target type, on the target's identifier property.
    resolved: dict[tuple[str, str], list[str]] = {}
    for column in foreign:
        target = column.to_object_type_id or ""
        prop = ctx.plan.identifier_property(target)
        values = sorted({cells[column.index].strip().lower() for _, cells in good
                         if column.index < len(cells) and cells[column.index].strip()})
        if prop == "hs_object_id":
            for v in values:
                resolved[(target, v)] = [v]
        else:
            for value, matches in (await ctx.records.resolve(ctx.account_id, target, prop, values)).items():
                resolved[(target, value)] = matches
    for line, cells in good:
        row_ids = ids.get(line, {})
        for i, a in enumerate(types):
            for b in types[i + 1:]:
                if a in row_ids and b in row_ids and _linked_in_a_row(a, b):
                    add(line, None, a, row_ids[a], b, row_ids[b], None, "HUBSPOT_DEFINED")
        for column in foreign:
            value = cells[column.index].strip().lower() if column.index < len(cells) else ""
            source = row_ids.get(column.object_type_id or "")
            if not value or source is None:
                continue
            targets = resolved.get((column.to_object_type_id or "", value))
            if not targets:
                errors.add(line, "FAILED_TO_CREATE_ASSOCIATION",
                           f"No record found for {value} to associate with", value=value, column=column)
                continue
            for target in targets:
                add(line, column, column.object_type_id or "", source, column.to_object_type_id or "", target,
                    column.association_type_id, column.association_category)
        for column in labels:
            value = cells[column.index].strip() if column.index < len(cells) else ""
            a, b = column.object_type_id or "", column.to_object_type_id or ""
            if not value or a not in row_ids or b not in row_ids:
                continue
            known = await _label_type_ids(ctx, a, b)
            for label in [p.strip() for p in value.split(";") if p.strip()]:
                type_id = known.get(label.lower())
                if type_id is None:
                    errors.add(line, "ASSOCIATION_LABEL_NOT_FOUND", f"{label} is not an association label between "
                               f"{a} and {b}", value=label, column=column)
                    continue
                add(line, column, a, row_ids[a], b, row_ids[b], type_id, "USER_DEFINED")
    if not inputs:
        return
    existed: list[dict[str, Any]] = []
    for start in range(0, len(inputs), 10_000):
        chunk = inputs[start:start + 10_000]
        results = await ctx.records.associate(ctx.account_id, chunk, operation_id=ctx.operation_id)
        for result in results:
            index = int(result.get("index", 0))
            status = result.get("status")
            if status == "CREATED":
                out.counters["CREATED_ASSOCIATIONS"] += 1
            elif status == "EXISTS" and ctx.replay_since is not None:
                existed.append(chunk[index])
            elif status == "ERROR":
                line, column = origin[start + index]
                error = result.get("error")
                message = error.get("message") if isinstance(error, dict) else str(error or "")
                errors.add(line, "FAILED_TO_CREATE_ASSOCIATION", message, column=column)
    if existed:
        # A replayed batch: the crashed attempt may have created some of these and its answer was
        # lost. This import's journal says which pairs it linked since the batch started: exactly
        # the ones records-svc answered CREATED to that attempt (older links stay EXISTS).
        assert ctx.replay_since is not None
        linked = await _pairs_linked_since(ctx, ctx.replay_since)
        out.counters["CREATED_ASSOCIATIONS"] += sum(
            1 for item in existed
            if (item["fromObjectType"], str(item["fromId"]), item["toObjectType"], str(item["toId"])) in linked)


def _linked_in_a_row(a: str, b: str) -> bool:
    """Whether the records of two object types on one row are associated with each other."""
    if PRODUCT in (a, b):
        return False  # products are never associated; line items point at them by hs_product_id
    if LINE_ITEM in (a, b):
        return (b if a == LINE_ITEM else a) in LINE_ITEM_PARENTS
    return True


JOURNAL_PAGE = 10_000


async def _pairs_linked_since(ctx: JobContext, since: datetime) -> set[tuple[str, str, str, str]]:
    """(from type, from id, to type, to id) of every association this import added since `since`."""
    since = since.replace(microsecond=since.microsecond // 1000 * 1000)  # records-svc sends ms
    linked: set[tuple[str, str, str, str]] = set()
    after = await _journal_position_before(ctx, since)
    while True:
        page = await ctx.records.journal_page(ctx.account_id, ctx.operation_id, after=after, limit=JOURNAL_PAGE)
        for entry in page.results:
            link = entry.get("association")
            if entry.get("kind") == "ASSOCIATE" and link and _journal_time(entry) >= since:
                linked.add((link["fromObjectTypeId"], str(link["fromId"]), link["toObjectTypeId"], str(link["toId"])))
        if page.paging is None:
            return linked
        after = int(page.paging.next.after)


async def _journal_position_before(ctx: JobContext, since: datetime) -> int:
    """A journal id with only entries older than `since` of this import at or before it, in log(n) probes.

    The journal route pages by id and cannot filter by time, and reading the whole journal of a
    million-row import to find its last batch would move gigabytes. A batch starts only after the
    previous one's writes committed, so this import's entries are in time order by id: a galloping
    then binary search on `after` (one entry per probe) finds where the replayed batch begins. The
    caller still checks each entry's time, so the search may stop short but never skips a recent entry.
    """
    async def older_entry_after(after: int) -> int | None:
        page = await ctx.records.journal_page(ctx.account_id, ctx.operation_id, after=after, limit=1)
        entries = page.results
        if not entries or _journal_time(entries[0]) >= since:
            return None
        return int(entries[0]["id"])

    old = await older_entry_after(0)
    if old is None:
        return 0
    step = 1
    while True:  # entries up to `old` are older than `since`; gallop until the next one is not
        high = old + step
        found = await older_entry_after(high)
        if found is None:
            break
        old, step = found, step * 2
    while high - old > 1:
        middle = (old + high) // 2
        found = await older_entry_after(middle)
        if found is None:
            high = middle
        else:
            old = found
    return old


def _journal_time(entry: Any) -> datetime:
    return datetime.fromisoformat(str(entry["createdAt"]))


async def _timestamps(ctx: JobContext, object_type: str, ids: list[str]
                      ) -> dict[str, tuple[datetime | None, datetime | None]]:
    """createdAt/updatedAt of records, through the public batch read (100 per call)."""
    out: dict[str, tuple[datetime | None, datetime | None]] = {}
    for start in range(0, len(ids), 100):
        response = await ctx.records.call("POST", f"/crm/v3/objects/{object_type}/batch/read",
                                          account_id=ctx.account_id, what="batch read",
                                          body={"inputs": [{"id": i} for i in ids[start:start + 100]],
                                                "properties": ["hs_object_id"]})
        for item in orjson.loads(response.content).get("results", []):
            out[str(item["id"])] = tuple(datetime.fromisoformat(str(item[k])) if item.get(k) else None
                                         for k in ("createdAt", "updatedAt"))  # type: ignore[assignment]
    return out
