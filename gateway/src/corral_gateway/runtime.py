"""Resources built in the lifespan and reached by handlers through `request.app.state.runtime`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from corral_gateway.openapi import OpenAPIMerger
from corral_gateway.ratelimit import LocalRateLimiter, SharedRateLimiter
from corral_gateway.settings import GatewaySettings
from corral_gateway.tokens import TokenCache


@dataclass
class GatewayRuntime:
    settings: GatewaySettings
    engine: AsyncEngine
    client: httpx.AsyncClient
    tokens: TokenCache
    limiter: SharedRateLimiter | LocalRateLimiter
    openapi: OpenAPIMerger
    # Parsed once: building an httpx.URL per request was a measurable share of the gateway's CPU.
    backend_urls: dict[str, httpx.URL]
