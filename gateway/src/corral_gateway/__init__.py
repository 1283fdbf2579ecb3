"""Corral's public entry: auth, routing, rate limits, merged OpenAPI, request ids."""
