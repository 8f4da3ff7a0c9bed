"""RFC 9457 problem details: every error the API returns is ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_TYPE = "https://enhanced-csp.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answered as problem+json: ``status``, a short ``title``, a ``detail`` naming what is wrong."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }


def problem_response(problem: Problem, instance: str) -> JSONResponse:
    return JSONResponse(problem.body(instance), status_code=problem.status, headers=problem.headers,
                        media_type=MEDIA_TYPE)  # fmt: skip


_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


def title_for(status: int) -> str:
    return _TITLES.get(status, "Error")


def install(app: FastAPI) -> None:
    """Answer every error as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
        p = Problem(422, "Invalid Request", f"the request is not valid: {where}", kind="validation",
                    extra={"errors": errors})  # fmt: skip
        return problem_response(p, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        p = Problem(exc.status_code, title_for(exc.status_code), detail, headers=exc.headers or None)
        return problem_response(p, request.url.path)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        p = Problem(500, "Internal Server Error", f"{type(exc).__name__}: {exc}", kind="internal")
        return problem_response(p, request.url.path)
