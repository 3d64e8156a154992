"""The ceiling: a bare FastAPI app that only reads the body and answers 202.

Run as `python -m uvicorn bench.bare_app:app` with the same uvicorn settings as koppelpunt.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/v1/aanmeldstatussen")
async def receive(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body)}, status_code=202)


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ok"}
