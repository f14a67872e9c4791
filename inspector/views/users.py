"""A user's page (memory table, search with scores, sessions, recently deleted), export and erase."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from core.accounts import account_for_memory_id
from inspector import selectors as inspector_selectors
from inspector.forms import EraseForm, MemoryQueryForm
from inspector.permissions import can_change, change_required, staff_actor, view_required
from inspector.presenters import MemoryView, SessionView, as_datetime
from inspector.views.common import feed_context, form_error, is_partial, page_number, valid_user_id
from memory import export, lifecycle, working
from memory.query import MemoryFilter
from memory.scoring import chat_cut, explain_score, score_legend
from memory.search import search_memories
from memory.search_params import SearchParams
from memory.selectors import counts_by_type, deleted_memories, list_memories
from memory.types import InvalidInput, MemoryType

PAGE_SIZE = 50
SESSIONS_PAGE_SIZE = 20
SEARCH_TOP_K = 50
RECEIPTS_SESSION_KEY = "inspector_erase_receipts"

logger = logging.getLogger(__name__)


def _results_context(request: HttpRequest, user_id: str) -> tuple[dict[str, Any], int]:
    """The memory table or the search hits for the filter form, or the reason they cannot be shown."""
    form = MemoryQueryForm(request.GET or None)
    chat = SearchParams.from_settings()  # the chat's cut, which the hits table marks
    context: dict[str, Any] = {
        "form": form,
        "user_id": user_id,
        "results_url": request.get_full_path(),
        "threshold": chat.threshold,
        "floor": chat.threshold,
        "relative": chat.relative_threshold,
        "page": None,
        "search": None,
        "error": "",
    }
    if form.is_bound and not form.is_valid():
        context["error"] = form_error(form)
        return context, 400
    data = form.cleaned_data if form.is_bound else {}
    memory_type = data.get("type") or ""
    topic = data.get("topic") or ""
    try:
        filter_ = MemoryFilter.build(
            user_id=user_id,
            types=[memory_type] if memory_type else None,
            topics=[topic] if topic else None,
            pinned_only=bool(data.get("pinned")),
        )
        if data.get("q"):
            result = search_memories(
                filter=filter_,
                text=data["q"],
                mode=data.get("mode") or "hybrid",
                top_k=SEARCH_TOP_K,
                # Show every candidate with its scores; the template marks the chat's cut.
                threshold=0.0,
                relative_threshold=0.0,
                near_misses=0,
            )
            context["search"] = result
            context["threshold"] = chat_cut(result.hits[0].score.final if result.hits else 0.0, params=chat)
            context["hits"] = [
                {
                    "hit": hit,
                    "m": MemoryView(hit.memory),
                    "explained": explain_score(score=hit.score, mode=result.mode),
                }
                for hit in result.hits
            ]
            context["legend"] = score_legend()
        else:
            page_no = int(data.get("page") or 1)
            page = list_memories(
                filter=filter_,
                offset=(page_no - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
                sort_by=data.get("sort") or "updated_at",
            )
            context["page"] = page
            context["rows"] = [MemoryView(m) for m in page.memories]
            context["pager"] = _pager(request, page_no=page_no, total=page.total)
    except InvalidInput as exc:
        context["error"] = str(exc)
        return context, 400
    return context, 200


def _pager(request: HttpRequest, *, page_no: int, total: int) -> dict[str, Any]:
    pages = max(1, -(-total // PAGE_SIZE))

    def link(number: int) -> str:
        query = request.GET.copy()
        query["page"] = str(number)
        return "?" + query.urlencode()

    return {
        "number": page_no,
        "pages": pages,
        "first": (page_no - 1) * PAGE_SIZE + 1 if total else 0,
        "last": min(total, page_no * PAGE_SIZE),
        "total": total,
        "prev_url": link(page_no - 1) if page_no > 1 else "",
        "next_url": link(page_no + 1) if page_no < pages else "",
    }


def deleted_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "deleted": [MemoryView(m) for m in deleted_memories(user_id=user_id)],
        "can_change": can_change(request.user),
    }


def _sessions_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    """The sidebar's page of sessions: the newest SESSIONS_PAGE_SIZE, then older ones a page at a time."""
    page = inspector_selectors.sessions_page(
        user_id=user_id, number=page_number(request.GET.get("sessions")), per_page=SESSIONS_PAGE_SIZE
    )

    def link(number: int) -> str:
        query = request.GET.copy()
        query["sessions"] = str(number)
        return "?" + query.urlencode() + "#sessions-title"

    return {
        "sessions": [SessionView(s) for s in page.sessions],
        "sessions_page": page,
        "session_total": page.total,
        "sessions_prev_url": link(page.number - 1) if page.has_previous else "",
        "sessions_next_url": link(page.number + 1) if page.has_next else "",
    }


@view_required
@require_GET
def user_page(request: HttpRequest, user_id: str) -> HttpResponse:
    user_id = valid_user_id(user_id)
    part = request.GET.get("part") if is_partial(request) else None
    if part == "counts":
        # The live feed makes the page fetch its header counts and type chips again.
        return render(request, "inspector/_user_counts.html", _counts_context(request, user_id))
    if part == "deleted":
        # ... and its "Recently deleted" list (a memory the user forgot, one they undid).
        return render(request, "inspector/_deleted_items.html", deleted_context(request, user_id))
    results, status = _results_context(request, user_id)
    if is_partial(request):
        # htmx does not swap error statuses; the fragment carries the message instead.
        return render(request, "inspector/_user_results.html", results)
    context = {
        **results,
        **deleted_context(request, user_id),
        **feed_context(user_id=user_id),
        **_counts_context(request, user_id),
        **_sessions_context(request, user_id),
        "can_change": can_change(request.user),
        # The signed-up account these memories belong to (support knows people by username).
        "account": account_for_memory_id(user_id),
    }
    return render(request, "inspector/user.html", context, status=status)


def _counts_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    counts = counts_by_type(user_id=user_id)
    return {
        "user_id": user_id,
        "counts": [(t.value, counts.get(t.value, 0)) for t in MemoryType],
        "total_memories": sum(counts.values()),
        "session_total": working.session_count(user_id=user_id),
        "last_activity": as_datetime(inspector_selectors.last_activity(user_id=user_id)),
        "known": inspector_selectors.user_known(user_id=user_id),
    }


@view_required
@require_GET
def export_user(request: HttpRequest, user_id: str) -> HttpResponse:
    user_id = valid_user_id(user_id)
    actor = staff_actor(request.user)
    data = export.export_user(user_id=user_id, exported_by=actor.id)
    logger.info("inspector: %s exported user %r", actor.id, user_id)
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False, default=str), content_type="application/json"
    )
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", user_id)[:80]
    response["Content-Disposition"] = f'attachment; filename="engram-user-{safe_name}.json"'
    response["Cache-Control"] = "no-store"
    return response


@change_required
@require_http_methods(["GET", "POST"])
def erase_user(request: HttpRequest, user_id: str) -> HttpResponse:
    """A confirmation page (type the id), then the erase, then the receipt (Post/Redirect/Get)."""
    user_id = valid_user_id(user_id)
    form = EraseForm(request.POST or None, user_id=user_id)
    if request.method == "POST" and form.is_valid():
        actor = staff_actor(request.user)
        receipt = lifecycle.erase_user(user_id=user_id, actor=actor)
        logger.info("inspector: %s erased user %r (receipt %s)", actor.id, user_id, receipt.receipt_id)
        receipts = dict(request.session.get(RECEIPTS_SESSION_KEY, {}))
        receipts[receipt.receipt_id] = {**receipt.as_dict(), "erased_by": actor.id}
        # Keep the last few only: the durable record is the user_erased event in the audit stream.
        request.session[RECEIPTS_SESSION_KEY] = dict(list(receipts.items())[-10:])
        return redirect("inspector:receipt", receipt_id=receipt.receipt_id)
    counts = counts_by_type(user_id=user_id)
    context = {
        "user_id": user_id,
        "form": form,
        "total_memories": sum(counts.values()),
        "deleted_count": len(deleted_memories(user_id=user_id)),
        "session_count": working.session_count(user_id=user_id),
    }
    return render(request, "inspector/erase_confirm.html", context, status=400 if form.is_bound else 200)


@view_required
@require_GET
def erase_receipt(request: HttpRequest, receipt_id: str) -> HttpResponse:
    receipt = request.session.get(RECEIPTS_SESSION_KEY, {}).get(receipt_id)
    if receipt is None:
        raise Http404("no such receipt in this browser session")
    context = {
        "receipt": receipt,
        "erased_at": as_datetime(receipt["erased_at"]),
        "count_rows": [(name.replace("_", " "), count) for name, count in receipt["counts"].items()],
    }
    return render(request, "inspector/erase_receipt.html", context)
