"""One account's failed request never fails another's: a 500 keeps its connection, and a read or an idempotent
write that finds its pooled connection closed by the service is sent again on a fresh one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from .conftest import GatewayProcess, free_port, start_gateway, stop_gateway
from .test_gateway_auth import assert_hubspot_error


async def test_a_500_for_one_account_never_fails_the_next_accounts_requests(gateway, client, make_token) -> None:
    """The sequence that failed 19 times in 20: a 500, then another account's GET and POST at once after it."""
    attacker, neighbour = await make_token(), await make_token()
    for _ in range(20):
        failed = await client.get(f"{gateway.url}/crm/v3/objects/contacts/1?raise=1", headers=attacker.headers)
        assert_hubspot_error(failed, 500, "INTERNAL_ERROR")
        read = await client.get(f"{gateway.url}/crm/v3/objects/contacts/2", headers=neighbour.headers)
        assert read.status_code == 200, read.text
        failed = await client.post(f"{gateway.url}/crm/v3/objects/contacts?raise=1", headers=attacker.headers,
                                   json={"properties": {}})
        assert_hubspot_error(failed, 500, "INTERNAL_ERROR")
        # A write is never sent twice by the gateway, so this one needs the service to keep the connection.
        written = await client.post(f"{gateway.url}/crm/v3/objects/contacts", headers=neighbour.headers,
                                    json={"properties": {"email": "n@example.com"}})
        assert written.status_code == 200, written.text
        assert written.json()["auth"]["account_id"] == neighbour.record.account_id


class DroppingBackend:
    """A service whose every kept-alive connection dies: it answers the first request of a connection, then
    closes the connection when the next request arrives on it, without answering (an idle timeout racing the
    request, or a restart)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.answered: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self.started.set()
        self.loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for served in range(2):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines
                               if line.lower().startswith("content-length:")), 0)
                await reader.readexactly(length)
                if served == 1:
                    break  # the stale connection: closed with the request unanswered
                self.answered.append(lines[0])
                body = b'{"ok": true}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> None:
        self.thread.start()
        self.started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def dropping() -> Iterator[DroppingBackend]:
    backend = DroppingBackend()
    backend.start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def gateway_to_dropping(tmp_path_factory, gateway_db_url, upstreams, dropping) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    backends = {name: server.url for name, server in upstreams.items()}
    backends["sync"] = dropping.url
    gw = start_gateway(tmp_path_factory.mktemp("dropping"), "dropping", gateway_db_url, backends)
    yield gw
    stop_gateway(gw)


async def test_reads_and_idempotent_writes_go_again_on_a_fresh_connection(gateway_to_dropping, dropping, client,
                                                                           make_token) -> None:
    token = await make_token()
    url = f"{gateway_to_dropping.url}/corral/v1/sync/connections"
    calls = [("GET", url, None), ("GET", f"{url}/1", None), ("PUT", f"{url}/1", b'{"name": "x"}'),
             ("DELETE", f"{url}/1", None), ("POST", f"{url}/search", b'{"query": "x"}')]
    for _ in range(5):
        for method, target, body in calls:
            response = await client.request(method, target, headers=token.headers, content=body)
            assert response.status_code == 200, (method, target, response.text)
    assert dropping.connections > len(calls), "the backend did drop reused connections"


async def test_a_write_is_never_sent_twice(gateway_to_dropping, dropping, client, make_token) -> None:
    token = await make_token()
    url = f"{gateway_to_dropping.url}/corral/v1/sync/connections"
    assert (await client.get(url, headers=token.headers)).status_code == 200  # leaves a connection in the pool
    before = len(dropping.answered)
    response = await client.post(url, headers=token.headers, content=b'{"name": "x"}')
    # Either a fresh connection answered, or the dropped one failed it: never two deliveries.
    if response.status_code != 200:
        assert_hubspot_error(response, 502, "BAD_GATEWAY")
    assert len(dropping.answered) - before <= 1
