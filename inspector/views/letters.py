"""Dead letters of the extraction queue: retry or discard (answers with the overview's queue panel)."""

from __future__ import annotations

import logging
import re

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from inspector.forms import UserLookupForm
from inspector.permissions import change_required, is_htmx, staff_actor
from inspector.views.overview import queue_context, render_overview
from memory.extraction import dead_letters
from memory.types import MemoryNotFound

_LETTER_ID = re.compile(r"\d{1,20}-\d{1,20}")

logger = logging.getLogger(__name__)


def _letter_answer(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    if is_htmx(request):
        return render(request, "inspector/_queue.html", queue_context(request))
    if status >= 400:
        return render_overview(request, lookup_form=UserLookupForm(), status=status)
    return redirect(reverse("inspector:inspector") + "#queue")


def _letter_id(letter_id: str) -> str:
    if not _LETTER_ID.fullmatch(letter_id):
        raise Http404("no such dead letter")
    return letter_id


@change_required
@require_POST
def retry_dead_letter(request: HttpRequest, letter_id: str) -> HttpResponse:
    letter_id = _letter_id(letter_id)
    try:
        turns = dead_letters.retry_dead_letter(letter_id, actor=staff_actor(request.user))
    except MemoryNotFound:
        messages.error(request, "That dead letter is gone (retried or discarded meanwhile).")
        return _letter_answer(request, status=404)
    logger.info("inspector: %s retried dead letter %s", staff_actor(request.user).id, letter_id)
    messages.success(
        request,
        ngettext("Queued %(n)d turn for extraction again.", "Queued %(n)d turns for extraction again.", turns)
        % {"n": turns},
    )
    return _letter_answer(request)


@change_required
@require_POST
def discard_dead_letter(request: HttpRequest, letter_id: str) -> HttpResponse:
    letter_id = _letter_id(letter_id)
    if not dead_letters.discard_dead_letter(letter_id, actor=staff_actor(request.user)):
        messages.error(request, "That dead letter is gone (retried or discarded meanwhile).")
        return _letter_answer(request, status=404)
    logger.info("inspector: %s discarded dead letter %s", staff_actor(request.user).id, letter_id)
    messages.success(request, "Discarded: those turns will not be extracted.")
    return _letter_answer(request)
