"""A draft contact from the lines OCR read on a business card (pure).

Cards have no grammar, so this is a set of rules in the order a person reads one: first what has an
unmistakable shape (email, website, phone numbers, by label when there is one), then among the
remaining lines the company (a legal form, or the email's domain spelled out), the job title (title
words) and the name (two to four capitalised words; the one the email is made of, else the largest).
OCR noise is undone where its shape is known: `O`/`l` in digit runs, `,` for `.` and spaces around
`@` in an email, `wwww.`, specks beside the name; valid phone numbers are rewritten in international
format, which also undoes lost or extra spaces. Whatever could not be found, was read with low
confidence, or disagrees with another field (a name and its email, a website and the email's domain,
one or two letters apart) becomes a warning, since the caller confirms the draft before it is saved."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from import_svc.capture import ContactDraft, _finish
from import_svc.ocr import TextLine

LOW_CONFIDENCE = 70

_SEPARATORS = re.compile(r"\s*[|•·]\s*|\s{3,}")
# OCR reads a dot as a comma and puts spaces around `@`; labels may say "(at)".
_EMAIL = re.compile(
    r"[a-z0-9][a-z0-9._%+'-]*(?:,[a-z0-9._%+'-]+)*\s?(?:@|\(at\)|\[at\])\s?"
    r"[a-z0-9-]+(?:[.,][a-z0-9-]+)*[.,][a-z]{2,24}\b", re.IGNORECASE)
_WEBSITE = re.compile(
    r"(?:(?:https?\s?:\s?//)|\bw{3,4}\s?[.,]\s?)?[a-z0-9][a-z0-9-]*(?:[.,][a-z0-9-]+)*[.,][a-z]{2,24}\b(?:/[^\s]*)?",
    re.IGNORECASE)
_WEBSITE_LABEL = re.compile(r"^(?:web(?:site)?|internet|url)\b\s*[:.]?\s*|^(?:w|site)\s*[:.]\s*", re.IGNORECASE)
_EMAIL_LABEL = re.compile(r"^(?:e-?mail|mail|courriel)\b\s*[:.]?\s*|^e\s*[:.]\s*", re.IGNORECASE)
_PHONE = re.compile(
    r"(?:(?P<label>\b[^\W\d_]{1,12}(?:\s[^\W\d_]{1,8})?)\.?\s*[:.]?\s*)?"
    r"(?P<number>(?:\+|\(\+?)?\d[\d\s().\-/]{5,}\d(?:\s?(?:ext\.?|x)\s?\d{1,5})?)", re.IGNORECASE)
_DIGIT_LOOKALIKES = {"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "S": "5", "B": "8"}
_LOOKALIKE_IN_DIGITS = re.compile(r"(?<=[\d+])[OoDIl|SB](?=[\d\s\-)]|$)|(?<=[\s(+\-])[OoIl|](?=\d)")

MOBILE_LABELS = {"m", "mob", "mobile", "mobil", "cell", "cellular", "c", "cel", "handy", "portable", "port",
                 "móvil", "movil", "celular", "gsm", "mobile phone", "cell phone"}
LANDLINE_LABELS = {"t", "tel", "tél", "phone", "p", "ph", "office", "o", "direct", "d", "dir", "work",
                   "telefon", "téléphone", "telephone", "fon", "main", "switchboard", "fixe", "büro", "zentrale",
                   "landline", "line", "tlf", "tfn", "teléfono", "telefono", "desk"}
FAX_LABELS = {"f", "fax", "telefax", "télécopie"}
LABEL_WORDS = MOBILE_LABELS | LANDLINE_LABELS | FAX_LABELS | {"e-mail", "email", "mail", "e", "web", "website",
                                                               "www", "w", "url", "internet", "site", "courriel"}

# A company's name ends with its legal form ("Acme Inc.", "Smith GmbH & Co. KG"); "Co-Founder" does not.
_LEGAL_FORM = re.compile(
    r"\b(?:gmbh|ag|kg|ug|inc|llc|llp|ltd|limited|corp|corporation|co|company|sa|sas|sarl|srl|spa|s\.p\.a|bv|b\.v|"
    r"nv|plc|pty|oy|ab|as|a/s|aps|kk|gbr|ohg|se|lp)\.?\W*$", re.IGNORECASE)
COMPANY_WORDS = {"group", "holding", "holdings", "partners", "solutions", "technologies", "technology", "labs",
                 "studio", "studios", "consulting", "systems", "software", "services", "associates", "agency",
                 "bank", "university", "institute", "foundation", "industries", "ventures", "capital",
                 "enterprises", "international", "gmbh"}
TITLE_WORDS = {
    "ceo", "cto", "cfo", "coo", "cmo", "cio", "ciso", "cpo", "cro", "vp", "svp", "evp", "avp", "founder",
    "co-founder", "cofounder", "owner", "president", "chairman", "chairwoman", "chair", "director",
    "manager", "head", "lead", "leader", "chief", "officer", "executive", "engineer", "developer",
    "architect", "designer", "consultant", "advisor", "adviser", "analyst", "specialist", "partner",
    "associate", "assistant", "coordinator", "administrator", "representative", "rep", "agent",
    "sales", "marketing", "account", "accountant", "attorney", "lawyer", "counsel", "principal",
    "senior", "junior", "sr", "jr", "intern", "scientist", "researcher", "professor", "lecturer",
    "editor", "producer", "recruiter", "secretary", "treasurer", "supervisor", "technician", "broker",
    "realtor", "nurse", "physician", "pharmacist", "therapist", "teacher", "trainer", "coach",
    "strategist", "buyer", "planner", "operations", "product", "project", "program", "business",
    "development", "vice", "general", "managing", "geschäftsführer", "geschäftsführerin", "leiter",
    "leiterin", "vertrieb", "inhaber", "inhaberin", "berater", "beraterin", "directeur", "directrice",
    "gérant", "responsable", "ingénieur", "directora", "gerente", "jefe", "ingeniero",
}
HONORIFICS = {"dr", "prof", "mr", "mrs", "ms", "mx", "miss", "sir", "herr", "frau", "mme", "mlle", "m", "ing",
              "dipl", "sr", "sra"}
_NAME_WORD = re.compile(r"^[^\W\d_][^\W\d_'’.\-]*(?:['’\-][^\W\d_]+)*\.?$")
_CREDENTIALS = re.compile(r",\s*[A-Za-z.,\s]{2,20}$")
_PARTICLES = {"van", "von", "de", "der", "den", "da", "di", "del", "della", "du", "la", "le", "ten", "ter", "zu",
              "bin", "al", "dos", "das"}
_COUNTRY_TLDS = {"uk": "GB"}


@dataclass(eq=False)  # compared by identity: two lines may read the same
class _Segment:
    text: str
    line: TextLine
    order: int  # the line's position on the card


@dataclass
class _Found:
    value: str
    line: TextLine
    read: str = ""  # the words it was made of, as OCR read them

    @property
    def confidence(self) -> float:
        """tesseract's confidence in the words this value came from (not in a logo speck on the same line)."""
        words = self.line.text.split(" ")
        if len(words) != len(self.line.word_confidences):
            return self.line.confidence
        read = set(self.read.split())
        mine = [c for word, c in zip(words, self.line.word_confidences, strict=True) if word in read]
        return sum(mine) / len(mine) if mine else self.line.confidence


@dataclass
class _Reading:
    found: dict[str, _Found] = field(default_factory=dict)
    phones: list[tuple[str | None, str, TextLine]] = field(default_factory=list)  # (kind, number, line)
    words: list[_Segment] = field(default_factory=list)  # lines left for name, title and company
    notes: list[str] = field(default_factory=list)


def _clean(text: str) -> str:
    text = text.replace("—", "-").replace("–", "-").replace("’", "'")
    text = re.sub(r"(?<=\w)\s?[©®]\s?(?=\w)", "@", text)  # OCR's reading of an @ inside an address
    return re.sub(r"\s+", " ", text).strip(" \t|:;_~'\"*`©®°")


def _segments(lines: Sequence[TextLine]) -> list[_Segment]:
    out = []
    for order, line in enumerate(lines):
        for part in _SEPARATORS.split(line.text):
            text = _clean(part)
            if text:
                out.append(_Segment(text, line, order))
    return out


def _normalized_email(candidate: str) -> str | None:
    text = re.sub(r"\s?(?:\(at\)|\[at\])\s?", "@", candidate, flags=re.IGNORECASE)
    text = re.sub(r"\s", "", text).replace(",", ".").strip(".")
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _normalized_website(candidate: str) -> str:
    text = re.sub(r"\s", "", candidate).replace(",", ".")
    text = re.sub(r"^w{3,4}\.", "www.", text, flags=re.IGNORECASE)
    scheme, sep, rest = text.partition("://")
    host, slash, path = (rest if sep else text).partition("/")
    return (f"{scheme.lower()}://" if sep else "") + host.lower() + slash + path.rstrip(".,;")


def _without(text: str, match: re.Match[str]) -> str:
    return (text[:match.start()] + " " + text[match.end():]).strip()


def _take_email(text: str, reading: _Reading, line: TextLine) -> str:
    if "email" in reading.found:
        return text
    body = _EMAIL_LABEL.sub("", text)
    for match in _EMAIL.finditer(body):
        email = _normalized_email(match.group(0))
        if email:
            reading.found["email"] = _Found(email, line, match.group(0))
            return _without(body, match)
    return text


def _take_website(text: str, reading: _Reading, line: TextLine) -> str:
    if "website" in reading.found:
        return text
    labelled = bool(_WEBSITE_LABEL.match(text))
    body = _WEBSITE_LABEL.sub("", text)
    for match in _WEBSITE.finditer(body):
        candidate = match.group(0)
        # a bare `word.tld` counts only when it stands alone (not "Acme Co.Ltd" inside a sentence)
        explicit = labelled or re.match(r"(?:https?|w{3,4})\b", candidate, re.IGNORECASE) or body == candidate
        if explicit and "@" not in candidate:
            reading.found["website"] = _Found(_normalized_website(candidate), line, candidate)
            return _without(body, match)
    return text


def _phone_kind(label: str | None) -> str | None:
    """mobile, landline, fax, None (no label) or "other" (a word that is no phone label: an address)."""
    if not label:
        return None
    words = label.lower().replace(".", " ").split()
    for candidate in (" ".join(words), words[-1], words[0]):
        if candidate in MOBILE_LABELS:
            return "mobile"
        if candidate in FAX_LABELS:
            return "fax"
        if candidate in LANDLINE_LABELS:
            return "landline"
    return "other"


def _take_phones(text: str, reading: _Reading, line: TextLine) -> str:
    fixed = _LOOKALIKE_IN_DIGITS.sub(lambda m: _DIGIT_LOOKALIKES[m.group(0)], text)
    rest, taken = fixed, False
    for match in _PHONE.finditer(fixed):
        number = re.sub(r"\s+", " ", match.group("number")).strip(" -/.")
        digits = re.sub(r"\D", "", re.split(r"ext|x", number)[0])
        kind = _phone_kind(match.group("label"))
        if not 7 <= len(digits) <= 15 or kind == "other":
            continue  # "Friedrichstr. 12-14, 10117": street numbers and postcodes, not a phone
        if kind != "fax":
            reading.phones.append((kind, number, line))
        rest, taken = rest.replace(match.group(0), " "), True
    return _clean(rest) if taken else text


def _is_leftover_label(text: str) -> bool:
    words = [w.strip(".:") for w in text.lower().split()]
    return len(_letters(text)) < 2 or all(w in LABEL_WORDS or not w for w in words)


def _read(lines: Sequence[TextLine]) -> _Reading:
    reading = _Reading()
    for segment in _segments(lines):
        text = _take_email(segment.text, reading, segment.line)
        text = _take_website(text, reading, segment.line)
        text = _take_phones(text, reading, segment.line)
        text = _clean(text)
        if not text or _is_leftover_label(text):
            continue
        reading.words.append(_Segment(text, segment.line, segment.order))
    return reading


def _region(reading: _Reading) -> str | None:
    """The country the card's domain names, for numbers printed without their country code."""
    for key in ("email", "website"):
        if key in reading.found:
            tld = _host(reading.found[key].value).rsplit(".", 1)[-1]
            if len(tld) == 2:
                return _COUNTRY_TLDS.get(tld, tld.upper())
    return None


def _parsed(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None


def _number_kind(number: str, region: str | None) -> str | None:
    parsed = _parsed(number, region)
    if parsed is None:
        return None
    number_type = phonenumbers.number_type(parsed)
    if number_type == phonenumbers.PhoneNumberType.MOBILE:
        return "mobile"
    if number_type in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
                       phonenumbers.PhoneNumberType.VOIP, phonenumbers.PhoneNumberType.SHARED_COST):
        return "landline"
    return None  # FIXED_LINE_OR_MOBILE (the US, Canada, ...) or unknown


def _international(number: str, region: str | None) -> tuple[str, bool | None]:
    """The number in international format when it is a valid one, else as read; and whether it is valid
    (None: no country to check it against). The format also undoes OCR's lost or extra spaces."""
    parsed = _parsed(number, region)
    if parsed is None:
        return number, None
    if not phonenumbers.is_valid_number(parsed):
        return number, False
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL), True


def _place_phones(reading: _Reading, props: dict[str, str]) -> None:
    region = _region(reading)
    placed: list[tuple[str, str, TextLine]] = []
    undecided: list[tuple[str, TextLine]] = []
    for kind, number, line in reading.phones:
        kind = kind or _number_kind(number, region)
        target = {"mobile": "mobilephone", "landline": "phone"}.get(kind or "")
        if target is None:
            undecided.append((number, line))
        elif target not in props:
            props[target] = number
            placed.append((target, number, line))
    # A number that nothing marks as a landline is most often the card owner's own, mobile one.
    for number, line in undecided:
        target = "mobilephone" if "mobilephone" not in props else "phone"
        if target in props:
            continue
        props[target] = number
        placed.append((target, number, line))
        if target == "mobilephone":
            reading.notes.append(f"The number {number} has no label: it was taken as the mobile phone")
    for target, number, line in placed:
        props[target], valid = _international(number, region)
        reading.found[target] = _Found(props[target], line, number)
        if valid is False:
            reading.notes.append(f"The {_FIELD_NAMES[target]} {number} is not a valid number: check its digits")


def _letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _host(value: str) -> str:
    return value.rsplit("@", 1)[-1].split("://")[-1].split("/")[0].lower().removeprefix("www.")


def _domain_stem(reading: _Reading) -> str:
    """"northwindrobotics" for northwind-robotics.de: a company often spells its domain out."""
    for key in ("website", "email"):
        if key in reading.found:
            labels = _host(reading.found[key].value).split(".")
            if len(labels) >= 2:
                return _letters(labels[-2])
    return ""


def _lower_words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_][^\W\d_'\-]*", text.lower())


def _is_title(text: str) -> bool:
    return any(word in TITLE_WORDS or word.split("-")[-1] in TITLE_WORDS for word in _lower_words(text))


def _has_company_word(text: str) -> bool:
    return any(word in COMPANY_WORDS for word in _lower_words(text))


def _spells_domain(text: str, stem: str) -> bool:
    letters = _letters(text)
    if len(stem) < 4 or len(letters) < 4:
        return False
    return stem in letters or (letters in stem and len(letters) >= 0.6 * len(stem))


def _name_word(token: str) -> bool:
    return bool(_NAME_WORD.match(token)) and (token[0].isupper() or token.lower() in _PARTICLES)


def _name_tokens(text: str) -> list[str] | None:
    """The words of a person's name ("Dr. Maria Gonzalez-Smith, MBA" -> Maria, Gonzalez-Smith) or None."""
    tokens = _CREDENTIALS.sub("", text).strip(" ,").split()
    # a logo or a flourish beside the name comes out as specks at the line's ends ("©", "eS)"): not part of it
    while len(tokens) > 2 and not _name_word(tokens[-1]):
        tokens.pop()
    while len(tokens) > 2 and (not _name_word(tokens[0]) or tokens[0].lower().strip(".") in HONORIFICS):
        tokens.pop(0)
    if not 2 <= len(tokens) <= 4 or not all(_name_word(t) for t in tokens):
        return None
    return tokens


def split_name(tokens: list[str]) -> tuple[str, str]:
    """(first name, last name); a surname printed in capitals ("GONZALEZ Maria") is recognised."""
    capitals = [t for t in tokens if len(t) > 1 and t.isupper()]
    if capitals and len(capitals) < len(tokens):
        return (" ".join(t for t in tokens if t not in capitals),
                " ".join(t.title() for t in tokens if t in capitals))
    if capitals:
        tokens = [t.title() for t in tokens]
    return tokens[0], " ".join(tokens[1:])


def _best_name(candidates: list[tuple[_Segment, list[str]]], email: str, tallest: int
               ) -> tuple[_Segment, list[str]]:
    """The name the email is made of (maria.gonzalez@), else the largest print, else the first."""
    local = _letters(email.split("@")[0]) if email else ""

    def score(item: tuple[_Segment, list[str]]) -> tuple[int, bool, int]:
        segment, tokens = item
        in_email = sum(1 for t in tokens if len(_letters(t)) >= 2 and _letters(t) in local)
        return in_email, segment.line.height >= 0.9 * tallest, -segment.order

    return max(candidates, key=score)


def _place_words(reading: _Reading, props: dict[str, str], tallest: int) -> None:
    stem = _domain_stem(reading)
    words = [s for s in reading.words if not re.search(r"\d", s.text)]  # addresses have numbers
    placed: list[_Segment] = []

    def place(key: str, segment: _Segment) -> None:
        props[key] = segment.text
        reading.found[key] = _Found(segment.text, segment.line, segment.text)
        placed.append(segment)

    for segment in words:
        if "company" not in props and (_LEGAL_FORM.search(segment.text)
                                       or _has_company_word(segment.text) and not _is_title(segment.text)):
            place("company", segment)
        elif "jobtitle" not in props and _is_title(segment.text):
            place("jobtitle", segment)
    names = [(s, tokens) for s in words if s not in placed and (tokens := _name_tokens(s.text))]
    name: _Segment | None = None
    if names:
        name, tokens = _best_name(names, props.get("email", ""), tallest)
        props["firstname"], props["lastname"] = split_name(tokens)
        reading.found["name"] = _Found(" ".join(tokens), name.line, " ".join(tokens))
        placed.append(name)
    left = [s for s in words if s not in placed]
    if "company" not in props:
        spelled = [s for s in left if _spells_domain(s.text, stem)]
        if spelled:
            place("company", spelled[0])
    if "jobtitle" not in props and name is not None:
        below = [s for s in left if s.order == name.order + 1 and s not in placed]
        if below:
            place("jobtitle", below[0])
            reading.notes.append(f"The job title \"{below[0].text}\" is a guess: the line under the name")


def parse_business_card(lines: Sequence[TextLine]) -> ContactDraft:
    """The draft contact a card shows, with a warning for each field the caller should look at."""
    reading = _read(lines)
    props: dict[str, str] = {key: reading.found[key].value for key in ("email", "website") if key in reading.found}
    _place_phones(reading, props)
    _place_words(reading, props, max((line.height for line in lines), default=0))
    draft = _finish(ContactDraft(index=0, properties=props))
    draft.problems.extend(_warnings(reading, draft.properties))
    return draft


def found_anything(draft: ContactDraft) -> bool:
    """Whether the card gave a way to reach or name someone (else there is nothing to confirm)."""
    return any(draft.properties.get(key) for key in ("email", "mobilephone", "phone", "firstname", "lastname"))


_FIELD_NAMES = {"name": "name", "jobtitle": "job title", "company": "company", "email": "email",
                "mobilephone": "mobile phone", "phone": "phone", "website": "website"}


def _warnings(reading: _Reading, props: dict[str, str]) -> list[str]:
    out = list(reading.notes)
    missing = [("firstname", "name"), ("jobtitle", "job title"), ("company", "company"),
               ("mobilephone", "mobile phone")]
    for key, what in missing:
        if key not in props:
            out.append(f"No {what} was found on the card"
                       + (" (only a landline number)" if key == "mobilephone" and "phone" in props else ""))
    if "website" not in props:
        out.append("No website was found on the card")
    elif "website" not in reading.found:
        out.append("The website was taken from the email's domain")
    for key, found in reading.found.items():
        if found.confidence < LOW_CONFIDENCE:
            out.append(f"The {_FIELD_NAMES.get(key, key)} was hard to read ({found.confidence:.0f}% "
                       f"confidence): check \"{found.value}\"")
    if "email" in reading.found and "name" in reading.found:
        # compared as letters only: "O'Neil" is "oneil@"
        local_parts = [_letters(p) for p in re.split(r"[._\-+]", props["email"].split("@")[0]) if len(p) >= 3]
        for token in re.split(r"[\s\-]+", props.get("firstname", "") + " " + props.get("lastname", "")):
            near = [p for p in local_parts if difflib.SequenceMatcher(None, _letters(token), p).ratio() >= 0.75]
            if near and _letters(token) not in local_parts:
                out.append(f"The name's \"{token}\" and the email's \"{near[0]}\" differ by a few letters: "
                           "one of them was probably misread")
    if "email" in reading.found and "website" in reading.found:
        email_host, web_host = _host(props["email"]), _host(props["website"])
        if email_host != web_host and difflib.SequenceMatcher(None, email_host, web_host).ratio() >= 0.8:
            out.append(f"The email's domain ({email_host}) and the website ({web_host}) differ by a few letters: "
                       "one of them was probably misread")
    return out
