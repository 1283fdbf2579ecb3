"""The console script's wiring: settings from the environment, the certificate, and both listeners."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from salesforce_emulator.main import build_servers, serve
from salesforce_emulator.settings import EmulatorSettings
from salesforce_emulator.tls import write_self_signed_certificate

from .conftest import free_port


def test_settings_come_from_sf_emulator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SF_EMULATOR_HTTPS_PORT", "9443")
    monkeypatch.setenv("SF_EMULATOR_ENABLE_ADMIN", "true")
    monkeypatch.setenv("SF_EMULATOR_PAGE_SIZE", "7")
    settings = EmulatorSettings()
    assert (settings.https_port, settings.enable_admin, settings.page_size) == (9443, True, 7)
    assert (settings.http_port, settings.client_id, settings.client_secret) == (8090, "corral-emulator",
                                                                                 "corral-emulator-secret")
    assert settings.cert_dir == Path(".run")


def test_certificate_names_loopback_and_localhost(tmp_path: Path) -> None:
    certificate_path, key_path = write_self_signed_certificate(tmp_path)
    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert key_path.stat().st_mode & 0o077 == 0


async def test_one_process_serves_https_and_http_from_one_org(tmp_path: Path) -> None:
    settings = EmulatorSettings(http_port=free_port(), https_port=free_port(), cert_dir=tmp_path / ".run")
    servers = build_servers(settings)
    running = asyncio.create_task(serve(servers))
    try:
        for _ in range(200):
            if all(server.started for server in servers):
                break
            await asyncio.sleep(0.02)
        certificate = tmp_path / ".run" / "salesforce-emulator.crt"
        trust = ssl.create_default_context(cafile=str(certificate))
        async with httpx.AsyncClient(verify=trust, trust_env=False) as client:
            secure = await client.post(f"https://127.0.0.1:{settings.https_port}/services/oauth2/token", data={
                "grant_type": "client_credentials", "client_id": "corral-emulator",
                "client_secret": "corral-emulator-secret"})
            assert secure.json()["instance_url"] == f"https://127.0.0.1:{settings.https_port}"
            token = secure.json()["access_token"]
            plain = await client.get(f"http://127.0.0.1:{settings.http_port}/services/data/v60.0/limits",
                                     headers={"Authorization": f"Bearer {token}"})
            assert plain.status_code == 200  # the session issued over https is valid over http: one org
            assert (await client.get(f"https://localhost:{settings.https_port}/livez")).status_code == 200
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.wait_for(running, 10)
