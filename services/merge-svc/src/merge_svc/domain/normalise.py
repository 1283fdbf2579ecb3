"""Value normalisers for duplicate matching: one per kind of value a matching setting can name.

Each turns what people type into the form two spellings of the same thing share: phone numbers to E.164
(phonenumbers), emails lower-cased with the sub-address dropped (and Gmail's ignored dots), web addresses
and email domains to the registrable domain (tldextract with its bundled public-suffix list, offline),
names transliterated to ASCII (unidecode), with their nickname family (the `nicknames` table) and a
phonetic key (jellyfish's metaphone), street addresses with their usual abbreviations folded, postcodes
and identifiers without spacing or punctuation, dates to YYYYMMDD.

Pure functions, cached: a million records hold far fewer distinct values, and phone parsing costs
tens of microseconds a value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

import jellyfish
import phonenumbers
import tldextract
from nameparser import HumanName
from nicknames import NickNamer
from unidecode import unidecode

CACHE = 1 << 18
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_NON_ALNUM_SPACE = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\D+")

# Offline: the suffix list shipped inside the package, never fetched. Private suffixes count (two shops on
# github.io or myshopify.com are two companies).
_DOMAINS = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)
_NICKNAMES = NickNamer()

# USPS street suffixes and unit designators (Publication 28, appendix C) plus their common spellings in
# other English-speaking countries: "Tullaroop Street" and "tullaroop st" are one address.
_ADDRESS_WORDS = {
    "street": "st", "str": "st", "road": "rd", "avenue": "ave", "av": "ave", "boulevard": "blvd",
    "drive": "dr", "lane": "ln", "court": "ct", "place": "pl", "square": "sq", "terrace": "ter",
    "parkway": "pkwy", "highway": "hwy", "circuit": "cct", "circle": "cir", "crescent": "cres",
    "close": "cl", "grove": "gr", "parade": "pde", "esplanade": "esp", "way": "way", "mount": "mt",
    "north": "n", "south": "s", "east": "e", "west": "w", "northeast": "ne", "northwest": "nw",
    "southeast": "se", "southwest": "sw", "apartment": "apt", "suite": "ste", "unit": "unit",
    "floor": "fl", "building": "bldg", "saint": "st", "number": "no",
}
_GMAIL = {"gmail.com", "googlemail.com"}


def fold(value: str | None) -> str:
    """Lower-case ASCII with punctuation turned into single spaces."""
    if not value:
        return ""
    text = unidecode(str(value)).lower()
    return _SPACES.sub(" ", _NON_ALNUM_SPACE.sub(" ", text)).strip()


@lru_cache(maxsize=CACHE)
def name(value: str | None) -> str:
    """A name part as letters only ("O'Brien" = "obrien", "Zoë" = "zoe")."""
    return _NON_ALNUM.sub("", fold(value))


@lru_cache(maxsize=CACHE)
def name_family(value: str) -> tuple[str, ...]:
    """The name with every formal name it is a nickname of, and every nickname of it ("bill" meets
    "william"; "liz" and "beth" meet in "elizabeth")."""
    if not value:
        return ()
    family = {value} | set(_NICKNAMES.canonicals_of(value)) | set(_NICKNAMES.nicknames_of(value))
    return tuple(sorted(n for n in family if n))


@lru_cache(maxsize=CACHE)
def phonetic(value: str) -> str:
    return jellyfish.metaphone(value).replace(" ", "") if value else ""


def split_full_name(value: str | None) -> tuple[str, str]:
    """(first, last) of a full name written any way people write it ("Dr. Ada Lovelace", "Lovelace, Ada")."""
    parsed = HumanName(str(value or ""))
    return name(parsed.first), name(parsed.last)


@lru_cache(maxsize=CACHE)
def email(value: str | None) -> str:
    """The mailbox: lower-cased, sub-address ("+tag") dropped, and Gmail's ignored dots removed."""
    text = str(value or "").strip().lower()
    if "@" not in text:
        return ""
    local, _, domain_part = text.rpartition("@")
    local = local.split("+", 1)[0]
    domain_part = domain_part.strip(".")
    if domain_part in _GMAIL:
        local, domain_part = local.replace(".", ""), "gmail.com"
    if not local or not domain_part:
        return ""
    return f"{local}@{domain_part}"


@lru_cache(maxsize=CACHE)
def domain(value: str | None) -> str:
    """The registrable domain of a web address, a host name or an email ("https://www.acme.co.uk/x" and
    "sales@mail.acme.co.uk" are both "acme.co.uk")."""
    text = str(value or "").strip().lower()
    if not text:
        return ""
    if "@" in text and "/" not in text:
        text = text.rpartition("@")[2]
    parts = _DOMAINS(text)
    if not parts.domain:
        return ""
    return f"{parts.domain}.{parts.suffix}" if parts.suffix else parts.domain


@lru_cache(maxsize=CACHE)
def phone(value: str | None, region: str = "US") -> str:
    """E.164 when the number parses (a number without a country code is read in `region`), else its
    digits: "(415) 555-0100", "415.555.0100" and "+1 415 555 0100" are all "+14155550100"."""
    text = str(value or "").strip()
    digits = _DIGITS.sub("", text)
    if len(digits) < 5:
        return ""
    try:
        parsed = phonenumbers.parse(text if not text.startswith("00") else "+" + text[2:], region)
    except phonenumbers.NumberParseException:
        return digits
    if phonenumbers.is_possible_number(parsed):
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return digits


def phone_tail(e164_or_digits: str) -> str:
    """The subscriber part: the same line written with and without a country or trunk prefix."""
    digits = _DIGITS.sub("", e164_or_digits)
    return digits[-8:] if len(digits) >= 8 else ""


@lru_cache(maxsize=CACHE)
def address(value: str | None) -> str:
    words = fold(value).split()
    return " ".join(_ADDRESS_WORDS.get(w, w) for w in words)


@lru_cache(maxsize=CACHE)
def postcode(value: str | None) -> str:
    return _NON_ALNUM.sub("", fold(value)).upper()


@lru_cache(maxsize=CACHE)
def identifier(value: str | None) -> str:
    return _NON_ALNUM.sub("", fold(value)).upper()


# A company's legal form says nothing about which company it is: "Acme Inc." is "Acme".
_LEGAL_FORMS = frozenset({"inc", "incorporated", "ltd", "limited", "llc", "llp", "corp", "corporation", "co",
                          "company", "gmbh", "ag", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "plc", "pty",
                          "oy", "ab", "as", "kg", "lp"})


@lru_cache(maxsize=CACHE)
def text(value: str | None) -> str:
    """Folded text; trailing legal forms dropped (names of companies; harmless elsewhere)."""
    words = fold(value).split()
    while len(words) > 1 and words[-1] in _LEGAL_FORMS:
        words.pop()
    return " ".join(words)


_DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d")


@lru_cache(maxsize=CACHE)
def date(value: str | None) -> str:
    """YYYYMMDD from ISO dates and datetimes, epoch milliseconds (HubSpot's date values) or compact
    digits; a value that reads as none of them keeps its digits (a typo stays comparable)."""
    raw = str(value or "").strip()
    if not raw:
        return ""
    if raw.isdigit() and len(raw) >= 11:  # epoch milliseconds
        try:
            return datetime.fromtimestamp(int(raw) / 1000, tz=UTC).strftime("%Y%m%d")
        except (OverflowError, ValueError, OSError):
            return raw
    head = raw[:10] if len(raw) > 10 and raw[4:5] == "-" else raw
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(head, fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    return _DIGITS.sub("", raw)
