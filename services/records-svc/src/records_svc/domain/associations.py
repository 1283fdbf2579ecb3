"""HubSpot's default association types: (from type, to type) -> type ids, with the primary label."""

from __future__ import annotations

from dataclasses import dataclass

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
USER_DEFINED = "USER_DEFINED"


@dataclass(frozen=True)
class AssociationType:
    from_type: str
    to_type: str
    type_id: int
    label: str | None  # None for the unlabeled default
    inverse_type_id: int


# (from, to, unlabeled default id, inverse default id, primary id or None, inverse primary id or None)
_PAIRS = [
    ("0-1", "0-2", 279, 280, 1, 2),
    ("0-3", "0-1", 3, 4, None, None),
    ("0-3", "0-2", 341, 342, 5, 6),
    ("0-1", "0-5", 15, 16, None, None),
    ("0-2", "0-5", 340, 339, None, None),
    ("0-3", "0-5", 27, 28, None, None),
    ("0-2", "0-2", 450, 450, None, None),
    ("0-1", "0-1", 449, 449, None, None),
    ("0-5", "0-2", 339, 340, 26, 25),
    ("0-3", "0-8", 19, 20, None, None),
]

DEFAULT_TYPES: dict[tuple[str, str], AssociationType] = {}
PRIMARY_TYPES: dict[tuple[str, str], AssociationType] = {}
for _f, _t, _id, _inv, _prim, _prim_inv in _PAIRS:
    DEFAULT_TYPES.setdefault((_f, _t), AssociationType(_f, _t, _id, None, _inv))
    DEFAULT_TYPES.setdefault((_t, _f), AssociationType(_t, _f, _inv, None, _id))
    if _prim is not None and _prim_inv is not None:
        PRIMARY_TYPES.setdefault((_f, _t), AssociationType(_f, _t, _prim, "Primary", _prim_inv))
        PRIMARY_TYPES.setdefault((_t, _f), AssociationType(_t, _f, _prim_inv, "Primary", _prim))

# Activities -> contacts/companies/deals/tickets, HubSpot's documented ids; each inverse is the id - 1
# (contact -> note is 201, note -> contact 202).
_ACTIVITY_IDS = {
    "0-46": {"0-1": 202, "0-2": 190, "0-3": 214, "0-5": 228},  # notes
    "0-48": {"0-1": 194, "0-2": 182, "0-3": 206, "0-5": 220},  # calls
    "0-49": {"0-1": 198, "0-2": 186, "0-3": 210, "0-5": 224},  # emails
    "0-47": {"0-1": 200, "0-2": 188, "0-3": 212, "0-5": 226},  # meetings
    "0-27": {"0-1": 204, "0-2": 192, "0-3": 216, "0-5": 230},  # tasks
}
for _activity, _targets in _ACTIVITY_IDS.items():
    for _target, _type_id in _targets.items():
        _inverse = _type_id - 1
        DEFAULT_TYPES.setdefault((_activity, _target), AssociationType(_activity, _target, _type_id, None, _inverse))
        DEFAULT_TYPES.setdefault((_target, _activity), AssociationType(_target, _activity, _inverse, None, _type_id))


def inverse_of(from_type: str, to_type: str, type_id: int) -> int | None:
    for table in (DEFAULT_TYPES, PRIMARY_TYPES):
        found = table.get((from_type, to_type))
        if found and found.type_id == type_id:
            return found.inverse_type_id
    return None


def label_of(from_type: str, to_type: str, type_id: int) -> str | None:
    found = PRIMARY_TYPES.get((from_type, to_type))
    return found.label if found and found.type_id == type_id else None


def association_key(from_type: str, to_type: str, type_id: int) -> str:
    """HubSpot's legacy `type` string in `?associations=` results, e.g. contact_to_company."""
    from records_svc.domain.object_types import find_standard_object_type

    f = find_standard_object_type(from_type)
    t = find_standard_object_type(to_type)
    base = f"{f.singular if f else from_type}_to_{t.singular if t else to_type}"
    default = DEFAULT_TYPES.get((from_type, to_type))
    if default and default.type_id == type_id:
        return base
    if label_of(from_type, to_type, type_id):
        return f"{base}_primary" if from_type != "0-1" else base
    return f"{base}_{type_id}"
