"""Business cards: photos made here with Pillow, read by the real tesseract, saved through records-svc."""

from __future__ import annotations

import io
import random
from typing import Any

import httpx
import pytest
from import_svc.business_card import parse_business_card
from import_svc.ocr import TextLine
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .conftest import search_all

MARIA = ["Maria Gonzalez-Smith", "Head of Partnerships", "Northwind Robotics GmbH",
         "maria.gonzalez@northwind-robotics.de", "Mobile: +49 170 1234567", "Tel: +49 30 9876543",
         "www.northwind-robotics.de"]
MARIA_DRAFT = {"firstname": "Maria", "lastname": "Gonzalez-Smith", "jobtitle": "Head of Partnerships",
               "company": "Northwind Robotics GmbH", "email": "maria.gonzalez@northwind-robotics.de",
               "mobilephone": "+49 170 1234567", "phone": "+49 30 9876543", "website": "www.northwind-robotics.de",
               "lifecyclestage": "lead"}


def card_photo(lines: list[str], *, angle: float = 0.0, image_format: str = "JPEG", seed: int = 7) -> bytes:
    """A phone photo of a printed card: a logo band, the name large, the rest smaller, on a grey desk,
    a few degrees askew, with sensor noise and a little blur."""
    card = Image.new("RGB", (1050, 600), (250, 248, 241))
    draw = ImageDraw.Draw(card)
    draw.rectangle((0, 0, 36, 600), fill=(22, 78, 140))  # the brand's colour band
    draw.ellipse((900, 40, 990, 130), fill=(22, 78, 140))  # a logo mark
    y = 50
    for number, text in enumerate(lines):
        size = 54 if number == 0 else 32 if number < 3 else 28
        draw.text((80, y), text, fill=(25, 30, 45), font=ImageFont.load_default(size=size))
        y += int(size * 1.55) + (18 if number == 2 else 0)
    desk = Image.new("RGB", (1250, 820), (118, 112, 104))
    desk.paste(card, (100, 110))
    photo = desk.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(118, 112, 104))
    noise = Image.frombytes("L", photo.size, random.Random(seed).randbytes(photo.width * photo.height))
    noise = noise.convert("RGB")
    photo = Image.blend(photo, noise, 0.08).filter(ImageFilter.GaussianBlur(0.7))
    out = io.BytesIO()
    if image_format == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
        photo.save(out, format="HEIF", quality=80)
    else:
        photo.save(out, format=image_format, **({"quality": 82} if image_format == "JPEG" else {}))
    return out.getvalue()


async def scan(imports: httpx.AsyncClient, photo: bytes, *, content_type: str = "image/jpeg") -> httpx.Response:
    return await imports.post("/corral/v1/capture/business-card", files={"image": ("card.jpg", photo, content_type)})


def only_draft(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    (draft,) = response.json()["results"]
    return draft


async def test_a_card_photo_becomes_a_draft_and_nothing_is_saved(imports: httpx.AsyncClient,
                                                                 records: httpx.AsyncClient) -> None:
    answer = await scan(imports, card_photo(MARIA, angle=3.5))
    draft = only_draft(answer)
    assert draft["properties"] == MARIA_DRAFT
    assert draft["warnings"] == []
    assert draft["existingId"] is None
    text = answer.json()["text"]  # what OCR read, logo specks included, for the caller to look at
    assert all(line in text for line in MARIA)
    assert await search_all(records, "contacts", ["email"]) == []


async def test_confirming_a_card_creates_the_contact_with_its_original_source(imports: httpx.AsyncClient,
                                                                              records: httpx.AsyncClient) -> None:
    photo = card_photo(["Ben Okafor", "Senior Account Executive", "Bluewave Analytics Inc.", "ben@bluewave.io",
                        "M +1 415 555 0134", "bluewave.io"], angle=-4, image_format="PNG")
    # the raw body works as well as a multipart part
    answer = await imports.post("/corral/v1/capture/business-card", content=photo,
                                headers={"content-type": "image/png"})
    draft = only_draft(answer)
    assert draft["properties"] == {"firstname": "Ben", "lastname": "Okafor", "jobtitle": "Senior Account Executive",
                                   "company": "Bluewave Analytics Inc.", "email": "ben@bluewave.io",
                                   "mobilephone": "+1 415-555-0134", "website": "bluewave.io",
                                   "lifecyclestage": "lead"}
    assert draft["warnings"] == []

    # the caller corrects the draft before saving; the app makes the rep who scanned it the owner
    edited = {**draft["properties"], "jobtitle": "VP Sales", "hubspot_owner_id": "8002"}
    saved = await imports.post("/corral/v1/capture/business-card/confirm",
                               json={"properties": edited, "platform": "MOBILE_ANDROID"})
    assert saved.status_code == 200, saved.text
    (result,) = saved.json()["results"]
    assert result["status"] == "CREATED"
    contact = (await records.get(f"/crm/v3/objects/contacts/{result['id']}", params={
        "properties": "firstname,lastname,jobtitle,company,mobilephone,website,lifecyclestage,hubspot_owner_id,"
                      "hs_analytics_source,"
                      "hs_analytics_source_data_1,hs_analytics_source_data_2",
        "propertiesWithHistory": "email"})).json()
    props = contact["properties"]
    assert {k: props[k] for k in ("firstname", "lastname", "jobtitle", "company", "mobilephone", "website",
                                  "lifecyclestage", "hubspot_owner_id")} == {
        "firstname": "Ben", "lastname": "Okafor", "jobtitle": "VP Sales", "company": "Bluewave Analytics Inc.",
        "mobilephone": "+1 415-555-0134", "website": "bluewave.io", "lifecyclestage": "lead",
        "hubspot_owner_id": "8002"}
    assert (props["hs_analytics_source"], props["hs_analytics_source_data_1"],
            props["hs_analytics_source_data_2"]) == ("OFFLINE", "MOBILE_ANDROID", "business-card-scanner")
    (first_email,) = contact["propertiesWithHistory"]["email"]
    assert (first_email["sourceType"], first_email.get("sourceId")) == ("MOBILE_ANDROID", "business-card-scanner")


async def test_a_second_card_with_a_known_email_updates_the_contact_but_not_its_owner(
        imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    first = only_draft(await scan(imports, card_photo(MARIA, angle=2)))
    created = (await imports.post("/corral/v1/capture/business-card/confirm",
                                  json={"properties": first["properties"], "platform": "MOBILE_IOS"})).json()
    contact_id = created["results"][0]["id"]
    # a sales rep takes the lead over and moves it on
    patched = await records.patch(f"/crm/v3/objects/contacts/{contact_id}", json={"properties": {
        "hubspot_owner_id": "7001", "lifecyclestage": "opportunity"}})
    assert patched.status_code == 200, patched.text

    promoted = ["Maria Gonzalez-Smith", "Chief Partnership Officer", "Northwind Robotics GmbH",
                "maria.gonzalez@northwind-robotics.de", "Mobile: +49 171 7654321", "www.northwind-robotics.de"]
    second = only_draft(await scan(imports, card_photo(promoted, angle=-2.5, seed=11)))
    assert second["existingId"] == contact_id
    assert (second["properties"]["jobtitle"], second["properties"]["mobilephone"]) == (
        "Chief Partnership Officer", "+49 171 7654321")
    # another rep scans the card: the app asks for them as owner, the contact keeps its own
    saved = await imports.post("/corral/v1/capture/business-card/confirm", json={
        "properties": {**second["properties"], "hubspot_owner_id": "8002"}, "platform": "MOBILE_ANDROID"})
    assert saved.status_code == 200, saved.text
    (result,) = saved.json()["results"]
    assert (result["id"], result["status"]) == (contact_id, "UPDATED")
    props = (await records.get(f"/crm/v3/objects/contacts/{contact_id}", params={
        "properties": "jobtitle,mobilephone,hubspot_owner_id,lifecyclestage,hs_analytics_source_data_1"})).json()[
        "properties"]
    assert (props["jobtitle"], props["mobilephone"]) == ("Chief Partnership Officer", "+49 171 7654321")
    assert (props["hubspot_owner_id"], props["lifecyclestage"]) == ("7001", "opportunity")
    assert props["hs_analytics_source_data_1"] == "MOBILE_IOS"  # the original source stays the first capture's
    assert [p["id"] for p in await search_all(records, "contacts", ["email"])] == [contact_id]


async def test_an_iphone_heic_photo_is_read(imports: httpx.AsyncClient) -> None:
    draft = only_draft(await scan(imports, card_photo(MARIA, angle=-1.5, image_format="HEIF"),
                                  content_type="image/heic"))
    assert draft["properties"] == MARIA_DRAFT


def blank_photo(size: tuple[int, int] = (900, 500)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (245, 245, 245)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("body", "reason"), [
    (b"BEGIN:VCARD\nVERSION:3.0\nFN:Not A Photo\nEND:VCARD\n", "The upload is not an image"),
    (card_photo(MARIA, image_format="PNG")[:4000], "The image could not be read"),
    (blank_photo((60, 40)), "too small to read"),
    (blank_photo(), "No text was found on the image"),
    (card_photo(["Quarterly report", "Confidential draft", "Do not distribute"]),
     "No name, email or phone number was found"),
    (b"", "The request holds no image"),
])
async def test_unreadable_uploads_are_refused_with_the_reason(imports: httpx.AsyncClient, records: httpx.AsyncClient,
                                                              body: bytes, reason: str) -> None:
    answer = await imports.post("/corral/v1/capture/business-card", content=body,
                                headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert (error["status"], error["category"]) == ("error", "VALIDATION_ERROR")
    assert reason in error["message"]
    assert await search_all(records, "contacts", ["email"]) == []


async def test_oversized_photos_and_forms_without_an_image_are_refused(imports: httpx.AsyncClient) -> None:
    huge = b"\xff\xd8\xff" + bytes(10 * 1024 * 1024)
    for answer in (await imports.post("/corral/v1/capture/business-card", content=huge,
                                      headers={"content-type": "image/jpeg"}),
                   await scan(imports, huge)):
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"] == "The image is larger than 10 MB"
    wrong_part = await imports.post("/corral/v1/capture/business-card",
                                    files={"photo": ("card.jpg", card_photo(MARIA), "image/jpeg")})
    assert wrong_part.status_code == 400
    assert "multipart part named `image`" in wrong_part.json()["message"]


@pytest.mark.parametrize(("properties", "reason"), [
    ({"email": "maria.gonzalez@@northwind", "firstname": "Maria"}, "email:"),
    ({"email": "maria@northwind-robotics.de", "annualrevenue": "1000000"}, "not annualrevenue"),
    ({"jobtitle": "CEO", "company": "Northwind"}, "at least an email or a name"),
    ({"firstname": "  ", "email": ""}, "at least an email or a name"),
])
async def test_a_confirmation_that_cannot_be_saved_is_refused(imports: httpx.AsyncClient, records: httpx.AsyncClient,
                                                              properties: dict[str, str], reason: str) -> None:
    answer = await imports.post("/corral/v1/capture/business-card/confirm", json={"properties": properties})
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["message"]
    assert await search_all(records, "contacts", ["email"]) == []
    wrong_platform = await imports.post("/corral/v1/capture/business-card/confirm", json={
        "properties": {"email": "a@b.com"}, "platform": "WINDOWS_PHONE"})
    assert wrong_platform.status_code == 400


# ---- the parser alone, on lines as OCR gets them wrong -------------------------------------------


def lines(*texts: str, confidence: float = 92) -> list[TextLine]:
    return [TextLine(text=text, height=40 if i == 0 else 24, confidence=confidence) for i, text in enumerate(texts)]


def test_ocr_noise_is_undone_where_its_shape_is_known() -> None:
    draft = parse_business_card(lines(
        "Dr. Jonathan O'Neil, PhD", "Co-Founder & CTO", "ACME Widgets", "E-mail: jon,oneil@acmewidgets.com",
        "M +1 (415) 555-O134 | T +1 212 555 0100", "Fax: +1 212 555 0199", "Wwww.acmewidgets,com",
        "1 Market St, Suite 300, San Francisco, CA 94105"))
    assert draft.properties == {
        "firstname": "Jonathan", "lastname": "O'Neil", "jobtitle": "Co-Founder & CTO", "company": "ACME Widgets",
        "email": "jon.oneil@acmewidgets.com", "mobilephone": "+1 415-555-0134", "phone": "+1 212-555-0100",
        "website": "www.acmewidgets.com", "lifecyclestage": "lead"}
    assert draft.problems == []


def test_a_surname_in_capitals_and_numbers_without_labels() -> None:
    draft = parse_business_card(lines("GONZALEZ Maria", "Directrice commerciale", "maria@lumiere-paris.fr",
                                      "01 42 68 53 00", "06 12 34 56 78"))
    assert (draft.properties["firstname"], draft.properties["lastname"]) == ("Maria", "Gonzalez")
    # the domain says the card is French, French numbering which number is the mobile
    assert (draft.properties["mobilephone"], draft.properties["phone"]) == ("+33 6 12 34 56 78", "+33 1 42 68 53 00")
    assert draft.properties["website"] == "lumiere-paris.fr"
    assert "No company was found on the card" in draft.problems
    assert "The website was taken from the email's domain" in draft.problems


def test_what_is_missing_or_hard_to_read_becomes_a_warning() -> None:
    draft = parse_business_card(lines("Ben Ray | Sales Manager", "ben@gmail.com", "Tel +44 20 7946 0958",
                                      confidence=55))
    assert draft.properties == {"firstname": "Ben", "lastname": "Ray", "jobtitle": "Sales Manager",
                                "email": "ben@gmail.com", "phone": "+44 20 7946 0958", "lifecyclestage": "lead"}
    assert "No mobile phone was found on the card (only a landline number)" in draft.problems
    assert "No website was found on the card" in draft.problems  # free mail says nothing about a company
    assert 'The email was hard to read (55% confidence): check "ben@gmail.com"' in draft.problems

    nothing = parse_business_card(lines("~~ ~~", "Lorem ipsum"))
    assert {k: v for k, v in nothing.properties.items() if k != "lifecyclestage"} == {}
    assert "No name was found on the card" in nothing.problems
    assert any(p.startswith("No email") for p in nothing.problems)


def test_misread_letters_are_pointed_out() -> None:
    draft = parse_business_card(lines("Chloe Lindavist", "Managing Director", "Lumiere Studio SARL",
                                      "chloe.lindqvist@lumiere-studio.fr", "Mobile: +33 6 12 96 66 10",
                                      "Tel: +33 1 42 11 95", "www.lumiere-studlo.fr"))
    misread = "differ by a few letters: one of them was probably misread"
    assert draft.problems == [
        "The phone +33 1 42 11 95 is not a valid number: check its digits",
        f"The name's \"Lindavist\" and the email's \"lindqvist\" {misread}",
        f"The email's domain (lumiere-studio.fr) and the website (lumiere-studlo.fr) {misread}"]


def test_specks_beside_the_name_are_not_part_of_it() -> None:
    for read in ("Maria Gonzalez-Smith ©", "Maria Gonzalez-Smith eS)", "e Maria Gonzalez-Smith",
                 "Prof. Dr. Maria Gonzalez-Smith"):
        draft = parse_business_card(lines(read, "maria.gonzalez@northwind-robotics.de"))
        name = (draft.properties.get("firstname"), draft.properties.get("lastname"))
        assert name == ("Maria", "Gonzalez-Smith"), read
    # a speck read with low confidence does not make the name look hard to read; a doubtful word does
    speck = TextLine("Maria Gonzalez-Smith eS)", 40, 68.7, (95, 91, 20))
    doubtful = TextLine("Aiko Lindqvist", 40, 53, (96, 10))
    assert not any("hard to read" in problem for problem in parse_business_card([speck]).problems)
    assert ('The name was hard to read (53% confidence): check "Aiko Lindqvist"'
            in parse_business_card([doubtful]).problems)
