"""JSON responses rendered with orjson.

FastAPI deprecated its ORJSONResponse in favour of serialising through response models; our routes
build plain dicts on hot paths (validating them through the models again would cost more than the
HTTP work), so the response class stays, defined here once.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
