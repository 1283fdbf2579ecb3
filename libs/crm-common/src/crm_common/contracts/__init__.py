"""The internal contract between services: one module per service's internal API.

Each module holds the typed request and answer models of one service's internal routes and the one
async client other services call it with (`records.RecordsClient`, `sync.SyncClient`). The owning
service's routes declare the same models, so the OpenAPI document, the server and every caller read
one schema. What all clients share (retries, the one error type, quoted path segments) is in `base`.

To add a service's contract: a module `crm_common.contracts.<service>` with its models and a
`<Service>Client(InternalClient)` whose methods call `self.call(...)`; to add a route to an existing
contract: its models next to the others and one method on the client.
"""

from crm_common.contracts.base import InternalClient, ServiceCallError, segment

__all__ = ["InternalClient", "ServiceCallError", "segment"]
