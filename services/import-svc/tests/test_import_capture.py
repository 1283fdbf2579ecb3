"""Mobile capture: device contacts from a vCard file, QR codes with a vCard or a MECARD."""

from __future__ import annotations

import httpx

from .conftest import search_all

VCF = """BEGIN:VCARD
VERSION:3.0
N:Doe;John;;;
FN:John Doe
EMAIL;TYPE=INTERNET:John@Capture-Imports.com
TEL;TYPE=CELL:+1 555 1234
TEL;TYPE=WORK:+1 555 9999
TITLE:CEO
END:VCARD
BEGIN:VCARD
VERSION:2.1
N:Müller;Anna
EMAIL;INTERNET:anna@gmail.com
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Nomail Person
TEL;TYPE=cell:+49 170 1111111
END:VCARD
"""


async def test_vcard_file_imports_the_selected_cards(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    dry = await imports.post("/corral/v1/capture/vcards", params={"dryRun": "true"},
                             files={"file": ("contacts.vcf", VCF.encode(), "text/vcard")})
    assert dry.status_code == 200, dry.text
    drafts = dry.json()["results"]
    assert [d["properties"].get("email") for d in drafts] == ["john@capture-imports.com", "anna@gmail.com", None]
    assert drafts[0]["properties"] == {"firstname": "John", "lastname": "Doe", "email": "john@capture-imports.com",
                                       "jobtitle": "CEO", "mobilephone": "+1 555 1234", "phone": "+1 555 9999",
                                       "website": "capture-imports.com", "lifecyclestage": "lead"}
    assert "website" not in drafts[1]["properties"]  # free mail says nothing about a company
    assert drafts[2]["warnings"]
    assert await search_all(records, "contacts", ["email"]) == []

    saved = await imports.post("/corral/v1/capture/vcards", data={"select": "0,2", "platform": "MOBILE_ANDROID"},
                               files={"file": ("contacts.vcf", VCF.encode(), "text/vcard")})
    assert saved.status_code == 200, saved.text
    assert [(r["index"], r["status"]) for r in saved.json()["results"]] == [(0, "CREATED"), (2, "CREATED")]
    people = await search_all(records, "contacts", ["email", "firstname", "lastname", "mobilephone", "lifecyclestage"])
    assert sorted(p["properties"]["lastname"] for p in people) == ["Doe", "Person"]


async def test_qr_codes_update_existing_contacts_without_moving_lifecycle(imports: httpx.AsyncClient,
                                                                          records: httpx.AsyncClient) -> None:
    existing = (await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "jane@qr-imports.com", "lifecyclestage": "customer", "city": "Old"}})).json()
    mecard = "MECARD:N:Roe,Jane;TEL:+33 6 12 34 56 78;EMAIL:jane@qr-imports.com;ORG:Qr Corp;" \
             "ADR:,,1 Rue Test,Paris,IDF,75001,France;URL:https://qr-imports.com;;"
    answer = await imports.post("/corral/v1/capture/qr", json={"text": mecard})
    assert answer.status_code == 200, answer.text
    (result,) = answer.json()["results"]
    assert (result["id"], result["status"]) == (existing["id"], "UPDATED")
    props = (await records.get(f"/crm/v3/objects/contacts/{existing['id']}", params={
        "properties": "firstname,lastname,lifecyclestage,city,company,mobilephone,zip,country"})).json()["properties"]
    assert (props["firstname"], props["lastname"], props["lifecyclestage"], props["city"], props["company"],
            props["zip"], props["country"]) == ("Jane", "Roe", "customer", "Paris", "Qr Corp", "75001", "France")

    vcard = "BEGIN:VCARD\nVERSION:3.0\nN:Ray;Ben\nEMAIL:ben@qr-imports.com\nORG:Qr Corp\nEND:VCARD\n"
    created = (await imports.post("/corral/v1/capture/qr", json={"text": vcard, "platform": "MOBILE_IOS"})).json()
    assert created["results"][0]["status"] == "CREATED"
    bad = await imports.post("/corral/v1/capture/qr", json={"text": "https://example.com"})
    assert bad.status_code == 400


def qr_png(text: str) -> bytes:
    import io

    import zxingcpp
    from PIL import Image

    bitmap = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode).to_image(scale=6)
    height, width = bitmap.shape
    picture = Image.new("L", (width + 80, height + 80), 255)  # a photo has more than the code in it
    picture.paste(Image.frombytes("L", (width, height), bytes(memoryview(bitmap))), (40, 40))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


async def test_qr_code_photo(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    png = qr_png("MECARD:N:Photo,Paula;EMAIL:paula@photo-imports.com;TEL:+44 7700 900123;;")
    answer = await imports.post("/corral/v1/capture/qr/image", data={"platform": "MOBILE_ANDROID"},
                                files={"image": ("qr.png", png, "image/png")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"].startswith("MECARD:")
    assert body["results"][0]["status"] == "CREATED"
    (person,) = await search_all(records, "contacts", ["email", "firstname", "mobilephone"])
    assert (person["properties"]["firstname"], person["properties"]["mobilephone"]) == ("Paula", "+44 7700 900123")
    blank = await imports.post("/corral/v1/capture/qr/image", files={"image": ("x.png", qr_png("x")[:50], "image/png")})
    assert blank.status_code == 400
