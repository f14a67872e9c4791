"""HTTP rules both APIs (/api/v1 and the compat /v1) share, which ninja leaves loose: a JSON body
must say it is JSON, a single-valued query parameter may be given once, a wrong method is a 405
problem, and every status has a reason phrase on the wire."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.urls import URLPattern, URLResolver
from django.utils.datastructures import MultiValueDict
from ninja.errors import ValidationError
from ninja.parser import Parser

JSON_MEDIA_TYPE = "application/json"
UTF8_CHARSETS = frozenset({"utf-8", "utf8"})


class UnsupportedMediaType(Exception):
    """The body is not declared as JSON: reading it anyway would answer a request the caller did not
    mean to send as it was read (a form or plain text parsed as JSON)."""


def is_json_media_type(request: HttpRequest) -> bool:
    media_type = (request.content_type or "").strip().lower()
    charset = (request.content_params or {}).get("charset", "utf-8").strip().lower()
    if charset not in UTF8_CHARSETS:
        return False
    if media_type == JSON_MEDIA_TYPE:
        return True
    main, _, sub = media_type.partition("/")
    return main == "application" and sub.endswith("+json")


class JsonParser(Parser):
    """ninja's parser with the two checks: the body's Content-Type, and no repeated single value."""

    def parse_body(self, request: HttpRequest) -> Any:
        # ninja only asks for the body of an operation that declares one, so GETs are untouched.
        if not is_json_media_type(request):
            raise UnsupportedMediaType(f"send the body as {JSON_MEDIA_TYPE}")
        return super().parse_body(request)

    def parse_querydict(self, data: MultiValueDict, list_fields: list[str], request: HttpRequest) -> Any:
        # QueryDict's [] takes the last of repeated values: `?user_id=alice&user_id=bob` would read
        # bob's data while the caller (or a proxy that appended a value) may have meant alice.
        source = "query" if data is request.GET else "form"
        repeated = [key for key in data if key not in list_fields and len(data.getlist(key)) > 1]
        if repeated:
            raise ValidationError(
                [
                    {
                        "loc": (source, key),
                        "msg": "give this parameter only once",
                        "type": "repeated_parameter",
                    }
                    for key in repeated
                ]
            )
        return super().parse_querydict(data, list_fields, request)


NotAllowedResponder = Callable[[HttpRequest, str], HttpResponseBase]


def with_problem_405(
    patterns: list[URLPattern | URLResolver], respond: NotAllowedResponder
) -> list[URLPattern | URLResolver]:
    """ninja's path views answer a method the path lacks with a text/html 405 of their own, before any
    exception handler runs: turn that one response into `respond(request, allow)`."""
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _answering_405_with(pattern.callback, respond)
    return patterns


def _answering_405_with(view: Callable[..., Any], respond: NotAllowedResponder) -> Callable[..., Any]:
    if getattr(view, "_problem_405", False):
        return view

    def converted(response: Any, request: HttpRequest) -> Any:
        if isinstance(response, HttpResponseNotAllowed):
            return respond(request, response["Allow"])
        return response

    if inspect.iscoroutinefunction(view):

        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return converted(await view(request, *args, **kwargs), request)

        wrapped: Callable[..., Any] = async_view
    else:

        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            return converted(view(request, *args, **kwargs), request)

        wrapped = sync_view
    wrapped.csrf_exempt = getattr(view, "csrf_exempt", False)  # type: ignore[attr-defined]
    wrapped._problem_405 = True  # type: ignore[attr-defined]
    wrapped.__name__ = getattr(view, "__name__", "view")
    return wrapped


def name_every_status() -> None:
    """Daphne writes the status line through Twisted, whose table lacks newer codes (422, 429):
    without this a 429 goes out as "429 Unknown Status". The ASGI message carries no reason phrase,
    so Django's `reason_phrase` cannot reach the wire; fill Twisted's table from the standard one.
    Only when Twisted is loaded (daphne imports it before the app), so other processes skip it."""
    twisted_http = sys.modules.get("twisted.web.http")
    if twisted_http is None:
        return
    table = twisted_http.RESPONSES
    for status in HTTPStatus:
        table.setdefault(status.value, status.phrase.encode("ascii"))
