"""Which backend owns a public path, and which scopes a call needs: a table, first match wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from corral_gateway.scopes import ScopePair, family_of

# A scope rule gets the path segments and whether the call writes; it answers the scopes the token
# must all hold. An empty answer means the path names no object type (e.g. a bare collection); the
# service still sees the token's scopes in the signed context and decides.
ScopeRule = Callable[[Sequence[str], bool], list[str]]


# Words that can stand where an object type is expected and shift it one segment right
# (`/crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}`).
NOT_A_TYPE = frozenset({"default"})


def _types_at(segments: Sequence[str], positions: Sequence[int]) -> list[str]:
    found = []
    for i in positions:
        if i < len(segments) and segments[i] in NOT_A_TYPE:
            i += 1
        if i < len(segments):
            found.append(segments[i])
    return found


def objects(*type_positions: int) -> ScopeRule:
    """Record scopes of the object types at these segment positions (associations name two)."""

    def rule(segments: Sequence[str], write: bool) -> list[str]:
        return [family_of(t).objects.for_access(write) for t in _types_at(segments, type_positions)]

    return rule


def schemas(*type_positions: int) -> ScopeRule:
    def rule(segments: Sequence[str], write: bool) -> list[str]:
        return [family_of(t).schemas.for_access(write) for t in _types_at(segments, type_positions)]

    return rule


def fixed(read: str, write: str | None = None) -> ScopeRule:
    pair = ScopePair(read, write or read)

    def rule(_: Sequence[str], write: bool) -> list[str]:
        return [pair.for_access(write)]

    return rule


@dataclass(frozen=True)
class Route:
    """`pattern` is matched segment by segment (`*` = any one segment) as a prefix, or whole if `exact`."""

    pattern: str
    backend: str
    scopes: ScopeRule
    methods: frozenset[str] | None = None
    exact: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in self.pattern.split("/") if p)

    def matches(self, method: str, segments: Sequence[str]) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        parts = self.parts
        if len(segments) < len(parts) or (self.exact and len(segments) != len(parts)):
            return False
        return all(p == "*" or p == s for p, s in zip(parts, segments, strict=False))


ROUTES: tuple[Route, ...] = (
    # HubSpot's merge endpoint lives among the objects but merge-svc decides merges.
    Route("/crm/v3/objects/*/merge", "merges", objects(3), methods=frozenset({"POST"}), exact=True),
    Route("/crm/v3/imports", "imports", fixed("crm.import")),
    Route("/corral/v1/imports", "imports", fixed("crm.import")),
    Route("/corral/v1/capture", "imports", fixed("crm.import")),
    Route("/corral/v1/merges", "merges", fixed("corral.merges")),
    Route("/corral/v1/duplicates", "merges", fixed("corral.merges")),
    Route("/corral/v1/salesforce", "sync", fixed("corral.sync.read", "corral.sync.write")),
    Route("/corral/v1/sync", "sync", fixed("corral.sync.read", "corral.sync.write")),
    Route("/crm/v3/objects", "records", objects(3)),
    Route("/crm/v3/properties", "records", schemas(3)),
    Route("/crm-object-schemas", "records", fixed("crm.schemas.custom.read", "crm.schemas.custom.write")),
    # /crm/v4/objects/{from}/{id}/associations/{to}[/...]
    Route("/crm/v4/objects", "records", objects(3, 6)),
    # /crm/v4/associations/{from}/{to}/(batch/...|labels)
    Route("/crm/v4/associations", "records", objects(3, 4)),
    Route("/crm/v4", "records", objects()),
    Route("/crm/associations/v4", "records", objects(3, 4)),
    Route("/crm/v3/associations", "records", objects(3, 4)),
    Route("/crm/v3/pipelines", "records", objects(3)),
    Route("/crm/v3/owners", "records", fixed("crm.objects.owners.read")),
    Route("/corral/v1/records", "records", objects(3)),
)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# Calls that only read although they are POSTs (HubSpot counts them as reads for scopes).
READ_ONLY_POST_SUFFIXES: tuple[tuple[str, ...], ...] = (("search",), ("batch", "read"))


@dataclass(frozen=True)
class Resolution:
    backend: str
    required_scopes: list[str]
    # The routing table's pattern: what metrics and traces name the route by (never the raw path).
    pattern: str
    # Reads (GET, search, batch read) and idempotent writes (PUT, DELETE) may be sent again.
    repeatable: bool = False


def split_path(path: str) -> list[str] | None:
    """Segments of a decoded path; None for paths no backend may see (dot segments, `/internal`)."""
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # `/crm/v3/imports/` is the SDK's spelling of `/crm/v3/imports`
    if any(s in (".", "..") for s in segments):
        # httpx would resolve them when building the upstream URL, reaching paths we never route.
        return None
    if segments and segments[0] == "internal":
        return None
    return segments


def is_write(method: str, segments: Sequence[str]) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    if method == "POST":
        return not any(tuple(segments[-len(s):]) == s for s in READ_ONLY_POST_SUFFIXES)
    return True


def resolve(method: str, path: str, routes: Sequence[Route] = ROUTES) -> Resolution | None:
    segments = split_path(path)
    if segments is None:
        return None
    method = method.upper()
    for route in routes:
        if route.matches(method, segments):
            write = is_write(method, segments)
            scopes = route.scopes(segments, write)
            return Resolution(route.backend, list(dict.fromkeys(scopes)), route.pattern,
                              repeatable=not write or method in IDEMPOTENT_METHODS)
    return None
