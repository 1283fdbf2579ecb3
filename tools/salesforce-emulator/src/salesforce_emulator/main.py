"""`salesforce-emulator`: one process, one org, two listeners (https for unmodified clients, http for ours)."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from salesforce_emulator.app import create_app
from salesforce_emulator.settings import EmulatorSettings
from salesforce_emulator.tls import write_self_signed_certificate


def build_servers(settings: EmulatorSettings) -> list[uvicorn.Server]:
    """An https and an http server sharing one app, hence one org: a record written over one is read over
    the other."""
    app = create_app(settings)
    certificate, key = write_self_signed_certificate(settings.cert_dir, extra_hosts=(settings.host,))
    print(f"salesforce-emulator: certificate {certificate.resolve()}", flush=True)
    print(f"salesforce-emulator: https://{settings.host}:{settings.https_port} and "
          f"http://{settings.host}:{settings.http_port} (client id {settings.client_id}, "
          f"admin API {'on' if settings.enable_admin else 'off'})", flush=True)
    common = {"host": settings.host, "log_level": settings.log_level, "lifespan": "off", "access_log": False,
              # The app stamps `Date` from the org's clock, which tests may move.
              "date_header": False}
    return [
        uvicorn.Server(uvicorn.Config(app, port=settings.https_port, ssl_certfile=str(certificate),
                                      ssl_keyfile=str(key), **common)),
        uvicorn.Server(uvicorn.Config(app, port=settings.http_port, **common)),
    ]


async def serve(servers: list[uvicorn.Server]) -> None:
    await asyncio.gather(*(server.serve() for server in servers))


def run() -> None:
    try:
        asyncio.run(serve(build_servers(EmulatorSettings())))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    run()
