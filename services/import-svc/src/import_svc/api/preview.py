"""Mapping help: suggested column mappings and validation of the first rows (or the whole file)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/corral/v1/imports", tags=["Imports (Corral)"])
