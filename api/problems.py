"""Errors as RFC 9457 problem details, mapped once from the engine's error tree.

`install_problem_handlers(api)` registers the handlers on a NinjaAPI; every operation spreads
`ERRORS` into its `response=` so each status it can answer is in the OpenAPI document (a client, or
Schemathesis, treats an undeclared status as a bug). `ProblemAPI` is a NinjaAPI whose document
says those error responses are `application/problem+json`, which is what they are."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Schema
from ninja.errors import (
    AuthenticationError,
    AuthorizationError,
    HttpError,
    Throttled,
    ValidationError,
    ValidationErrorContext,
)

from api.http_rules import JsonParser, UnsupportedMediaType, name_every_status, with_problem_405
from core.outage import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, OutageLog, is_outage
from memory.types import (
    BelongsToAnotherUser,
    EngineError,
    InvalidInput,
    LeaseLost,
    MemoryGone,
    MemoryLocked,
    MemoryNotFound,
    VersionConflict,
)

logger = logging.getLogger(__name__)
_outage_log = OutageLog(logger, "the API")

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Base of the api's own refusals: a status and a message fit to show."""

    status = 400
    title = ""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class Forbidden(ProblemError):
    """The key is valid but may not do this (a staff-only call, a namespace not given to the app)."""

    status = 403


class PreconditionFailed(ProblemError):
    """If-Match named a version that is no longer the memory's."""

    status = 412


class RateLimited(ProblemError):
    status = 429

    def __init__(self, detail: str = "", *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = max(1, int(retry_after))


class FieldError(Schema):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Schema):
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] | None = None


# What every operation may answer besides its success. 412 is only for the calls that take If-Match:
# spread PRECONDITION_ERRORS there too. 415 (a body not sent as JSON) is added by ProblemAPI to every
# operation that takes a body.
ERRORS: dict[int, type[Problem]] = {
    status: Problem for status in (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
}
PRECONDITION_ERRORS: dict[int, type[Problem]] = {412: Problem}


def problem_response(
    request: HttpRequest,
    api: NinjaAPI,
    *,
    status: int,
    detail: str = "",
    title: str = "",
    errors: list[dict[str, Any]] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase.lower(),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    response = api.create_response(request, body, status=status)
    response["Content-Type"] = PROBLEM_CONTENT_TYPE
    # Django names the status from http.client's table; set it from HTTPStatus so every status we
    # answer has its phrase whatever the server (daphne's own table: api.http_rules.name_every_status).
    response.reason_phrase = HTTPStatus(status).phrase
    return response


def _field_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # pydantic's own error dicts carry `input` and `ctx` (the caller's value, exception objects):
    # keep what says where and why, all of it JSON.
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]


def install_problem_handlers(api: NinjaAPI) -> None:
    # The handlers take `exc: Any`: ninja types a handler's argument as "the exception or its class".
    def handle(
        exc_class: type[Exception], status: int, *, title: str = "", detail: str | None = None
    ) -> None:
        def handler(request: HttpRequest, exc: Any) -> HttpResponse:
            return problem_response(request, api, status=status, title=title, detail=detail or str(exc))

        api.add_exception_handler(exc_class, handler)

    handle(InvalidInput, 422)
    handle(MemoryNotFound, 404)
    handle(MemoryGone, 409, title="gone")
    handle(Http404, 404, detail="not found")
    handle(MemoryLocked, 409, title="locked")
    handle(VersionConflict, 409, title="version conflict")
    handle(LeaseLost, 409, title="conflict")
    handle(BelongsToAnotherUser, 409, title="conflict")
    handle(EngineError, 422)

    def unauthorized(request: HttpRequest, exc: Any) -> HttpResponse:
        response = problem_response(request, api, status=401, detail="a valid API key is required")
        # Bearer only: naming Basic here would make browsers open a password dialog.
        response["WWW-Authenticate"] = 'Bearer realm="engram"'
        return response

    api.add_exception_handler(AuthenticationError, unauthorized)
    handle(AuthorizationError, 403)
    handle(RequestDataTooBig, 413, detail="the request body is too large")
    handle(SuspiciousOperation, 400, detail="the request was refused")

    def validation(request: HttpRequest, exc: Any) -> HttpResponse:  # ValidationError
        return problem_response(
            request, api, status=422, detail="the request is not valid", errors=_field_errors(exc.errors)
        )

    def http_error(request: HttpRequest, exc: Any) -> HttpResponse:  # HttpError
        if isinstance(exc.__cause__, UnsupportedMediaType):  # ninja wraps its parser's errors in a 400
            return problem_response(request, api, status=415, detail=str(exc.__cause__))
        status = exc.status_code if 400 <= exc.status_code < 600 else 400
        # ninja's body parser says "Cannot parse request body (<the decoder's words>)" in DEBUG.
        detail = "the request body is not valid JSON" if status == 400 else str(exc)
        response = problem_response(request, api, status=status, detail=detail)
        if isinstance(exc, Throttled) and exc.wait:
            response["Retry-After"] = str(int(exc.wait))
        return response

    def ours(request: HttpRequest, exc: Any) -> HttpResponse:  # ProblemError
        response = problem_response(request, api, status=exc.status, title=exc.title, detail=exc.detail)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response

    def unexpected(request: HttpRequest, exc: Any) -> HttpResponse:
        if is_outage(exc):
            _outage_log.failed(exc)
            response = problem_response(request, api, status=503, detail=UNAVAILABLE_MESSAGE)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        logger.exception("API error on %s %s", request.method, request.path)
        return problem_response(request, api, status=500, detail="something went wrong on our side")

    api.add_exception_handler(ValidationError, validation)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ProblemError, ours)
    api.add_exception_handler(Exception, unexpected)


@csrf_exempt  # no session is ever used here; a POST to a wrong path is a 404, not a CSRF page
def unknown_path(request: HttpRequest, path: str = "") -> HttpResponse:
    """Any other path under the API: a 404 problem like every other error, not Django's HTML page."""
    body = {"type": "about:blank", "title": "not found", "status": 404, "detail": "no such API path"}
    return JsonResponse(body, status=404, content_type=PROBLEM_CONTENT_TYPE)


class ProblemAPI(NinjaAPI):
    """A NinjaAPI whose OpenAPI document declares error responses as application/problem+json, and
    which keeps the HTTP rules of api.http_rules: a JSON body must be sent as JSON (415), a
    single-valued query parameter may come once (422), a wrong method is a 405 problem with Allow."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("parser") is None:
            kwargs["parser"] = JsonParser()
        if not isinstance(kwargs["parser"], JsonParser):
            raise TypeError("a ProblemAPI's parser must derive from api.http_rules.JsonParser")
        super().__init__(*args, **kwargs)
        name_every_status()

    def _get_urls(self) -> Any:
        def not_allowed(request: HttpRequest, allow: str) -> HttpResponse:
            detail = f"{request.method} is not allowed here; allowed: {allow}"
            response = problem_response(request, self, status=405, detail=detail)
            response["Allow"] = allow
            return response

        return with_problem_405(super()._get_urls(), not_allowed)

    def validation_error_from_error_contexts(
        self, error_contexts: list[ValidationErrorContext]
    ) -> ValidationError:
        # ninja reads a single body schema as the view's argument, so its errors say
        # ["body", "<argument name>", "mode"]: the caller sent no such key, name the field once.
        error = super().validation_error_from_error_contexts(error_contexts)
        single = {
            context.model.__read_from_single_attr__
            for context in error_contexts
            if context.model.__ninja_param_source__ == "body"
            and getattr(context.model, "__read_from_single_attr__", None)
        }
        for item in error.errors:
            loc = tuple(item.get("loc", ()))
            if len(loc) >= 2 and loc[0] == "body" and loc[1] in single:
                item["loc"] = (loc[0], *loc[2:])
        return error

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(*args, **kwargs)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict):
                    continue
                if "requestBody" in operation:
                    operation.setdefault("responses", {}).setdefault(
                        415,
                        {
                            "description": "Unsupported Media Type",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                            },
                        },
                    )
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content")
                    if str(status)[:1] in "45" and content and "application/json" in content:
                        content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
        return schema
