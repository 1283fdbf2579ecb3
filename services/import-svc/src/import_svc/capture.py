"""Mobile capture: contacts from vCards (device address books, QR codes) and MECARD QR payloads (pure).

vCards (2.1, 3.0, 4.0) are parsed with vobject. MECARD (the NTT DoCoMo QR format,
`MECARD:N:Doe,John;TEL:...;EMAIL:...;;`) has no maintained Python parser; its grammar is one line
of `KEY:value;` pairs with backslash escapes, parsed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import vobject
from crm_common.inputs import bad_character

from import_svc.domain.rules import FREE_MAIL_DOMAINS

PLATFORMS = frozenset({"MOBILE_IOS", "MOBILE_ANDROID"})


@dataclass
class ContactDraft:
    index: int
    properties: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v)
    return str(value or "").strip()


def _website_from_email(email: str) -> str | None:
    domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
    if not domain or domain in FREE_MAIL_DOMAINS:
        return None
    return domain


def _finish(draft: ContactDraft, *, default_lifecycle: bool = True) -> ContactDraft:
    props = {}
    for name, value in draft.properties.items():
        if value and bad_character(value):
            # No database stores a NUL (or half of a surrogate pair): the value is kept without it, and said.
            value = _UNSTORABLE.sub("", value).strip()
            draft.problems.append(f"{name}: characters that cannot be stored (NUL) were removed")
        if value:
            props[name] = value
    email = props.get("email", "")
    if email and "website" not in props:
        website = _website_from_email(email)
        if website:
            props["website"] = website
    if default_lifecycle:
        props.setdefault("lifecyclestage", "lead")
    if not email:
        draft.problems.append("No email: matched by name with phone or company only, and not associated with "
                              "a company")
    draft.properties = props
    return draft


_CARD_START = re.compile(r"^[ \t]*BEGIN[ \t]*:[ \t]*VCARD", re.IGNORECASE | re.MULTILINE)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def count_vcards(text: str) -> int:
    """How many cards a .vcf holds, counted without parsing them (a regular expression over the text)."""
    return sum(1 for _ in _CARD_START.finditer(text))


def parse_vcards(text: str, *, extended: bool = False) -> list[ContactDraft]:
    """Every card of a .vcf; `extended` adds what QR codes carry (address, company, website)."""
    drafts = []
    for index, card in enumerate(vobject.readComponents(text, ignoreUnreadable=True)):
        if card.name.upper() != "VCARD":
            continue
        draft = ContactDraft(index=index)
        props = draft.properties
        n = card.contents.get("n")
        if n:
            props["firstname"] = _text(n[0].value.given)
            props["lastname"] = _text(n[0].value.family)
        elif card.contents.get("fn"):
            parts = _text(card.fn.value).split(None, 1)
            props["firstname"] = parts[0] if parts else ""
            props["lastname"] = parts[1] if len(parts) > 1 else ""
        emails = card.contents.get("email", [])
        if emails:
            preferred = next((e for e in emails if "PREF" in [t.upper() for t in e.params.get("TYPE", [])]), emails[0])
            props["email"] = _text(preferred.value).lower()
        if card.contents.get("title"):
            props["jobtitle"] = _text(card.title.value)
        for tel in card.contents.get("tel", []):
            types = {t.upper() for t in tel.params.get("TYPE", [])} | {k.upper() for k in tel.params if k != "TYPE"}
            number = _text(tel.value)
            if types & {"CELL", "MOBILE", "IPHONE"}:
                props.setdefault("mobilephone", number)
            else:
                props.setdefault("phone", number)
        if extended:
            if card.contents.get("org"):
                props["company"] = _text(card.org.value)
            if card.contents.get("url"):
                props["website"] = _text(card.url.value)
            if card.contents.get("adr"):
                adr = card.adr.value
                props["address"] = _text(adr.street)
                props["city"] = _text(adr.city)
                props["state"] = _text(adr.region)
                props["zip"] = _text(adr.code)
                props["country"] = _text(adr.country)
        drafts.append(_finish(draft))
    return drafts


_MECARD_FIELD = re.compile(r"((?:[^;\\]|\\.)*);")


def parse_mecard(text: str) -> ContactDraft:
    body = text.strip()
    if not body.upper().startswith("MECARD:"):
        raise ValueError("not a MECARD")
    body = body[len("MECARD:"):]
    if not body.endswith(";"):
        body += ";"
    draft = ContactDraft(index=0)
    props = draft.properties
    for raw in _MECARD_FIELD.findall(body):
        if ":" not in raw:
            continue
        key, value = raw.split(":", 1)
        value = re.sub(r"\\(.)", r"\1", value).strip()
        key = key.upper()
        if key == "N":
            family, _, given = value.partition(",")
            props["lastname"], props["firstname"] = family.strip(), given.strip()
        elif key == "EMAIL":
            props.setdefault("email", value.lower())
        elif key == "TEL":
            props.setdefault("mobilephone", value)
        elif key == "URL":
            props["website"] = value
        elif key == "ORG":
            props["company"] = value
        elif key == "TITLE":
            props["jobtitle"] = value
        elif key == "ADR":
            # po box, extended, street, city, region, postal code, country
            parts = [p.strip() for p in value.split(",")]
            parts += [""] * (7 - len(parts))
            props.update({"address": parts[2], "city": parts[3], "state": parts[4], "zip": parts[5],
                          "country": parts[6]})
    return _finish(draft)


def parse_qr_text(text: str) -> list[ContactDraft]:
    stripped = text.strip()
    if stripped.upper().startswith("MECARD:"):
        return [parse_mecard(stripped)]
    if stripped.upper().startswith("BEGIN:VCARD"):
        return parse_vcards(stripped, extended=True)
    raise ValueError("The QR code holds neither a vCard nor a MECARD")
