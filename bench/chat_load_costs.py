"""Unit costs behind a chat turn, measured in the bench process against the same Redis and model.

py-spy is not available to profile daphne, so the bench times the pieces of work a turn repeats,
one at a time and without contention: `build_prompt` (embedding included), one streamed reply
through the product's openai client, and one frame through the product's channel layer (every
`turn_started`, `delta` and `done` is a `group_send` that the consumer then `receive`s, in the
same process). CPU time is what limits a single daphne process.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

FRAMES = 400
EMBEDDINGS = 40
PROMPTS = 20
STREAMS = 20


async def _frames(redis_url: str, count: int) -> dict[str, float]:
    from django.utils.module_loading import import_string

    from core.channel_config import channel_layers

    # The product's layer and its configuration (see config/settings.py), on a prefix of its own.
    config = channel_layers(redis_url, "bench:costs")["default"]
    layer = import_string(str(config["BACKEND"]))(**config["CONFIG"])  # type: ignore[arg-type]
    channel = await layer.new_channel()
    await layer.group_add("bench-costs", channel)
    message: dict[str, Any] = {
        "type": "chat.frame",
        "frame": {"type": "delta", "turn_id": "t", "text": "word "},
    }
    try:
        for _ in range(20):  # connections and scripts loaded
            await layer.group_send("bench-costs", message)
            await layer.receive(channel)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await layer.group_send("bench-costs", message)
            await layer.receive(channel)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await layer.flush()  # the pub/sub layer's flush also closes its connections
    return {"frames": count, "wall_ms_per_frame": 1000 * wall / count, "cpu_ms_per_frame": 1000 * cpu / count}


class _Tab:
    """A socket's consumer as `deliver` sees it: what ChatConsumer.chat_frame does, minus the write."""

    channel_name = "bench-direct"

    async def chat_frame(self, event: dict[str, Any]) -> None:
        json.dumps(event["frame"])


async def _direct(count: int) -> dict[str, float]:
    from core.channel_layer import deliver, joined_here, left_here

    tab = _Tab()
    joined_here("bench-direct", tab)
    message: dict[str, Any] = {
        "type": "chat.frame",
        "frame": {"type": "delta", "turn_id": "t", "text": "word "},
    }
    try:
        await deliver("bench-direct", message)  # the "any other process?" check, as a turn's first frame
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await deliver("bench-direct", message, fresh=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        left_here("bench-direct", tab)
    return {"frames": count, "wall_ms_per_frame": 1000 * wall / count, "cpu_ms_per_frame": 1000 * cpu / count}


def direct_frame(count: int = FRAMES) -> dict[str, float]:
    """One delta handed to a socket of this process by `core.channel_layer.deliver` (what a turn
    does now when no other process has a tab of the chat): wall and CPU ms."""
    out = asyncio.run(_direct(count))
    return {k: round(v, 4) for k, v in out.items()}


def channel_layer_frame(redis_url: str, count: int = FRAMES) -> dict[str, float]:
    """One `group_send` + `receive` round, one after another (no contention): wall and CPU ms."""
    out = asyncio.run(_frames(redis_url, count))
    return {k: round(v, 3) for k, v in out.items()}


def embed_one_message(texts: list[str]) -> dict[str, float]:
    """Embedding one chat message with the product's embedder: wall and CPU ms."""
    from core.embeddings import get_embedder

    embedder = get_embedder()
    embedder.embed(texts[:1])
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        embedder.embed([text])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "messages": len(texts),
        "wall_ms": round(1000 * wall / len(texts), 3),
        "cpu_ms": round(1000 * cpu / len(texts), 3),
    }


def build_prompt_cost(user_id: str, session_id: str, texts: list[str]) -> dict[str, float]:
    """`build_prompt` as a turn calls it (trace saved, access recorded): wall and CPU ms."""
    from memory.prompt import build_prompt

    build_prompt(user_id=user_id, session_id=session_id, message=texts[0])
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        build_prompt(user_id=user_id, session_id=session_id, message=text)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "calls": len(texts),
        "wall_ms": round(1000 * wall / len(texts), 3),
        "cpu_ms": round(1000 * cpu / len(texts), 3),
    }


async def _streams(count: int) -> float:
    from chat.tools import TOOL_SPECS
    from core.llm import get_llm

    llm = get_llm()
    messages = [{"role": "system", "content": "bench"}, {"role": "user", "content": "bench: unit cost"}]
    async for _ in llm.stream(messages, tools=TOOL_SPECS):  # connection pool warmed
        pass
    cpu = time.process_time()
    for _ in range(count):
        async for _ in llm.stream(messages, tools=TOOL_SPECS):
            pass
    return time.process_time() - cpu


def stream_cost(base_url: str, count: int = STREAMS) -> dict[str, float]:
    """CPU ms of consuming one streamed reply with the product's openai client (waiting is free)."""
    from django.conf import settings

    saved = settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = base_url, "bench-key"
    try:
        cpu = asyncio.run(_streams(count))
    finally:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = saved
    return {"replies": count, "cpu_ms": round(1000 * cpu / count, 3)}
