"""Every error code the import can record reaches the API as one of HubSpot's import error types.

The official SDK refuses a whole errors page when one `errorType` is outside its list, so the codes
are gathered from the sources that produce them (records-svc's validation and bulk path, the
pipeline, the mapping check) rather than from a hand-kept list that could fall behind.
"""

from __future__ import annotations

import re
from pathlib import Path

from hubspot.crm.imports.configuration import Configuration
from hubspot.crm.imports.models.public_import_error import PublicImportError
from import_svc.domain.error_types import HUBSPOT_IMPORT_ERROR_TYPES, import_error_type

ROOT = Path(__file__).resolve().parents[3]
PRODUCERS = [
    ROOT / "services/records-svc/src/records_svc/domain/properties.py",
    ROOT / "services/records-svc/src/records_svc/bulk.py",
    ROOT / "services/import-svc/src/import_svc/pipeline.py",
    ROOT / "services/import-svc/src/import_svc/domain/mapping.py",
    ROOT / "services/import-svc/src/import_svc/domain/values.py",
]
CODE_SITES = re.compile(r'(?:InvalidValue|RowError|CouldNotParse|\.error\(line,|return)\(?\s*"([A-Z][A-Z_]+)"')


def sdk_error_types() -> set[str]:
    try:
        strict = Configuration()
        strict.client_side_validation = True  # HubSpot(client_side_validation=True), as our SDK tests run it
        PublicImportError(error_type="NOT_A_TYPE", source_data=None, id="1", created_at=0,
                          local_vars_configuration=strict)
    except ValueError as exc:
        return set(re.findall(r"'([A-Z_]+)'", str(exc).split("must be one of", 1)[1]))
    raise AssertionError("the SDK accepted an unknown error type")


def test_our_list_is_the_sdks() -> None:
    assert set(HUBSPOT_IMPORT_ERROR_TYPES) == sdk_error_types()


def test_every_produced_code_becomes_a_hubspot_error_type() -> None:
    codes = {code for path in PRODUCERS for code in CODE_SITES.findall(path.read_text())}
    assert {"INVALID_BOOLEAN", "INVALID_STRING_LENGTH", "OBJECT_ARCHIVED", "INCORRECT_NUMBER_OF_COLUMNS"} <= codes
    allowed = sdk_error_types()
    assert {code: import_error_type(code) for code in codes if import_error_type(code) not in allowed} == {}
    assert import_error_type("INVALID_STRING_LENGTH") == "COLUMN_TOO_LARGE"
    assert import_error_type("SOMETHING_NEW") == "FAILED_VALIDATION"
