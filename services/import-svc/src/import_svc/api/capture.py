"""Mobile capture routes: device contacts (vCard files) and QR codes (vCard or MECARD text).

Captured contacts go through records-svc's bulk upsert like file imports: deduplicated by email,
an existing contact keeps its lifecycle stage and owner, new ones start as leads. The original
source is the platform (`MOBILE_IOS`/`MOBILE_ANDROID`) with the capture kind as its detail.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from crm_common.errors import HubSpotError, error_responses
from crm_common.responses import FastJSONResponse as JSON
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from import_svc.api.deps import Auth
from import_svc.capture import PLATFORMS, ContactDraft, parse_qr_text, parse_vcards
from import_svc.records import RecordsClient, RecordsError

router = APIRouter(prefix="/corral/v1/capture", tags=["Mobile capture"])

MAX_CARDS = 10_000
MAX_VCF_BYTES = 20 * 1024 * 1024
KEEP_ON_EXISTING = ["lifecyclestage", "hubspot_owner_id"]


def _platform(value: str | None) -> str:
    platform = (value or "MOBILE_IOS").upper()
    if platform not in PLATFORMS:
        raise HubSpotError(400, f"platform must be one of {', '.join(sorted(PLATFORMS))}", category="VALIDATION_ERROR")
    return platform


async def _save(records: RecordsClient, account_id: int, drafts: list[ContactDraft], *, platform: str,
                kind: str) -> list[dict[str, Any]]:
    operation_id = f"capture:{uuid.uuid4().hex}"
    outcome: dict[int, dict[str, Any]] = {}
    keyed = [d for d in drafts if d.properties.get("email")]
    keyless = [d for d in drafts if not d.properties.get("email")]
    for id_property, group in (("email", keyed), (None, keyless)):
        if not group:
            continue
        answer = await records.bulk_upsert(account_id, "0-1", {
            "operation": "UPSERT", "idProperty": id_property, "keepExisting": KEEP_ON_EXISTING,
            "sourceType": platform, "sourceId": kind, "operationId": operation_id,
            "rows": [{"ref": d.index, "properties": d.properties} for d in group]})
        for result in answer.get("results", []):
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
        form = await request.form(max_files=1, max_fields=10)
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
        raw = await request.body()
        select = request.query_params.get("select")
        platform = request.query_params.get("platform")
    if len(raw) > MAX_VCF_BYTES:
        raise HubSpotError(400, "The vCard file is larger than 20 MB", category="VALIDATION_ERROR")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    try:
        drafts = parse_vcards(text)
    except Exception as exc:  # noqa: BLE001  (vobject raises assorted parse errors)
        raise HubSpotError(400, f"The file is not a valid vCard file: {exc}", category="VALIDATION_ERROR") from None
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
    records: RecordsClient = request.app.state.runtime.extras["records"]
    try:
        results = await _save(records, auth.account_id, drafts, platform=platform, kind="device-contacts")
    except RecordsError as exc:
        raise HubSpotError(502 if exc.status >= 500 else 400, exc.message) from None
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
    records: RecordsClient = request.app.state.runtime.extras["records"]
    try:
        results = await _save(records, auth.account_id, drafts[:1], platform=platform, kind="qr-code-scanner")
    except RecordsError as exc:
        raise HubSpotError(502 if exc.status >= 500 else 400, exc.message) from None
    return JSON({"results": results})


MAX_IMAGE_BYTES = 10 * 1024 * 1024


def decode_qr_image(data: bytes) -> str:
    """The text of the first QR code in a photo or screenshot (zxing-cpp through Pillow)."""
    import io

    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"The image could not be read: {exc}") from None
    found = [r for r in zxingcpp.read_barcodes(image) if r.valid and r.text]
    qr = [r for r in found if r.format == zxingcpp.BarcodeFormat.QRCode] or found
    if not qr:
        raise ValueError("No QR code was found in the image")
    return qr[0].text


@router.post("/qr/image", response_model=None, responses=error_responses(400, 401, 403),
             summary="Create or update a contact from a photo of a QR code (vCard or MECARD)")
async def capture_qr_image(request: Request, auth: Auth, dryRun: bool = False) -> Any:
    form = await request.form(max_files=1, max_fields=5)
    try:
        upload = form.get("image") or form.get("file")
        if not isinstance(upload, UploadFile):
            raise HubSpotError(400, "Send the picture as a multipart part named `image`", category="VALIDATION_ERROR")
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        platform = _platform(str(form.get("platform") or "") or None)
    finally:
        await form.close()
    if len(data) > MAX_IMAGE_BYTES:
        raise HubSpotError(400, "The image is larger than 10 MB", category="VALIDATION_ERROR")
    try:
        text = await asyncio.to_thread(decode_qr_image, data)
        drafts = parse_qr_text(text)
    except Exception as exc:  # noqa: BLE001  (decoder and vobject raise assorted errors)
        raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
    if dryRun:
        return JSON({"text": text, "results": [{"index": d.index, "properties": d.properties, "warnings": d.problems}
                                               for d in drafts]})
    records: RecordsClient = request.app.state.runtime.extras["records"]
    try:
        results = await _save(records, auth.account_id, drafts[:1], platform=platform, kind="qr-code-scanner")
    except RecordsError as exc:
        raise HubSpotError(502 if exc.status >= 500 else 400, exc.message) from None
    return JSON({"text": text, "results": results})
