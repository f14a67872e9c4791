"""The chat/extraction model behind one interface. Callers use `get_llm()`.

- `OpenAICompatibleLLM`: the `openai` client on OPENAI_BASE_URL (OpenAI, Ollama, vLLM, LM Studio,
  llama.cpp server).
- `OfflineLLM`: no model configured. It answers deterministically and says so, so the product
  runs end to end without a key; `mode == "offline"` lets the UI and the status page say so too.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from django.conf import settings

# `openai` is imported inside the functions that talk to an endpoint: it takes ~0.4 s to import and
# the offline mode (the default) never needs it.

Message = dict[str, Any]


class LLMError(RuntimeError):
    """The model call failed. `kind` says how, for retry decisions and user-facing errors."""

    def __init__(
        self, message: str, *, kind: Literal["timeout", "connection", "http", "invalid"], status: int = 0
    ):
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind in {"timeout", "connection"} or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it; the caller validates it


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = Usage()
    finish_reason: str = "stop"


@dataclass(frozen=True)
class StreamEvent:
    """A piece of a streamed reply: text deltas, then exactly one `done` with the whole completion."""

    kind: Literal["text", "done"]
    text: str = ""
    completion: Completion | None = None


class LLM(Protocol):
    mode: Literal["endpoint", "offline"]
    model: str
    base_url: str

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        json_mode: bool = False,
        model: str | None = None,
        temperature: float = 0.0,
    ) -> Completion: ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        model: str | None = None,
        temperature: float = 0.3,
    ) -> AsyncIterator[StreamEvent]: ...


class OpenAICompatibleLLM:
    mode: Literal["endpoint", "offline"] = "endpoint"

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float, max_retries: int) -> None:
        from openai import AsyncOpenAI, OpenAI

        self.model = model
        self.base_url = base_url or "https://api.openai.com/v1"
        # Local servers accept any key; the client insists on one.
        options: dict[str, Any] = {
            "base_url": base_url or None,
            "api_key": api_key or "not-needed",
            "timeout": timeout,
            "max_retries": max_retries,
        }
        self._client = OpenAI(**options)
        self._async_client = AsyncOpenAI(**options)

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        json_mode: bool = False,
        model: str | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        import openai

        request: dict[str, Any] = {
            "model": model or self.model,
            "messages": list(messages),
            "temperature": temperature,
        }
        if tools:
            request["tools"] = list(tools)
        if json_mode:
            request["response_format"] = {"type": "json_object"}
        try:
            response = self._client.chat.completions.create(**request)
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: the body was not JSON
            raise _as_llm_error(exc) from exc
        choice = _first_choice(response)
        calls = [
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
            for call in _tool_calls(choice.message)
            if call.type == "function"
        ]
        usage = (
            Usage(response.usage.prompt_tokens, response.usage.completion_tokens)
            if response.usage
            else Usage()
        )
        return Completion(
            text=choice.message.content or "",
            model=response.model or request["model"],
            tool_calls=calls,
            usage=usage,
            finish_reason=choice.finish_reason or "stop",
        )

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        model: str | None = None,
        temperature: float = 0.3,
    ) -> AsyncIterator[StreamEvent]:
        import openai

        request: dict[str, Any] = {
            "model": model or self.model,
            "messages": list(messages),
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            request["tools"] = list(tools)
        text_parts: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish_reason = "stop"
        model_name = request["model"]
        try:
            stream = await self._async_client.chat.completions.create(**request)
            chunks = 0
            async for chunk in stream:
                _check_chunk(chunk)
                chunks += 1
                model_name = chunk.model or model_name
                if chunk.usage:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.finish_reason:
                        finish_reason = choice.finish_reason
                    delta = choice.delta
                    if delta.content:
                        text_parts.append(delta.content)
                        yield StreamEvent(kind="text", text=delta.content)
                    for call in delta.tool_calls or []:
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
        except (openai.OpenAIError, ValueError) as exc:  # ValueError: a chunk was not JSON
            raise _as_llm_error(exc) from exc
        if not chunks:
            # An HTML page or any body without server-sent events: the client sees an empty stream.
            raise LLMError("the model endpoint sent no reply events (not a model's answer)", kind="invalid")
        tool_calls = [
            ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"] or "{}")
            for _, c in sorted(calls.items())
        ]
        yield StreamEvent(
            kind="done",
            completion=Completion(
                text="".join(text_parts),
                model=model_name,
                tool_calls=tool_calls,
                usage=usage,
                finish_reason=finish_reason,
            ),
        )


OFFLINE_NOTICE = "Offline mode: no language model is configured."


class OfflineLLM:
    """A deterministic stand-in so the whole product runs with no model. It never calls tools."""

    mode: Literal["endpoint", "offline"] = "offline"
    model = "offline"
    base_url = ""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        json_mode: bool = False,
        model: str | None = None,
        temperature: float = 0.0,
    ) -> Completion:
        if json_mode:
            return Completion(text="{}", model=self.model)
        # The chat composes its own memory-grounded reply (chat/offline.py); anything else asking
        # the offline model gets this notice.
        return Completion(text=OFFLINE_NOTICE, model=self.model)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[dict[str, Any]] | None = None,
        model: str | None = None,
        temperature: float = 0.3,
    ) -> AsyncIterator[StreamEvent]:
        completion = self.complete(messages)
        words = completion.text.split(" ")
        for n, word in enumerate(words):
            yield StreamEvent(kind="text", text=word if n == len(words) - 1 else word + " ")
        yield StreamEvent(kind="done", completion=completion)


def _not_an_answer(what: str, body: object) -> LLMError:
    shown = str(body)[:80] if body is not None else "an empty body"
    message = f"the model endpoint answered with {what}, not a model's answer: {shown!r}"
    return LLMError(message, kind="invalid")


def _is_object(value: object) -> bool:
    from openai import BaseModel

    return isinstance(value, BaseModel)


def _first_choice(response: object) -> Any:
    """The first choice of a completion, checked: the client hands over any 200 body it got (an HTML
    page as a str, a JSON list as a list) and builds objects from JSON without validating them."""
    if not _is_object(response):
        raise _not_an_answer("something other than a JSON object", response)
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise _not_an_answer("a JSON object without a list of choices", response)
    if not choices:
        raise LLMError("the model returned no choices", kind="invalid")
    choice = choices[0]
    message = getattr(choice, "message", None)
    if not _is_object(message) or not isinstance(getattr(message, "content", None), str | None):
        raise _not_an_answer("a choice without a message", choice)
    return choice


def _tool_calls(message: Any) -> list[Any]:
    calls = getattr(message, "tool_calls", None) or []
    if not isinstance(calls, list) or not all(_is_object(getattr(c, "function", None)) for c in calls):
        raise _not_an_answer("malformed tool calls", calls)
    return calls


def _check_chunk(chunk: object) -> None:
    """A streamed chunk must be an object with a list of choices, each with a delta."""
    choices = getattr(chunk, "choices", None)
    if not _is_object(chunk) or not isinstance(choices, list):
        raise _not_an_answer("a stream event that is not a completion chunk", chunk)
    for choice in choices:
        if not _is_object(getattr(choice, "delta", None)):
            raise _not_an_answer("a stream event without a delta", choice)


def _as_llm_error(exc: Exception) -> LLMError:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return LLMError(f"the model did not answer in time: {exc}", kind="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(f"could not reach the model endpoint: {exc}", kind="connection")
    if isinstance(exc, openai.APIStatusError):
        return LLMError(
            f"the model endpoint answered {exc.status_code}: {exc.message}",
            kind="http",
            status=exc.status_code,
        )
    return LLMError(f"the model returned something that is not a valid answer: {exc}", kind="invalid")


_llms: dict[tuple[str, ...], LLM] = {}
_llms_lock = threading.Lock()


def llm_configured() -> bool:
    """A key or an explicit endpoint means a model is configured (local servers need no key)."""
    return bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)


def get_llm() -> LLM:
    """The configured model client, one per process and configuration."""
    if not llm_configured():
        cache_key: tuple[str, ...] = ("offline",)
    else:
        cache_key = (settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.CHAT_MODEL)
    llm = _llms.get(cache_key)
    if llm is None:
        with _llms_lock:
            llm = _llms.get(cache_key)
            if llm is None:
                llm = _build() if llm_configured() else OfflineLLM()
                _llms[cache_key] = llm
    return llm


def _build() -> LLM:
    return OpenAICompatibleLLM(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=settings.CHAT_MODEL,
        timeout=settings.LLM_TIMEOUT_SECONDS,
        max_retries=settings.LLM_MAX_RETRIES,
    )


def describe_llm() -> dict[str, str]:
    llm = get_llm()
    return {"mode": llm.mode, "model": llm.model, "endpoint": llm.base_url}
