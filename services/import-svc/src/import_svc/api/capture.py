"""Mobile capture routes: device contacts (vCard files), QR codes (vCard or MECARD text) and business cards.

Captured contacts go through records-svc's bulk upsert like file imports: deduplicated by email,
an existing contact keeps its lifecycle stage and owner, new ones start as leads. The original
source is the platform (`MOBILE_IOS`/`MOBILE_ANDROID`) with the capture kind as its detail.
A business card is two calls: its photo is read into a draft (nothing saved), then the draft the
caller checked is saved like the other captures.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from crm_common.contracts.merges import MergesClient
from crm_common.contracts.records import BulkUpsertOptions, RecordsClient, ServiceCallError
from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import abridged, capped, read_capped
from crm_common.object_types import CONTACT
from crm_common.responses import FastJSONResponse as JSON
from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from import_svc.api.deps import Auth, resources_of
from import_svc.business_card import found_anything, parse_business_card
from import_svc.capture import PLATFORMS, ContactDraft, count_vcards, parse_qr_text, parse_vcards
from import_svc.domain.mapping import check_cell
from import_svc.domain.values import number_format_for
from import_svc.duplicates import existing_contact
from import_svc.ocr import ImageRejected, OcrUnavailable, load_image, plain_text, read_card

router = APIRouter(prefix="/corral/v1/capture", tags=["Mobile capture"])

MAX_CARDS = 10_000
MAX_VCF_BYTES = 20 * 1024 * 1024
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# A multipart body is the file plus a few hundred bytes of headers and fields.
MULTIPART_ALLOWANCE = 64 * 1024
# HubSpot's original source of a captured contact: "Offline Sources", drill-down 1 the platform,
# drill-down 2 the capture kind. Set when the contact is new (or has none); never moved afterwards.
ORIGINAL_SOURCE = ("hs_analytics_source", "hs_analytics_source_data_1", "hs_analytics_source_data_2")
KEEP_ON_EXISTING = ["lifecyclestage", "hubspot_owner_id", *ORIGINAL_SOURCE]


def _vcf_too_large() -> HubSpotError:
    return HubSpotError(400, f"The vCard file is larger than {MAX_VCF_BYTES // (1024 * 1024)} MB",
                        category="VALIDATION_ERROR", sub_category="FILE_TOO_LARGE")


def _platform(value: str | None) -> str:
    platform = (value or "MOBILE_IOS").upper()
    if platform not in PLATFORMS:
        raise HubSpotError(400, f"platform must be one of {', '.join(sorted(PLATFORMS))}", category="VALIDATION_ERROR")
    return platform


def _records(request: Request) -> RecordsClient:
    return resources_of(request).records


def _records_failure(exc: ServiceCallError) -> HubSpotError:
    """records-svc down is a 502 for the caller; a refusal passes its reason on as a 400."""
    return HubSpotError(502 if exc.status >= 500 else 400, exc.message)


async def _save(request: Request, account_id: int, drafts: list[ContactDraft], *, platform: str,
                kind: str) -> list[dict[str, Any]]:
    try:
        return await _upsert_drafts(_records(request), account_id, drafts, platform=platform, kind=kind,
                                    merges=resources_of(request).merges)
    except ServiceCallError as exc:
        raise _records_failure(exc) from None


MAX_CHECKED_KEYLESS = 500


async def _upsert_drafts(records: RecordsClient, account_id: int, drafts: list[ContactDraft], *, platform: str,
                         kind: str, merges: MergesClient | None = None) -> list[dict[str, Any]]:
    operation_id = f"capture:{uuid.uuid4().hex}"
    source = dict(zip(ORIGINAL_SOURCE, ("OFFLINE", platform, kind), strict=True))
    outcome: dict[int, dict[str, Any]] = {}
    keyed = [d for d in drafts if d.properties.get("email")]
    keyless = [d for d in drafts if not d.properties.get("email")]
    # Without an email, a contact is matched by name with phone or company (see import_svc.duplicates).
    matched: list[tuple[ContactDraft, str]] = []
    if merges is not None and len(keyless) <= MAX_CHECKED_KEYLESS:
        unmatched = []
        for draft in keyless:
            found = await existing_contact(merges, account_id, draft.properties)
            if found.warning:
                draft.problems.append(found.warning)
            if found.record_id:
                matched.append((draft, found.record_id))
            else:
                unmatched.append(draft)
        keyless = unmatched
    for id_property, group in (("email", keyed), (None, keyless)):
        if not group:
            continue
        answer = await records.bulk_upsert(
            account_id, CONTACT, BulkUpsertOptions(operation="UPSERT", idProperty=id_property,
                                                 keepExisting=KEEP_ON_EXISTING, sourceType=platform, sourceId=kind,
                                                 operationId=operation_id),
            [{"ref": d.index, "properties": {**d.properties, **source}} for d in group])
        for result in answer.results:
            outcome[result["ref"]] = result
    if matched:
        answer = await records.bulk_upsert(
            account_id, CONTACT, BulkUpsertOptions(operation="UPDATE", idProperty="hs_object_id",
                                                 keepExisting=KEEP_ON_EXISTING, sourceType=platform, sourceId=kind,
                                                 operationId=operation_id),
            [{"ref": d.index, "id": record_id, "properties": {**d.properties, **source}} for d, record_id in matched])
        for result in answer.results:
            outcome[result["ref"]] = result
    out = []
    for draft in drafts:
        result = outcome.get(draft.index, {})
        out.append({"index": draft.index, "status": result.get("status", "ERROR"), "id": result.get("id"),
                    "properties": draft.properties, "warnings": draft.problems,
                    "errors": result.get("errors", [])})
    return out


@router.post("/vcards", response_model=None, responses=error_responses(400, 401, 403),
             summary="Import device contacts from a vCard file (all cards or the selected ones)")
async def capture_vcards(request: Request, auth: Auth, dryRun: bool = False) -> Any:
    content_type = request.headers.get("content-type", "")
    select: str | None = None
    platform: str | None = None
    if content_type.startswith("multipart/"):
        form = await capped(request, max_bytes=MAX_VCF_BYTES + MULTIPART_ALLOWANCE,
                            too_large=_vcf_too_large).form(max_files=1, max_fields=10)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HubSpotError(400, "Send the vCard file as a multipart part named `file`",
                                   category="VALIDATION_ERROR")
            raw = await upload.read(MAX_VCF_BYTES + 1)
            select = str(form.get("select") or "") or None
            platform = str(form.get("platform") or "") or None
        finally:
            await form.close()
    else:
        raw = await read_capped(request, max_bytes=MAX_VCF_BYTES, too_large=_vcf_too_large)
        select = request.query_params.get("select")
        platform = request.query_params.get("platform")
    if len(raw) > MAX_VCF_BYTES:
        raise _vcf_too_large()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    # Counted before parsing: 463,000 tiny cards once held the event loop for 40 s before being refused.
    cards = count_vcards(text)
    if cards > MAX_CARDS:
        raise HubSpotError(400, f"At most {MAX_CARDS} cards per call; the file holds {cards:,}",
                           category="VALIDATION_ERROR")
    try:
        # vobject is pure Python: a few thousand cards take a second, so not on the event loop.
        drafts = await asyncio.to_thread(parse_vcards, text)
    except Exception as exc:  # noqa: BLE001  (vobject raises assorted parse errors)
        raise HubSpotError(400, f"The file is not a valid vCard file: {abridged(str(exc))}",
                           category="VALIDATION_ERROR") from None
    if not drafts:
        raise HubSpotError(400, "The file holds no vCard", category="VALIDATION_ERROR")
    if len(drafts) > MAX_CARDS:
        raise HubSpotError(400, f"At most {MAX_CARDS} cards per call", category="VALIDATION_ERROR")
    if select:
        try:
            wanted = {int(part) for part in select.split(",") if part.strip()}
        except ValueError:
            raise HubSpotError(400, "select is a comma-separated list of card indexes", category="VALIDATION_ERROR") \
                from None
        drafts = [d for d in drafts if d.index in wanted]
    platform = _platform(platform)
    if dryRun:
        return JSON({"results": [{"index": d.index, "properties": d.properties, "warnings": d.problems}
                                 for d in drafts]})
    results = await _save(request, auth.account_id, drafts, platform=platform, kind="device-contacts")
    return JSON({"results": results})


class QrCapture(BaseModel):
    text: str
    platform: str | None = None
    dryRun: bool = False


@router.post("/qr", response_model=None, responses=error_responses(400, 401, 403),
             summary="Create or update a contact from a QR code's text (vCard or MECARD)")
async def capture_qr(payload: QrCapture, auth: Auth, request: Request) -> Any:
    try:
        drafts = parse_qr_text(payload.text)
    except Exception as exc:  # noqa: BLE001  (vobject raises assorted parse errors)
        raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
    platform = _platform(payload.platform)
    if payload.dryRun:
        return JSON({"results": [{"index": d.index, "properties": d.properties, "warnings": d.problems}
                                 for d in drafts]})
    results = await _save(request, auth.account_id, drafts[:1], platform=platform, kind="qr-code-scanner")
    return JSON({"results": results})


def decode_qr_image(data: bytes) -> str:
    """The text of the first QR code in a photo or screenshot (zxing-cpp through Pillow).

    The image's size is read from its header and checked before any pixel is decoded: a 13,000 x 13,000
    white PNG is 518 KB on the wire and 1.9 GB once decoded.
    """
    import zxingcpp

    image = load_image(data)
    found = [r for r in zxingcpp.read_barcodes(image) if r.valid and r.text]
    qr = [r for r in found if r.format == zxingcpp.BarcodeFormat.QRCode] or found
    if not qr:
        raise ValueError("No QR code was found in the image")
    return qr[0].text


@router.post("/qr/image", response_model=None, responses=error_responses(400, 401, 403),
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["image"],
                 "properties": {"image": {"type": "string", "format": "binary"}, "platform": {"type": "string"}}}}}}},
             summary="Create or update a contact from a photo of a QR code (vCard or MECARD)",
             description="The picture (at most 10 MB and 40 megapixels) as the multipart part `image`.")
async def capture_qr_image(request: Request, auth: Auth, dryRun: bool = False) -> Any:
    form = await capped(request, max_bytes=MAX_IMAGE_BYTES + MULTIPART_ALLOWANCE,
                        too_large=_too_large).form(max_files=1, max_fields=5)
    try:
        upload = form.get("image") or form.get("file")
        if not isinstance(upload, UploadFile):
            raise HubSpotError(400, "Send the picture as a multipart part named `image`", category="VALIDATION_ERROR")
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        platform = _platform(str(form.get("platform") or "") or None)
    finally:
        await form.close()
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large()
    try:
        async with _image_slots(request):
            text = await asyncio.to_thread(decode_qr_image, data)
        drafts = parse_qr_text(text)
    except ImageRejected as exc:
        raise HubSpotError(400, str(exc), category="VALIDATION_ERROR", sub_category="UNREADABLE_IMAGE") from None
    except Exception as exc:  # noqa: BLE001  (decoder and vobject raise assorted errors)
        raise HubSpotError(400, abridged(str(exc)), category="VALIDATION_ERROR") from None
    if dryRun:
        return JSON({"text": text, "results": [{"index": d.index, "properties": d.properties, "warnings": d.problems}
                                               for d in drafts]})
    results = await _save(request, auth.account_id, drafts[:1], platform=platform, kind="qr-code-scanner")
    return JSON({"text": text, "results": results})


# ---- business cards: a photo read by OCR into a draft, saved once the caller confirms it ----------

# What a card shows, plus the owner the app assigns (the rep who scanned): kept on an existing contact.
CARD_PROPERTIES = ("firstname", "lastname", "jobtitle", "company", "email", "mobilephone", "phone", "website",
                   "lifecyclestage", "hubspot_owner_id")
_IMAGE_BODY = {"type": "string", "format": "binary"}


def _too_large() -> HubSpotError:
    return HubSpotError(400, f"The image is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
                        category="VALIDATION_ERROR", sub_category="IMAGE_TOO_LARGE")


async def _image_from_request(request: Request) -> bytes:
    """The picture, from a multipart part `image` (or `file`) or from the raw body, within the size limit."""
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await capped(request, max_bytes=MAX_IMAGE_BYTES + MULTIPART_ALLOWANCE,
                            too_large=_too_large).form(max_files=1, max_fields=5)
        try:
            upload = form.get("image") or form.get("file")
            if not isinstance(upload, UploadFile):
                raise HubSpotError(400, "Send the photo as a multipart part named `image` (or as the raw body)",
                                   category="VALIDATION_ERROR")
            data = await upload.read(MAX_IMAGE_BYTES + 1)
        finally:
            await form.close()
    else:
        data = await read_capped(request, max_bytes=MAX_IMAGE_BYTES, too_large=_too_large)
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large()
    if not data:
        raise HubSpotError(400, "The request holds no image", category="VALIDATION_ERROR")
    return data


def _image_slots(request: Request) -> asyncio.Semaphore:
    return resources_of(request).ocr_slots


_CARD_IMAGE_REQUEST = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": _IMAGE_BODY}}},
    "image/*": {"schema": _IMAGE_BODY},
    "application/octet-stream": {"schema": _IMAGE_BODY},
}}}


@router.post("/business-card", response_model=None, responses=error_responses(400, 401, 403, 502, 503),
             openapi_extra=_CARD_IMAGE_REQUEST,
             summary="Read a photo of a business card into a draft contact (nothing is saved)",
             description="The photo (JPEG, PNG, HEIC, WebP, TIFF, BMP or GIF, at most 10 MB and 40 megapixels) "
                         "as the multipart part `image` or as the raw body. Answers `{text, lines, results: "
                         "[{index, properties, warnings, existingId}]}`: the draft's properties (firstname, "
                         "lastname, jobtitle, company, email, mobilephone, phone, website), what could not be "
                         "found or was hard to read, and the contact the email already belongs to, which "
                         "confirming will update. Send the checked properties to `/business-card/confirm`.")
async def capture_business_card(request: Request, auth: Auth) -> Any:
    data = await _image_from_request(request)
    try:
        async with _image_slots(request):
            settings = request.app.state.runtime.settings
            lines = await asyncio.to_thread(read_card, data, languages=settings.ocr_languages,
                                            timeout=settings.ocr_timeout_seconds)
    except ImageRejected as exc:
        raise HubSpotError(400, str(exc), category="VALIDATION_ERROR", sub_category="UNREADABLE_IMAGE") from None
    except OcrUnavailable as exc:
        raise HubSpotError(503, str(exc)) from None
    if not lines:
        raise HubSpotError(400, "No text was found on the image: photograph the card flat, in focus and well lit",
                           category="VALIDATION_ERROR", sub_category="NO_TEXT_FOUND")
    draft = parse_business_card(lines)
    if not found_anything(draft):
        raise HubSpotError(400, "No name, email or phone number was found in the text of the image",
                           category="VALIDATION_ERROR", sub_category="NO_CONTACT_FOUND",
                           context={"text": [line.text for line in lines]})
    existing_id = None
    if draft.properties.get("email"):
        try:
            found = await _records(request).find_by_values(auth.account_id, CONTACT, "email",
                                                            [draft.properties["email"]])
        except ServiceCallError as exc:
            raise _records_failure(exc) from None
        existing_id = next(iter(found.values()), None)
    return JSON({"text": plain_text(lines),
                 "lines": [{"text": line.text, "confidence": line.confidence} for line in lines],
                 "results": [{"index": 0, "properties": draft.properties, "warnings": draft.problems,
                              "existingId": existing_id}]})


class BusinessCardConfirmation(BaseModel):
    """The draft's properties as the caller checked or edited them."""

    properties: dict[str, str | None]
    platform: str | None = None


async def _check_card_values(request: Request, account_id: int, properties: dict[str, str]) -> None:
    """A value records-svc would drop (a lifecycle stage that is no option, an owner id that is no number)
    refuses the confirmation, naming the property: the card is one contact the caller is looking at, and
    saving it without the value would lose what they confirmed."""
    try:
        catalog = await _records(request).properties(account_id, CONTACT)
    except ServiceCallError as exc:
        raise _records_failure(exc) from None
    problems = []
    for name, value in properties.items():
        definition = catalog.get(name)
        problem = check_cell(value, definition, date_format="YEAR_MONTH_DAY", number_format=number_format_for(None),
                             time_zone=None) if definition else None
        if problem:
            problems.append((name, *problem))
    if problems:
        raise HubSpotError(400, "; ".join(f"{name}: {message}" for name, _, message in problems),
                           category="VALIDATION_ERROR",
                           errors=[{"message": message, "code": code, "context": {"propertyName": [name]}}
                                   for name, code, message in problems])


@router.post("/business-card/confirm", response_model=None, responses=error_responses(400, 401, 403, 502),
             summary="Save a confirmed business-card draft (create, or update the contact with that email)",
             description="`{properties, platform}` with the properties of `/business-card`'s draft as the caller "
                         f"checked them ({', '.join(CARD_PROPERTIES)}). Upserted by email like every capture: "
                         "an existing contact keeps its owner, lifecycle stage and original source, whatever "
                         "the confirmation says. Original source of a new one: the platform "
                         "(`MOBILE_IOS` by default, or `MOBILE_ANDROID`) with `business-card-scanner`.")
async def confirm_business_card(payload: BusinessCardConfirmation, auth: Auth, request: Request) -> Any:
    unknown = sorted(set(payload.properties) - set(CARD_PROPERTIES))
    if unknown:
        raise HubSpotError(400, f"A business card sets only {', '.join(CARD_PROPERTIES)}; not {', '.join(unknown)}",
                           category="VALIDATION_ERROR",
                           errors=[{"message": f"{name} is not a business-card property", "code": "INVALID_PROPERTY",
                                    "context": {"propertyName": [name]}} for name in unknown])
    properties = {name: value.strip() for name, value in payload.properties.items() if value and value.strip()}
    if properties.get("email"):
        try:
            properties["email"] = validate_email(properties["email"], check_deliverability=False).normalized.lower()
        except EmailNotValidError as exc:
            raise HubSpotError(400, f"email: {exc}", category="VALIDATION_ERROR",
                               errors=[{"message": str(exc), "code": "INVALID_EMAIL",
                                        "context": {"propertyName": ["email"]}}]) from None
    if not any(properties.get(name) for name in ("email", "firstname", "lastname")):
        raise HubSpotError(400, "A contact needs at least an email or a name", category="VALIDATION_ERROR")
    platform = _platform(payload.platform)
    properties.setdefault("lifecyclestage", "lead")
    await _check_card_values(request, auth.account_id, properties)
    draft = ContactDraft(index=0, properties=properties)
    if not properties.get("email"):
        draft.problems.append("No email: matched by name with phone or company only, and not associated with a "
                              "company")
    results = await _save(request, auth.account_id, [draft], platform=platform, kind="business-card-scanner")
    (result,) = results
    if result["status"] == "ERROR":
        # one card the caller is looking at: say why it was refused rather than answer 200
        reasons = "; ".join(e.get("message", "") for e in result["errors"]) or "records-svc refused it"
        raise HubSpotError(400, f"The contact was not saved: {reasons}", category="VALIDATION_ERROR",
                           errors=result["errors"] or None)
    return JSON({"results": results})
