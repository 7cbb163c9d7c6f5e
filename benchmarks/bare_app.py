"""The no-model baseline: one FastAPI endpoint on the same stack, parsing the same body.

Served exactly like driftloop (uvicorn, uvloop, httptools, one process, no access log), it
measures what FastAPI itself costs, so ``driftloop / bare`` is the share of the stack's
ceiling that driftloop keeps while doing its work.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()


@app.post("/predict")
async def predict(body: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}
