"""The vendors' contract over HTTP: `GET /asyncapi.yaml` (public, no key needed).

Public on purpose: it holds no secrets and no personal data, and vendors read it before they
have credentials (they never get HTTP keys; those are for the koppelpunten VO and MBO). It is
generated from the code and the XSD with this instance's topic prefix, so it always describes
what this instance publishes.
"""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Request, Response

from koppelpunt.api.deps import runtime_of
from koppelpunt.contract.asyncapi import generate

router = APIRouter(tags=["leveranciers"])

YAML_MEDIA_TYPE = "application/yaml"  # RFC 9512


@functools.lru_cache(maxsize=4)
def _document(topic_prefix: str, schemas_dir: Path) -> str:
    return generate(topic_prefix, schemas_dir)


@router.get(
    "/asyncapi.yaml",
    summary="AsyncAPI 3 contract of the signaleringen on Kafka",
    response_class=Response,
    responses={200: {"content": {YAML_MEDIA_TYPE: {}}}},
)
async def asyncapi_yaml(request: Request) -> Response:
    settings = runtime_of(request).settings
    return Response(
        _document(settings.topic_prefix, settings.schemas_dir),
        media_type=YAML_MEDIA_TYPE,
        headers={"Cache-Control": "public, max-age=300"},
    )
