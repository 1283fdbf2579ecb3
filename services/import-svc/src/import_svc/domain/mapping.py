"""Suggesting column mappings and checking cells against property definitions (pure: no I/O)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from import_svc.domain.values import CouldNotParse, NumberFormat, convert

# Common headers in other languages, for the properties people import most. Labels of custom
# properties are matched as written; these cover the standard ones.
HEADER_SYNONYMS: dict[str, dict[str, str]] = {
    "en": {"email": "email", "emailaddress": "email", "mail": "email", "firstname": "firstname",
           "givenname": "firstname", "lastname": "lastname", "surname": "lastname", "familyname": "lastname",
           "phone": "phone", "phonenumber": "phone", "telephone": "phone", "mobile": "mobilephone",
           "company": "company", "companyname": "name", "domain": "domain", "website": "website",
           "city": "city", "country": "country", "zip": "zip", "postalcode": "zip", "jobtitle": "jobtitle",
           "title": "jobtitle", "street": "address", "address": "address", "birthday": "date_of_birth",
           "dateofbirth": "date_of_birth", "recordid": "hs_object_id", "id": "hs_object_id"},
    "de": {"email": "email", "emailadresse": "email", "vorname": "firstname", "nachname": "lastname",
           "familienname": "lastname", "telefon": "phone", "telefonnummer": "phone", "handy": "mobilephone",
           "mobiltelefon": "mobilephone", "firma": "company", "unternehmen": "company", "stadt": "city",
           "ort": "city", "land": "country", "plz": "zip", "postleitzahl": "zip", "strasse": "address",
           "adresse": "address", "geburtstag": "date_of_birth", "geburtsdatum": "date_of_birth",
           "position": "jobtitle", "berufsbezeichnung": "jobtitle", "webseite": "website"},
    "fr": {"courriel": "email", "adresseemail": "email", "prenom": "firstname", "nom": "lastname",
           "nomdefamille": "lastname", "telephone": "phone", "portable": "mobilephone", "entreprise": "company",
           "societe": "company", "ville": "city", "pays": "country", "codepostal": "zip", "adresse": "address",
           "datedenaissance": "date_of_birth", "poste": "jobtitle", "siteweb": "website"},
    "es": {"correo": "email", "correoelectronico": "email", "nombre": "firstname", "apellido": "lastname",
           "apellidos": "lastname", "telefono": "phone", "movil": "mobilephone", "empresa": "company",
           "ciudad": "city", "pais": "country", "codigopostal": "zip", "direccion": "address",
           "fechadenacimiento": "date_of_birth", "cargo": "jobtitle", "sitioweb": "website"},
    "nl": {"voornaam": "firstname", "achternaam": "lastname", "telefoon": "phone", "bedrijf": "company",
           "stad": "city", "plaats": "city", "land": "country", "postcode": "zip", "adres": "address",
           "geboortedatum": "date_of_birth", "functie": "jobtitle"},
    "it": {"nome": "firstname", "cognome": "lastname", "telefono": "phone", "azienda": "company", "citta": "city",
           "paese": "country", "cap": "zip", "indirizzo": "address", "datadinascita": "date_of_birth"},
    "pt": {"nome": "firstname", "sobrenome": "lastname", "apelido": "lastname", "telefone": "phone",
           "empresa": "company", "cidade": "city", "pais": "country", "cep": "zip", "endereco": "address",
           "datadenascimento": "date_of_birth", "cargo": "jobtitle"},
}


def normalise_header(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def suggest(header: str, catalogs: dict[str, dict[str, dict[str, Any]]], language: str | None
            ) -> dict[str, Any] | None:
    """The property a header most likely means: exact name, label, then the language's usual words."""
    key = normalise_header(header)
    if not key:
        return None
    for type_id, props in catalogs.items():
        for name, prop in props.items():
            if normalise_header(name) == key:
                return {"columnObjectTypeId": type_id, "propertyName": name, "propertyLabel": prop.get("label"),
                        "matchedBy": "NAME"}
        for name, prop in props.items():
            if normalise_header(str(prop.get("label") or "")) == key:
                return {"columnObjectTypeId": type_id, "propertyName": name, "propertyLabel": prop.get("label"),
                        "matchedBy": "LABEL"}
    languages = [language.split("-")[0].lower()] if language else []
    languages += [lang for lang in HEADER_SYNONYMS if lang not in languages]
    for lang in languages:
        target = HEADER_SYNONYMS.get(lang, {}).get(key)
        if target is None:
            continue
        for type_id, props in catalogs.items():
            if target in props:
                return {"columnObjectTypeId": type_id, "propertyName": target,
                        "propertyLabel": props[target].get("label"), "matchedBy": f"SYNONYM_{lang.upper()}"}
    return None


def check_cell(value: str, prop: dict[str, Any], *, date_format: str, number_format: NumberFormat,
               time_zone: ZoneInfo | None) -> tuple[str, str] | None:
    """(errorType, message) when records-svc would refuse the value, else None."""
    text = value.strip()
    if not text:
        return None
    try:
        converted = convert(text, prop.get("type", "string"), date_format=date_format, number_format=number_format,
                            time_zone=time_zone)
    except CouldNotParse as exc:
        return exc.code, exc.message
    name = prop.get("name")
    if name in ("email", "hs_additional_emails", "work_email"):
        for part in [p for p in converted.split(";") if p.strip()]:
            try:
                validate_email(part.strip(), check_deliverability=False)
            except EmailNotValidError as exc:
                return "INVALID_EMAIL", f"Email address {part.strip()} is invalid: {exc}"
    if prop.get("type") == "bool" or prop.get("fieldType") == "booleancheckbox":
        if converted.lower() not in {"true", "false", "yes", "no", "1", "0"}:
            return "INVALID_BOOLEAN", f"{text} is not a valid boolean: use true or false"
    elif prop.get("type") == "enumeration":
        options = prop.get("options") or []
        allowed = {str(o.get("value", "")).lower() for o in options} | {str(o.get("label", "")).lower() for o in options}
        parts = [p.strip() for p in converted.split(";") if p.strip()] if prop.get("fieldType") == "checkbox" \
            else [converted]
        for part in parts:
            if part.lower() not in allowed:
                listing = ", ".join(str(o.get("value")) for o in options)
                return "INVALID_ENUMERATION_OPTION", f"{part} was not one of the allowed options: [{listing}]"
    return None
