"""The served OpenAPI document says what the service does (statuses, schemas, security)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from koppelpunt.api import parameters

METHODS = {"get", "post", "put", "patch", "delete"}


async def _operations(
    client: httpx.AsyncClient,
) -> tuple[dict[str, Any], list[tuple[str, str, Any]]]:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    ops = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    return document, ops


class TestOpenApiDocument:
    async def test_parameter_errors_are_documented_as_400_problems(
        self, client: httpx.AsyncClient
    ) -> None:
        """The service answers invalid input with 400 problem+json, never FastAPI's 422."""
        document, ops = await _operations(client)
        assert "HTTPValidationError" not in document["components"]["schemas"]
        for path, method, op in ops:
            # FastAPI's own 422 (its error schema) is gone; a 422 of the service's is a problem.
            if "422" in op["responses"]:
                assert "HTTPValidationError" not in str(op["responses"]["422"]), (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "400" in op["responses"], (method, path)

    async def test_parameters_carry_the_patterns_the_service_checks(
        self, client: httpx.AsyncClient
    ) -> None:
        """gemeentecode, moments, ids and the BSN are declared with the patterns FastAPI
        enforces, so a schema-valid value is one the service takes (api/parameters.py)."""
        _, ops = await _operations(client)
        declared = {
            (path, p["name"]): json.dumps(p["schema"])
            for path, _, op in ops
            for p in op.get("parameters", [])
        }
        for key, pattern in {
            ("/v1/beheer/lag", "gemeente"): parameters.GEMEENTECODE,
            ("/v1/beheer/outbox/failing", "gemeente"): parameters.GEMEENTECODE,
            ("/v1/beheer/afwijzingen", "since"): parameters.MOMENT,
            ("/v1/beheer/afwijzingen/{afwijzingId}", "afwijzingId"): parameters.AFWIJZING_ID,
            ("/v1/beheer/replays/{replayId}", "replayId"): parameters.UUID,
            ("/v1/berichten/{berichtId}", "berichtId"): parameters.TOKEN64,
        }.items():
            assert json.dumps(pattern) in declared[key], key
        bodies = {p: json.dumps(op["requestBody"]) for p, _, op in ops if op.get("requestBody")}
        assert json.dumps(parameters.BSN) in bodies["/v1/beheer/inzage"]
        assert json.dumps(parameters.GEMEENTECODE) in bodies["/v1/beheer/replays"]
        assert json.dumps(parameters.MOMENT) in bodies["/v1/beheer/replays"]

    async def test_every_problem_has_the_problem_schema(self, client: httpx.AsyncClient) -> None:
        document, ops = await _operations(client)
        assert set(document["components"]["schemas"]["Problem"]["required"]) == {
            "type",
            "title",
            "status",
        }
        for path, method, op in ops:
            for status, response in op["responses"].items():
                content = response.get("content", {})
                if "application/problem+json" in content:
                    schema = content["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, (
                        method,
                        path,
                        status,
                    )

    async def test_bearer_key_is_a_security_scheme_of_every_v1_operation(
        self, client: httpx.AsyncClient
    ) -> None:
        document, ops = await _operations(client)
        scheme = document["components"]["securitySchemes"]["sleutel"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        for path, method, op in ops:
            if path.startswith("/v1/"):
                assert op["security"] == [{"sleutel": []}], (method, path)

    async def test_readyz_documents_its_503(self, client: httpx.AsyncClient) -> None:
        document, _ = await _operations(client)
        assert "503" in document["paths"]["/readyz"]["get"]["responses"]


class TestMethodNotAllowed:
    async def test_allow_names_every_method_of_the_path(self, client: httpx.AsyncClient) -> None:
        """/v1/beheer/replays has a GET and a POST route: a DELETE or OPTIONS gets 405 with
        both in Allow (Starlette named only the first route's POST)."""
        for method in ("DELETE", "OPTIONS", "PUT"):
            r = await client.request(method, "/v1/beheer/replays")
            assert r.status_code == 405, method
            assert r.headers["Allow"] == "GET, HEAD, POST", method
            assert r.headers["content-type"].startswith("application/problem+json")
