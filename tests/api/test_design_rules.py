"""The NL API Design Rules (Logius ADR 2.x), one test per normative rule that applies.

The rules' own Spectral ruleset is not published on a package registry this project can
install from, so each rule is checked here against the served OpenAPI document and live
responses. Rules that do not apply: /core/doc-language (the audience is Dutch and English
both; see docs/beheer.md), /core/transport-security (TLS is the deployment's, see docs/beheer.md).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import auth

SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
# Outside /v1 on purpose: platform probes and documents, not versioned API resources.
UNVERSIONED = {"/livez", "/readyz", "/metrics", "/asyncapi.yaml"}
METHODS = {"get", "post", "put", "patch", "delete"}


async def _openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


class TestDesignRules:
    async def test_version_header_on_every_response(self, client: httpx.AsyncClient) -> None:
        """/core/version-header: API-Version with the full version, on success and error."""
        document = await _openapi(client)
        version = document["info"]["version"]
        for response in (
            await client.get("/livez"),
            await client.get("/v1/beheer/replays"),  # 401
            await client.get("/v1/beheer/replays", headers=auth("beheer")),  # 200
            await client.get("/v1/nergens"),  # 404
        ):
            assert response.headers.get("API-Version") == version, response.request.url

    async def test_semantic_version_and_contact(self, client: httpx.AsyncClient) -> None:
        """/core/semver and /core/doc-openapi-contact."""
        info = (await _openapi(client))["info"]
        assert SEMVER.match(info["version"])
        assert info["contact"]["name"]

    async def test_openapi_at_the_root_of_the_major_version(
        self, client: httpx.AsyncClient
    ) -> None:
        """/core/publish-openapi: /v1/openapi.json, readable from any origin."""
        document = await _openapi(client)
        response = await client.get("/v1/openapi.json")
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.json() == document
        assert document["openapi"].startswith("3.")

    async def test_major_version_in_the_uri(self, client: httpx.AsyncClient) -> None:
        """/core/uri-version: every API path starts with /v1 (probes and documents aside)."""
        paths = set((await _openapi(client))["paths"])
        assert {p for p in paths if not p.startswith("/v1/")} <= UNVERSIONED

    async def test_no_trailing_slash(self, client: httpx.AsyncClient) -> None:
        """/core/no-trailing-slash: no path ends with '/', and '/v1/x/' is not '/v1/x'."""
        paths = (await _openapi(client))["paths"]
        assert [p for p in paths if p.endswith("/")] == []
        response = await client.get("/v1/beheer/replays/", headers=auth("beheer"))
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_kebab_case_segments_and_standard_methods(
        self, client: httpx.AsyncClient
    ) -> None:
        """/core/naming-resources (kebab-case path segments) and /core/http-methods."""
        paths = (await _openapi(client))["paths"]
        for path, operations in paths.items():
            for segment in path.strip("/").split("/"):
                if segment.startswith("{") or segment in {"asyncapi.yaml"}:
                    continue
                assert KEBAB.match(segment), f"{path}: segment {segment!r}"
            assert set(operations) - {"parameters"} <= METHODS, path

    async def test_errors_are_problem_details(self, client: httpx.AsyncClient) -> None:
        """/core/error-handling: errors are application/problem+json (RFC 9457)."""
        for response in (
            await client.post("/v1/prognoses", content=b"<x/>"),  # 401
            await client.get("/v1/nergens"),  # 404
        ):
            assert response.headers["content-type"].startswith("application/problem+json")
            body = response.json()
            assert body["status"] == response.status_code and body["title"]
