"""Inspector pages and actions.

Reads go through memory.selectors / memory.working / inspector.selectors, writes through
memory.services (which record history with the staff actor and publish to the live feed).

Every action is a plain form POST that works without JavaScript (Post/Redirect/Get, messages for
the outcome). With htmx (`HX-Request`), the same endpoint answers with the fragment the page swaps
in instead. htmx does not swap 4xx answers, so a refused htmx action answers 200 with the error in
the fragment; plain requests get the real status (400, 404, 409).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import redis
from django.conf import settings
from django.contrib import messages
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event
from ulid import ULID

from core.accounts import account_by_login, account_for_memory_id, account_memory_id
from core.workers import worker_heartbeats
from inspector import selectors as inspector_selectors
from inspector.consumers import FEED_PATH
from inspector.forms import (
    EditMemoryForm,
    EraseForm,
    FlagForm,
    MemoryQueryForm,
    ReasonForm,
    RestoreVersionForm,
    SandboxForm,
    TtlForm,
    UserLookupForm,
)
from inspector.permissions import can_change, change_required, is_htmx, staff_actor, view_required
from inspector.presenters import (
    MemoryView,
    SessionView,
    as_datetime,
    duration_text,
    history_entries,
    memory_url,
    trace_view,
)
from memory import services, working
from memory.extraction import queue
from memory.prompt import build_prompt
from memory.query import MemoryFilter, validate_scope_id
from memory.selectors import (
    chat_cut,
    counts_by_type,
    deleted_memories,
    explain_score,
    get_memory,
    known_users,
    list_memories,
    memories_from_turns,
    memory_history,
    recent_events,
    score_legend,
    search_memories,
)
from memory.topics import visible_topics, with_internal_topics
from memory.types import (
    EngineError,
    InvalidInput,
    Memory,
    MemoryLocked,
    MemoryNotFound,
    MemoryType,
    VersionConflict,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
USERS_PAGE_SIZE = 25
SESSIONS_PAGE_SIZE = 20
SEARCH_TOP_K = 50
DEAD_LETTERS_SHOWN = 50
RECEIPTS_SESSION_KEY = "inspector_erase_receipts"
_LETTER_ID = re.compile(r"\d{1,20}-\d{1,20}")


# --- Small helpers --------------------------------------------------------------------------------


def _partial(request: HttpRequest) -> bool:
    """An htmx request for a fragment (not htmx restoring a whole page from its history)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not bool(getattr(htmx, "history_restore_request", False))


def _valid_user_id(user_id: str) -> str:
    try:
        return validate_scope_id(user_id, name="user_id")
    except InvalidInput as exc:
        raise Http404("no such user") from exc


def _memory_or_404(memory_id: str) -> Memory:
    try:
        return get_memory(memory_id=memory_id, include_deleted=True)
    # A hostile id can name a key of another type (WRONGTYPE): that is "not a memory" too.
    except (InvalidInput, MemoryNotFound, redis.ResponseError) as exc:
        raise Http404("no such memory") from exc


def _session_or_404(session_id: str) -> working.Session:
    try:
        session = working.get_session(session_id=session_id)
    except (InvalidInput, redis.ResponseError) as exc:
        raise Http404("no such session") from exc
    if session is None:
        raise Http404("no such session (it may have expired)")
    return session


def _page_number(raw: str | None) -> int:
    try:
        return max(1, min(10_000, int(raw or 1)))
    except ValueError:
        return 1


def _next_url(request: HttpRequest, *, default: str) -> str:
    """Where a plain POST returns to: the page it came from, if that is a local URL."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _form_error(form: Form) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        text = " ".join(str(e) for e in errors)
        parts.append(f"{label}: {text}" if label and name != "__all__" else text)
    return " ".join(parts) or "Please check the form."


FEED_PREFILL = 10


def _feed_context(*, user_id: str = "", memory_id: str = "") -> dict[str, Any]:
    """The feed panel: its socket's filter, and the latest changes to start from (on a memory
    page, that memory's own latest changes: the panel never says "no changes" beside a history)."""
    params = {k: v for k, v in (("user_id", user_id), ("memory_id", memory_id)) if v}
    if memory_id:
        events = [e.as_dict() for e in reversed(memory_history(memory_id=memory_id)[-FEED_PREFILL:])]
    else:
        events = recent_events(user_id=user_id, limit=FEED_PREFILL)
    return {
        "feed_path": FEED_PATH,
        "feed_query": urlencode(params),
        "feed_entries": inspector_selectors.feed_entries(events),
    }


# --- Overview -------------------------------------------------------------------------------------


def _users_context(request: HttpRequest) -> dict[str, Any]:
    page = _page_number(request.GET.get("page"))
    # One more than a page, to know whether there is a next page without counting everything.
    users = known_users(offset=(page - 1) * USERS_PAGE_SIZE, limit=USERS_PAGE_SIZE + 1)
    return {
        "user_rows": inspector_selectors.user_rows(users=users[:USERS_PAGE_SIZE]),
        "users_page": page,
        "users_has_next": len(users) > USERS_PAGE_SIZE,
        "types": [t.value for t in MemoryType],
    }


def _queue_context(request: HttpRequest) -> dict[str, Any]:
    health = queue.queue_health()
    letters = queue.dead_letters(limit=DEAD_LETTERS_SHOWN)
    return {
        "queue": health,
        "oldest_pending": duration_text(health["oldest_pending_age_s"]) if health["pending"] else "",
        "dead_letters": [
            {"letter": letter, "failed_at": as_datetime(letter.failed_at), "turn_count": len(letter.turns)}
            for letter in letters
        ],
        "workers": worker_heartbeats(),
        "can_change": can_change(request.user),
    }


@view_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    if _partial(request):
        # The live feed makes the page fetch its totals and queue again (memories-changed).
        part = request.GET.get("part", "")
        if part == "totals":
            return render(request, "inspector/_totals.html", {"totals": inspector_selectors.totals()})
        if part == "queue":
            return render(request, "inspector/_queue.html", _queue_context(request))
        return render(request, "inspector/_users_table.html", _users_context(request))
    return _render_overview(request, lookup_form=UserLookupForm())


def _render_overview(request: HttpRequest, *, lookup_form: UserLookupForm, status: int = 200) -> HttpResponse:
    context = {
        "totals": inspector_selectors.totals(),
        "lookup_form": lookup_form,
        **_users_context(request),
        **_queue_context(request),
        **_feed_context(),
    }
    return render(request, "inspector/overview.html", context, status=status)


@view_required
@require_GET
def user_lookup(request: HttpRequest) -> HttpResponse:
    """The overview's exact-id search box: straight to the user's page when the id is known."""
    form = UserLookupForm(request.GET)
    if not form.is_valid():
        return _render_overview(request, lookup_form=form, status=400)
    typed = form.cleaned_data["user_id"]
    # An id Engram holds wins; otherwise the name of a signed-up account (username or email).
    if inspector_selectors.user_known(user_id=typed):
        return redirect("inspector:user", user_id=typed)
    account = account_by_login(typed)
    if account is not None:
        return redirect("inspector:user", user_id=account_memory_id(account.pk))
    form.add_error(
        "user_id", "Engram has nothing stored under this exact id, and no account has this username or email."
    )
    return _render_overview(request, lookup_form=form, status=404)


# --- User page ------------------------------------------------------------------------------------


def _results_context(request: HttpRequest, user_id: str) -> tuple[dict[str, Any], int]:
    """The memory table or the search hits for the filter form, or the reason they cannot be shown."""
    form = MemoryQueryForm(request.GET or None)
    context: dict[str, Any] = {
        "form": form,
        "user_id": user_id,
        "results_url": request.get_full_path(),
        "threshold": settings.RETRIEVAL_THRESHOLD,
        "floor": settings.RETRIEVAL_THRESHOLD,
        "relative": settings.RETRIEVAL_RELATIVE_THRESHOLD,
        "page": None,
        "search": None,
        "error": "",
    }
    if form.is_bound and not form.is_valid():
        context["error"] = _form_error(form)
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
            context["threshold"] = chat_cut(result.hits[0].score.final if result.hits else 0.0)
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


def _deleted_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "deleted": [MemoryView(m) for m in deleted_memories(user_id=user_id)],
        "can_change": can_change(request.user),
    }


def _sessions_context(request: HttpRequest, user_id: str) -> dict[str, Any]:
    """The sidebar's page of sessions: the newest SESSIONS_PAGE_SIZE, then older ones a page at a time."""
    page = inspector_selectors.sessions_page(
        user_id=user_id, number=_page_number(request.GET.get("sessions")), per_page=SESSIONS_PAGE_SIZE
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
    user_id = _valid_user_id(user_id)
    part = request.GET.get("part") if _partial(request) else None
    if part == "counts":
        # The live feed makes the page fetch its header counts and type chips again.
        return render(request, "inspector/_user_counts.html", _counts_context(request, user_id))
    if part == "deleted":
        # ... and its "Recently deleted" list (a memory the user forgot, one they undid).
        return render(request, "inspector/_deleted_items.html", _deleted_context(request, user_id))
    results, status = _results_context(request, user_id)
    if _partial(request):
        # htmx does not swap error statuses; the fragment carries the message instead.
        return render(request, "inspector/_user_results.html", results)
    context = {
        **results,
        **_deleted_context(request, user_id),
        **_feed_context(user_id=user_id),
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
    user_id = _valid_user_id(user_id)
    actor = staff_actor(request.user)
    data = inspector_selectors.export_user(user_id=user_id, exported_by=actor.id)
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
    user_id = _valid_user_id(user_id)
    form = EraseForm(request.POST or None, user_id=user_id)
    if request.method == "POST" and form.is_valid():
        actor = staff_actor(request.user)
        receipt = services.erase_user(user_id=user_id, actor=actor)
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


# --- Sandbox --------------------------------------------------------------------------------------


@view_required
@require_http_methods(["GET", "POST"])
def sandbox(request: HttpRequest, user_id: str) -> HttpResponse:
    """What would be retrieved for this message, as this user, right now. Writes nothing."""
    user_id = _valid_user_id(user_id)
    form = SandboxForm(request.POST or None, initial={"session_id": request.GET.get("session", "")})
    context: dict[str, Any] = {
        "user_id": user_id,
        "form": form,
        "sessions": working.list_sessions(user_id=user_id),
        "built": None,
    }
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            session_id = form.cleaned_data["session_id"]
            if session_id:
                try:
                    session = working.get_session(session_id=session_id)
                except (InvalidInput, redis.ResponseError):
                    session = None
                if session is None or session.user_id != user_id:
                    form.add_error("session_id", "This user has no live session with that id.")
            if form.is_valid():
                try:
                    built = build_prompt(
                        user_id=user_id,
                        # A fresh id names no session: no summary, no recent messages.
                        session_id=session_id or f"sandbox-{ULID()}",
                        message=form.cleaned_data["message"],
                        save_trace=False,
                    )
                except InvalidInput as exc:
                    form.add_error(None, str(exc))
                else:
                    status = 200
                    context["built"] = built
                    context["trace"] = trace_view(built.trace)
                    context["fresh_session"] = not session_id
    if _partial(request):
        return render(request, "inspector/_sandbox_result.html", context)
    return render(request, "inspector/sandbox.html", context, status=status)


# --- Session page ---------------------------------------------------------------------------------


@view_required
@require_GET
def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    session = _session_or_404(session_id)
    traces = [trace_view(t) for t in reversed(working.list_traces(session_id=session.id))]
    context = {
        "session": session,
        "created": as_datetime(session.created_at),
        "updated": as_datetime(session.updated_at),
        "messages_": [
            {"message": m, "at": as_datetime(m.at)} for m in working.get_messages(session_id=session.id)
        ],
        "ttl_text": duration_text(session.ttl_seconds),
        "token_limit": settings.WORKING_MEMORY_TOKEN_LIMIT,
        "prompt_budget": settings.PROMPT_TOKEN_BUDGET,
        "traces": traces,
    }
    return render(request, "inspector/session.html", context)


# --- Memory page and its actions ------------------------------------------------------------------


def _memory_context(
    request: HttpRequest, memory: Memory, *, edit_form: EditMemoryForm | None = None
) -> dict[str, Any]:
    events = memory_history(memory_id=memory.id)
    initial = {
        "text": memory.text,
        "type": str(memory.type),
        # Internal markers (slot:…, said-by:…) are not the staff's to edit; saving keeps them.
        "topics": ", ".join(visible_topics(memory.topics)),
        "expected_version": memory.version,
    }
    # A fact links to the turn(s) it was learned from; a raw turn to the facts learned from it.
    related = memories_from_turns(
        user_id=memory.scope.user_id,
        turn_ids=memory.source,
        types=["message"]
        if memory.type != MemoryType.MESSAGE
        else [t for t in MemoryType if t != MemoryType.MESSAGE],
    )
    return {
        "memory": memory,
        "m": MemoryView(memory),
        "related": [MemoryView(r) for r in related if r.id != memory.id],
        "history": history_entries(events, current=memory),
        "edit_form": edit_form or EditMemoryForm(initial=initial),
        "ttl_form": TtlForm(initial={"unit": "hours"}),
        "extend_form": TtlForm(initial={"unit": "days"}),
        "can_change": can_change(request.user),
        "grace": duration_text(settings.SOFT_DELETE_GRACE_SECONDS),
    }


@view_required
@require_GET
def memory_page(request: HttpRequest, memory_id: str) -> HttpResponse:
    memory = _memory_or_404(memory_id)
    if _partial(request):
        return render(request, "inspector/_memory_panel.html", _memory_context(request, memory))
    context = {**_memory_context(request, memory), **_feed_context(memory_id=memory.id)}
    return render(request, "inspector/memory.html", context)


def _answer(
    request: HttpRequest,
    *,
    memory_id: str,
    status: int = 200,
    edit_form: EditMemoryForm | None = None,
) -> HttpResponse:
    """The response to a memory action, after its outcome was queued as a message."""
    panel = request.POST.get("panel", "memory")
    if is_htmx(request):
        if panel == "deleted":
            memory = _memory_or_404(memory_id)
            response = render(
                request, "inspector/_deleted.html", _deleted_context(request, memory.scope.user_id)
            )
            # The user page's memory table listens for this and reloads itself.
            return trigger_client_event(response, "memories-changed")
        memory = _memory_or_404(memory_id)
        context = _memory_context(request, memory, edit_form=edit_form)
        return render(request, "inspector/_memory_panel.html", context)
    if status >= 400 and panel == "memory":
        memory = _memory_or_404(memory_id)
        context = {
            **_memory_context(request, memory, edit_form=edit_form),
            **_feed_context(memory_id=memory.id),
        }
        return render(request, "inspector/memory.html", context, status=status)
    return redirect(_next_url(request, default=memory_url(memory_id)))


def _act(
    request: HttpRequest,
    memory_id: str,
    form: Form,
    apply: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """Validate the form, run the service call, and answer with its outcome (or why it was refused)."""
    memory = _memory_or_404(memory_id)
    if not form.is_valid():
        messages.error(request, _form_error(form))
        return _answer(request, memory_id=memory.id, status=400)
    try:
        messages.success(request, apply(form.cleaned_data))
    except MemoryNotFound:
        if memory.deleted:
            messages.error(request, "This memory is deleted: undo the delete first.")
        else:
            messages.error(request, "This memory no longer exists (deleted or expired meanwhile).")
        return _answer(request, memory_id=memory.id, status=409)
    except (VersionConflict, MemoryLocked) as exc:
        messages.error(request, str(exc))
        return _answer(request, memory_id=memory.id, status=409)
    except EngineError as exc:
        messages.error(request, str(exc))
        return _answer(request, memory_id=memory.id, status=400)
    return _answer(request, memory_id=memory.id)


# The edit form's errors drawn beside their field (templates/inspector/_memory_panel.html).
EDIT_ERRORS_IN_FORM = frozenset({"text", "topics", "__all__"})


@change_required
@require_POST
def edit_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    memory = _memory_or_404(memory_id)
    form = EditMemoryForm(request.POST)
    if not form.is_valid():
        # The form shows text, topics and form-wide errors beside their fields: a flash message
        # would say them a second time. Only the others (reason, version) are flashed.
        unseen = {k: v for k, v in form.errors.items() if k not in EDIT_ERRORS_IN_FORM}
        if unseen:
            messages.error(request, " ".join(" ".join(str(e) for e in errors) for errors in unseen.values()))
        return _answer(request, memory_id=memory.id, status=400, edit_form=form)
    data = form.cleaned_data
    topics = with_internal_topics(data["topics"], current=memory.topics)
    # Send only what changed: unchanged text must not be re-embedded or shown as an edit.
    changes: dict[str, Any] = {}
    if data["text"] != memory.text:
        changes["text"] = data["text"]
    if data["type"] != str(memory.type):
        changes["type"] = data["type"]
    if topics != with_internal_topics(memory.topics, current=memory.topics):
        changes["topics"] = topics
    if not changes:
        messages.info(request, "Nothing changed: the form matches the memory as it is.")
        return _answer(request, memory_id=memory.id)
    try:
        updated = services.update_memory(
            memory_id=memory.id,
            actor=staff_actor(request.user),
            reason=data["reason"],
            expected_version=data["expected_version"],
            **changes,
        )
    except VersionConflict:
        current = _memory_or_404(memory.id)
        # Keep what the staff member typed, now based on the current version: saving again is a
        # deliberate overwrite after looking at what changed.
        resubmit = request.POST.copy()
        resubmit["expected_version"] = str(current.version)
        messages.error(
            request,
            f"Not saved: this memory changed while you were editing (it is now version {current.version}). "
            "Your text is still in the form; check the current text and history, then save again to "
            "overwrite.",
        )
        return _answer(request, memory_id=memory.id, status=409, edit_form=EditMemoryForm(resubmit))
    except MemoryNotFound:
        messages.error(request, "This memory is deleted or expired; it cannot be edited.")
        return _answer(request, memory_id=memory.id, status=409)
    except EngineError as exc:
        form.add_error(None, str(exc))  # shown once, at the top of the form
        return _answer(request, memory_id=memory.id, status=400, edit_form=form)
    messages.success(request, f"Saved as version {updated.version}.")
    return _answer(request, memory_id=memory.id)


@change_required
@require_POST
def delete_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        services.delete_memory(memory_id=memory_id, actor=actor, reason=data["reason"])
        grace = duration_text(settings.SOFT_DELETE_GRACE_SECONDS)
        return f"Deleted. You can undo this for {grace}."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def undelete_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)
    memory = _memory_or_404(memory_id)
    if not memory.deleted:
        messages.info(request, "This memory is not deleted.")
        return _answer(request, memory_id=memory.id)

    def apply(data: dict[str, Any]) -> str:
        try:
            services.restore_memory(memory_id=memory_id, actor=actor, reason=data["reason"] or "undo delete")
        except MemoryNotFound as exc:
            raise InvalidInput("This memory can no longer be restored: its grace period is over.") from exc
        return "Restored: the memory is back in search and prompts."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def restore_version(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        restored = services.restore_version(
            memory_id=memory_id,
            version=data["version"],
            actor=actor,
            expected_version=data.get("expected_version"),
        )
        return f"Restored the text of version {data['version']} as version {restored.version}."

    return _act(request, memory_id, RestoreVersionForm(request.POST), apply)


@change_required
@require_POST
def set_ttl(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        services.set_ttl(memory_id=memory_id, ttl_seconds=data["seconds"], actor=actor, reason=data["reason"])
        return f"The memory now expires in {duration_text(data['seconds'])}."

    return _act(request, memory_id, TtlForm(request.POST), apply)


@change_required
@require_POST
def extend_ttl(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        updated = services.extend_ttl(
            memory_id=memory_id, seconds=data["seconds"], actor=actor, reason=data["reason"]
        )
        return (
            f"Extended by {duration_text(data['seconds'])}; expires in {duration_text(updated.ttl_seconds)}."
        )

    return _act(request, memory_id, TtlForm(request.POST), apply)


@change_required
@require_POST
def persist_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        services.set_ttl(memory_id=memory_id, ttl_seconds=None, actor=actor, reason=data["reason"])
        return "The memory no longer expires."

    return _act(request, memory_id, ReasonForm(request.POST), apply)


@change_required
@require_POST
def pin_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        services.set_pinned(memory_id=memory_id, pinned=data["value"], actor=actor, reason=data["reason"])
        return "Pinned: it is always in the prompt." if data["value"] else "Unpinned."

    return _act(request, memory_id, FlagForm(request.POST), apply)


@change_required
@require_POST
def lock_memory(request: HttpRequest, memory_id: str) -> HttpResponse:
    actor = staff_actor(request.user)

    def apply(data: dict[str, Any]) -> str:
        reason = data["reason"] or ("corrected by support" if data["value"] else "")
        services.set_locked(memory_id=memory_id, locked=data["value"], actor=actor, reason=reason)
        if data["value"]:
            return "Locked: the assistant and the extractor may no longer change or delete it."
        return "Unlocked: the assistant and the extractor may update it again."

    return _act(request, memory_id, FlagForm(request.POST), apply)


# --- Dead letters ---------------------------------------------------------------------------------


def _letter_answer(request: HttpRequest, *, status: int = 200) -> HttpResponse:
    if is_htmx(request):
        return render(request, "inspector/_queue.html", _queue_context(request))
    if status >= 400:
        return _render_overview(request, lookup_form=UserLookupForm(), status=status)
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
        turns = queue.retry_dead_letter(letter_id, actor=staff_actor(request.user))
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
    if not queue.discard_dead_letter(letter_id, actor=staff_actor(request.user)):
        messages.error(request, "That dead letter is gone (retried or discarded meanwhile).")
        return _letter_answer(request, status=404)
    logger.info("inspector: %s discarded dead letter %s", staff_actor(request.user).id, letter_id)
    messages.success(request, "Discarded: those turns will not be extracted.")
    return _letter_answer(request)


# --- System status --------------------------------------------------------------------------------


@view_required
@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    """What the public /healthz no longer shows: Redis, its modules, the index, workers, queue, models."""
    report = inspector_selectors.status_report()
    return render(request, "inspector/status.html", {"report": report}, status=_status_code(report))


@view_required
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    report = inspector_selectors.status_report()
    return JsonResponse(report, status=_status_code(report))


def _status_code(report: dict[str, Any]) -> int:
    return 503 if report["status"] == "error" else 200
