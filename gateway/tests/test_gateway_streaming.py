"""A large upload streams through the gateway: the gateway process never holds the body."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import AsyncIterator
from typing import Self

import psutil

BODY_BYTES = 200 * 1024 * 1024
CHUNK = 1024 * 1024


async def generated_body(crc_out: list[int]) -> AsyncIterator[bytes]:
    crc = 0
    for i in range(BODY_BYTES // CHUNK):
        chunk = i.to_bytes(4, "big") * (CHUNK // 4)  # distinct chunks, so a reordered byte shows in the crc
        crc = zlib.crc32(chunk, crc)
        yield chunk
    crc_out.append(crc)


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_200_mb_upload_is_streamed_not_buffered(gateway, client, make_token) -> None:
    token = await make_token()
    url = f"{gateway.url}/crm/v3/imports"
    # Warm up, so the baseline includes the first-request imports and pools.
    assert (await client.post(url, headers=token.headers, content=b"warm-up")).json()["bytes"] == 7
    baseline = psutil.Process(gateway.process.pid).memory_info().rss

    crc: list[int] = []
    with RssSampler(gateway.process.pid) as sampler:
        response = await client.post(
            url, content=generated_body(crc),
            headers={**token.headers, "Content-Type": "text/csv", "Content-Length": str(BODY_BYTES)},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"service": "imports", "bytes": BODY_BYTES, "crc": crc[0]}
    grown = sampler.peak - baseline
    assert grown < 48 * 1024 * 1024, f"gateway RSS grew by {grown / 2**20:.0f} MiB during a 200 MiB upload"
    assert sampler.peak < BODY_BYTES / 2


async def test_chunked_upload_without_length_is_streamed(gateway, client, make_token) -> None:
    token = await make_token()
    crc: list[int] = []

    async def first_20_mb() -> AsyncIterator[bytes]:
        count = 0
        async for chunk in generated_body(crc):
            yield chunk
            count += len(chunk)
            if count >= 20 * CHUNK:
                return

    response = await client.post(f"{gateway.url}/crm/v3/imports", content=first_20_mb(), headers=token.headers)
    assert response.status_code == 200
    assert response.json()["bytes"] == 20 * CHUNK
