"""A Redis outage answers a page with a plain 503, not a 500 and a traceback."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin

from core.outage import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE, OutageLog, is_outage

logger = logging.getLogger(__name__)
_log = OutageLog(logger, "web pages")


def unavailable_response(request: HttpRequest) -> HttpResponse:
    response: HttpResponse
    if request.path.endswith(".json") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"error": "unavailable", "message": UNAVAILABLE_MESSAGE}, status=503)
    else:
        # Standalone (no base template): rendering it must not need anything that may be down.
        html = render_to_string("core/unavailable.html", {"message": UNAVAILABLE_MESSAGE})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class RedisOutageMiddleware(MiddlewareMixin):
    """Turns redis.ConnectionError / TimeoutError / BusyLoadingError raised by a view into a 503."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code < 500:
            _log.ok()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_outage(exception):
            return None
        _log.failed(exception)
        return unavailable_response(request)
