"""One batch of rows through records-svc: values converted, records upserted, rows associated.

A straight line: shape the rows, call records-svc, record the outcome. Every write carries a batch
key naming this import, file, batch (its first line), object type and part; records-svc stores each
answer with the write, so a batch sent again after a crash gets the first answers back and writes
nothing twice, and the counters built from those answers are exact. The worker pins the batch size and
the split of large calls in the checkpoint, so a resumed batch holds the same rows under the same keys.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crm_common.contracts.records import AssociationInput, BulkRowInput, BulkUpsertOptions, RecordsClient
from crm_common.inputs import as_id, bad_character
from crm_common.object_types import COMPANY, CONTACT, LINE_ITEM, PRODUCT

from import_svc.domain.error_types import import_error_type
from import_svc.domain.plan import ColumnMapping, FilePlan, ImportPlan
from import_svc.domain.rules import (
    PRODUCT_INHERITED_PROPERTIES,
    company_domain_of,
    linked_in_a_row,
    unique_key_property,
)
from import_svc.domain.values import CouldNotParse, NumberFormat, convert
from import_svc.files import FileLayout

CONVERTED_TYPES = frozenset({"date", "datetime", "number"})
# Associations per records-svc call.
ASSOCIATIONS_PER_CALL = 10_000


@dataclass
class JobContext:
    import_id: int
    account_id: int
    plan: ImportPlan
    records: RecordsClient
    catalogs: dict[str, dict[str, dict[str, Any]]]
    number_format: NumberFormat
    time_zone: ZoneInfo | None
    # Pinned by the checkpoint: a batch sent again is split into the same calls under the same keys.
    parallel_calls: int = 1
    label_ids: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
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
class Batch:
    """The rows of one batch and where each call of it is keyed."""

    ctx: JobContext
    bound: BoundFile
    rows: list[tuple[int, list[str]]]
    out: BatchOutcome = field(default_factory=BatchOutcome)
    failed_lines: set[int] = field(default_factory=set)
    cells_by_line: dict[int, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.cells_by_line = dict(self.rows)

    def key(self, object_type: str, part: str) -> str:
        """import/<import>/<file>/<first line>/<object type or "associations">/<part>."""
        return f"import/{self.ctx.import_id}/{self.bound.file_id}/{self.rows[0][0]}/{object_type}/{part}"

    def error(self, line: int, error_type: str, message: str, *, value: str | None = None,
              column: ColumnMapping | None = None, object_type_id: str | None = None, fails_row: bool = False) -> None:
        self.out.errors.append({
            "file_id": self.bound.file_id, "line_number": line, "error_type": import_error_type(error_type),
            "message": message, "invalid_value": value, "column_number": column.index if column else None,
            "column_name": _column_name(self.bound, column),
            "object_type_id": object_type_id or (column.object_type_id if column else None),
            "row_data": self.cells_by_line.get(line, []),
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
    batch = Batch(ctx, bound, rows)
    width = bound.width
    good: list[tuple[int, list[str]]] = []
    for line, cells in rows:
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            batch.error(line, "INCORRECT_NUMBER_OF_COLUMNS", f"Row has {len(cells)} columns but the header has {width}",
                        fails_row=True)
            continue
        good.append((line, cells))
    batch.out.counters["ROWS_PROCESSED"] += len(rows)

    # line -> object type -> record id
    ids: dict[int, dict[str, str]] = {line: {} for line, _ in good}
    types = bound.plan.object_types()
    for type_id in types:
        await _write_object_type(batch, type_id, good, ids)
    if ctx.plan.create_companies_from_domains and CONTACT in types and COMPANY not in types:
        await _companies_from_email_domains(batch, good, ids)
    await _associate(batch, good, ids)
    batch.out.counters["ROWS_WITH_ERRORS"] += len({e["line_number"] for e in batch.out.errors})
    return batch.out


def _row_properties(batch: Batch, type_id: str, line: int, cells: list[str],
                    columns: list[ColumnMapping]) -> dict[str, str] | None:
    """The row's values for one object type; None when the row cannot address a record of it."""
    ctx = batch.ctx
    catalog = ctx.catalogs.get(type_id, {})
    props: dict[str, str] = {}
    for column in columns:
        raw = cells[column.index].strip() if column.index < len(cells) else ""
        if raw == "":
            continue  # a blank cell never clears a value
        name = column.property_name or ""
        problem = bad_character(raw)
        if problem:
            # Postgres cannot store it: the cell is refused, and a key cell takes its row with it.
            batch.error(line, "FAILED_VALIDATION", f"The value {problem}", value=raw, column=column,
                        fails_row=name in ("hs_object_id", "email", "domain"))
            if name in ("hs_object_id", "email", "domain"):
                return None
            continue
        if type_id == LINE_ITEM and name == "hs_product_id":
            props[name] = raw  # a record id, checked against the products (not a number to reformat)
            continue
        if name == "hs_object_id":
            if as_id(raw) is None:
                batch.error(line, "INVALID_OBJECT_ID", f"{raw} is not a record ID", value=raw, column=column,
                            fails_row=True)
                return None
            props[name] = raw
            continue
        definition = catalog.get(name)
        if definition is None:
            batch.error(line, "PROPERTY_DEFINITION_NOT_FOUND", f'Property "{name}" does not exist', value=raw,
                        column=column)
            continue
        prop_type = definition.get("type", "string")
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
            batch.error(line, outcome.code, outcome.message, value=raw, column=column)
            continue
        props[name] = outcome
    return props


async def _link_products(batch: Batch, columns: list[ColumnMapping], rows: list[tuple[int, dict[str, str]]]
                         ) -> list[tuple[int, dict[str, str]]]:
    """Line items whose Product ID names an existing product, filled from it; the others are errors.

    An import creates line items and never updates them, so one created with a product that does not
    exist could not be corrected by importing the fixed file again (that would create a second one):
    such a row creates no line item.
    """
    ctx = batch.ctx
    column = next((c for c in columns if c.property_name == "hs_product_id"), None)
    wanted = {str(product) for _, p in rows if (product := as_id(p.get("hs_product_id", ""))) is not None}
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
        product_id = as_id(raw)
        product = known.get(str(product_id)) if product_id is not None else None
        if product is None:
            message = (f"No product with ID {raw} exists in this account" if product_id is not None
                       else f"{raw} is not a product ID")
            batch.error(line, "INVALID_OBJECT_ID", f"{message}; the line item was not created", value=raw,
                        column=column, object_type_id=LINE_ITEM, fails_row=True)
            continue
        props["hs_product_id"] = str(product_id)
        for name, value in product.items():
            props.setdefault(name, value)
        kept.append((line, props))
    return kept


async def _write_object_type(batch: Batch, type_id: str, good: list[tuple[int, list[str]]],
                             ids: dict[int, dict[str, str]]) -> None:
    ctx = batch.ctx
    columns = [c for c in batch.bound.columns if c.is_property and c.object_type_id == type_id]
    key_property = unique_key_property(type_id, columns, ctx.catalogs.get(type_id, {}))
    # Rows by record id, by their unique key (a company's domain included: records-svc finds or creates
    # the company under a lock on the domain), and rows that create a record each.
    parts: dict[str, tuple[str | None, list[BulkRowInput]]] = {
        "by-id": ("hs_object_id", []), "by-key": (key_property, []), "new": (None, [])}
    addressed: list[tuple[int, dict[str, str]]] = []
    for line, cells in good:
        props = _row_properties(batch, type_id, line, cells, columns)
        if props:
            addressed.append((line, props))
    if type_id == LINE_ITEM:
        addressed = await _link_products(batch, columns, addressed)
    for line, props in addressed:
        record = props.pop("hs_object_id", None)
        batch.out.counters["PROPERTY_VALUES_EMITTED"] += len(props)
        if record:
            parts["by-id"][1].append({"ref": line, "id": record, "properties": props})
        elif key_property and props.get(key_property):
            parts["by-key"][1].append({"ref": line, "properties": props})
        else:
            parts["new"][1].append({"ref": line, "properties": props})
    keep = ["*"] if ctx.plan.keep_existing_all else [c.property_name for c in columns
                                                      if c.keep_existing and c.property_name]
    column_of = {c.property_name: c for c in columns}
    for part, (id_property, rows) in parts.items():
        if not rows:
            continue
        answer = await ctx.records.bulk_upsert(ctx.account_id, type_id, BulkUpsertOptions(
            operation=ctx.plan.operation(type_id), idProperty=id_property, keepExisting=keep, sourceType="IMPORT",
            sourceId=ctx.source_id, operationId=ctx.operation_id, batchKey=batch.key(type_id, part)), rows,
            parallel_calls=ctx.parallel_calls)
        by_status: dict[str, set[str]] = {"CREATED": set(), "UPDATED": set(), "UNCHANGED": set()}
        for result in answer.results:
            line = result["ref"]
            for e in result["errors"]:
                prop = e.get("property")
                column = column_of.get(prop) or (column_of.get(key_property) if prop in (None, key_property) else None)
                batch.error(line, e.get("code") or "UNKNOWN_ERROR", e.get("message") or "", value=e.get("value"),
                            column=column, object_type_id=type_id, fails_row=result["status"] == "ERROR")
            if result["id"] is None or result["status"] == "ERROR":
                continue
            ids.setdefault(line, {})[type_id] = result["id"]
            by_status[result["status"]].add(result["id"])
        # Rows sharing a record count it once, as what its first write did.
        created = by_status["CREATED"]
        updated = by_status["UPDATED"] - created
        unchanged = by_status["UNCHANGED"] - created - updated
        batch.out.counters["CREATED_OBJECTS"] += len(created)
        batch.out.counters["UPDATED_OBJECTS"] += len(updated)
        batch.out.counters["UNCHANGED_OBJECTS"] += len(unchanged)
        batch.out.counters["UNIQUE_OBJECTS_WRITTEN"] += len(created) + len(updated)


async def _companies_from_email_domains(batch: Batch, good: list[tuple[int, list[str]]],
                                        ids: dict[int, dict[str, str]]) -> None:
    """Each contact's company by its email domain: found, or created with the domain as its name."""
    ctx = batch.ctx
    email_column = next((c for c in batch.bound.columns if c.is_property and c.object_type_id == CONTACT
                         and c.property_name == "email"), None)
    if email_column is None:
        return
    domains: dict[str, list[int]] = {}
    for line, cells in good:
        if CONTACT in ids.get(line, {}):
            domain = company_domain_of(cells[email_column.index])
            if domain:
                domains.setdefault(domain, []).append(line)
    if not domains:
        return
    names = list(domains)
    # Existing companies keep their values (a name left empty is filled with the domain).
    answer = await ctx.records.bulk_upsert(ctx.account_id, COMPANY, BulkUpsertOptions(
        operation="UPSERT", idProperty="domain", keepExisting=["*"], sourceType="IMPORT", sourceId=ctx.source_id,
        operationId=ctx.operation_id, batchKey=batch.key(COMPANY, "email-domains")),
        [{"ref": i, "properties": {"domain": d, "name": d}} for i, d in enumerate(names)])
    for result in answer.results:
        if result["id"] is None or result["status"] == "ERROR":
            continue
        if result["status"] == "CREATED":
            batch.out.counters["CREATED_OBJECTS"] += 1
            batch.out.counters["UNIQUE_OBJECTS_WRITTEN"] += 1
        for line in domains[names[result["ref"]]]:
            ids[line][COMPANY] = result["id"]


async def _label_type_ids(ctx: JobContext, from_type: str, to_type: str) -> dict[str, int]:
    key = (from_type, to_type)
    if key not in ctx.label_ids:
        labels = await ctx.records.association_labels(ctx.account_id, from_type, to_type)
        ctx.label_ids[key] = {str(item.get("label") or "").strip().lower(): int(item["typeId"])
                              for item in labels if item.get("label")}
    return ctx.label_ids[key]


async def _associate(batch: Batch, good: list[tuple[int, list[str]]], ids: dict[int, dict[str, str]]) -> None:
    ctx = batch.ctx
    inputs: list[AssociationInput] = []
    origin: list[tuple[int, ColumnMapping | None]] = []
    seen: set[tuple[Any, ...]] = set()

    def add(line: int, column: ColumnMapping | None, from_type: str, from_id: str, to_type: str, to_id: str,
            type_id: int | None, category: str) -> None:
        key = (from_type, from_id, to_type, to_id, type_id)
        if key in seen:
            return
        seen.add(key)
        item: AssociationInput = {"fromObjectType": from_type, "fromId": from_id, "toObjectType": to_type,
                                  "toId": to_id, "associationCategory": category}
        if type_id is not None:
            item["associationTypeId"] = type_id
        inputs.append(item)
        origin.append((line, column))

    types = batch.bound.plan.object_types()
    if ctx.plan.create_companies_from_domains and CONTACT in types and COMPANY not in types:
        types = [*types, COMPANY]
    foreign = [c for c in batch.bound.columns if c.is_foreign_key and c.object_type_id]
    labels = [c for c in batch.bound.columns if c.is_label and c.object_type_id and c.to_object_type_id]
    # Foreign-key values resolved per target type, on the target's identifier property.
    resolved: dict[tuple[str, str], list[str]] = {}
    for column in foreign:
        target = column.to_object_type_id or ""
        prop = ctx.plan.identifier_property(target)
        values = sorted({cells[column.index].strip().lower() for _, cells in good
                         if column.index < len(cells) and cells[column.index].strip()
                         and not bad_character(cells[column.index])})
        if prop == "hs_object_id":
            for v in values:
                resolved[(target, v)] = [v] if as_id(v) is not None else []
        else:
            for value, matches in (await ctx.records.resolve(ctx.account_id, target, prop, values)).items():
                resolved[(target, value)] = matches
    for line, cells in good:
        row_ids = ids.get(line, {})
        for i, a in enumerate(types):
            for b in types[i + 1:]:
                if a in row_ids and b in row_ids and linked_in_a_row(a, b):
                    add(line, None, a, row_ids[a], b, row_ids[b], None, "HUBSPOT_DEFINED")
        for column in foreign:
            value = cells[column.index].strip().lower() if column.index < len(cells) else ""
            source = row_ids.get(column.object_type_id or "")
            if not value or source is None:
                continue
            targets = resolved.get((column.to_object_type_id or "", value))
            if not targets:
                batch.error(line, "FAILED_TO_CREATE_ASSOCIATION", f"No record found for {value} to associate with",
                            value=value, column=column)
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
                    batch.error(line, "ASSOCIATION_LABEL_NOT_FOUND", f"{label} is not an association label between "
                                f"{a} and {b}", value=label, column=column)
                    continue
                add(line, column, a, row_ids[a], b, row_ids[b], type_id, "USER_DEFINED")
    for start in range(0, len(inputs), ASSOCIATIONS_PER_CALL):
        chunk = inputs[start:start + ASSOCIATIONS_PER_CALL]
        results = await ctx.records.associate(ctx.account_id, chunk, operation_id=ctx.operation_id,
                                              batch_key=batch.key("associations", str(start // ASSOCIATIONS_PER_CALL)))
        for result in results:
            if result["status"] == "CREATED":
                batch.out.counters["CREATED_ASSOCIATIONS"] += 1
            elif result["status"] == "ERROR":
                line, column = origin[start + result["index"]]
                batch.error(line, "FAILED_TO_CREATE_ASSOCIATION", str(result.get("error") or ""), column=column)
