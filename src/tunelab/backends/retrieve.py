"""Dense retrieval: MiniLM embeddings in a FAISS inner-product index, saved to disk.

Used by dynamic_few_shot (nearest training examples) and rag (nearest corpus chunks);
the probes reuse it. Vectors are L2-normalised, so inner product is cosine similarity.
A corpus is read from a folder of .txt/.md files or a JSONL of passages, cut into
overlapping character windows that end on whitespace.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunelab import TunelabError
from tunelab.backends.embed import embed
from tunelab.core.cache import write_atomic
from tunelab.data.readers import field_str, read_records

TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class Passage:
    id: str
    """`<source>#<chunk number>`; the source is the file name or the JSONL passage id."""
    source: str
    text: str


def chunk(text: str, size: int, overlap: int) -> list[str]:
    """Windows of about `size` characters, consecutive ones sharing about `overlap`.

    >>> chunk("aa bb cc dd ee", size=6, overlap=3)
    ['aa bb', 'bb cc', 'cc dd', 'dd ee']
    >>> chunk("short", size=100, overlap=10)
    ['short']
    """
    if overlap >= size:
        raise TunelabError(f"chunk_overlap ({overlap}) must be smaller than chunk_size ({size})")
    text = " ".join(text.split())
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text) and " " in text[start:end]:
            end = text.rindex(" ", start, end)  # never cut a word in two
        out.append(text[start:end].strip())
        if end >= len(text):
            break
        nxt = max(start + 1, end - overlap)
        # restart at a word boundary inside the overlap
        start = text.index(" ", nxt) + 1 if " " in text[nxt:end] else nxt
    return [c for c in out if c]


def read_corpus(path: str | Path, size: int, overlap: int) -> list[Passage]:
    """Chunks of every document in a folder of .txt/.md files or a passages JSONL."""
    path = Path(path)
    if path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise TunelabError(f"{path}: corpus folder has no .txt or .md files")
        docs = [(str(f.relative_to(path)), f.read_text(encoding="utf-8", errors="replace"))
                for f in files]
    elif path.exists():
        docs = []
        for line, rec in read_records(path):
            where = f"{path}:{line}"
            docs.append((str(rec.get("id", f"{path.name}:{line}")), field_str(rec, "text", where)))
    else:
        raise TunelabError(f"{path}: corpus not found")
    return [Passage(f"{src}#{i}", src, c) for src, text in docs
            for i, c in enumerate(chunk(text, size, overlap))]


class Index:
    """Texts (with ids) and their embeddings in a faiss IndexFlatIP."""

    def __init__(self, ids: list[str], texts: list[str], vectors: np.ndarray | None = None):
        import faiss

        if not texts:
            raise TunelabError("retrieval index: nothing to index")
        self.ids, self.texts = ids, texts
        vectors = embed(texts) if vectors is None else vectors
        self.faiss = faiss.IndexFlatIP(vectors.shape[1])
        self.faiss.add(vectors)

    @property
    def fingerprint(self) -> str:
        return content_hash(self.ids, self.texts)

    def search(self, queries: list[str], k: int) -> list[list[int]]:
        """Row numbers of the k most similar texts for each query, best first."""
        k = min(k, len(self.texts))
        _, rows = self.faiss.search(embed(queries, use_cache=False), k)
        return [[int(i) for i in r if i >= 0] for r in rows]

    def save(self, folder: Path) -> None:
        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.faiss, str(folder / "index.faiss"))
        rows = [{"id": i, "text": t} for i, t in zip(self.ids, self.texts, strict=True)]
        (folder / "texts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    @classmethod
    def load(cls, folder: Path) -> Index:
        import faiss

        rows = [json.loads(line) for line in (folder / "texts.jsonl").read_text().splitlines()]
        self = cls.__new__(cls)
        self.ids, self.texts = [r["id"] for r in rows], [r["text"] for r in rows]
        self.faiss = faiss.read_index(str(folder / "index.faiss"))
        if self.faiss.ntotal != len(rows):
            raise TunelabError(f"{folder}: index holds {self.faiss.ntotal} vectors for {len(rows)} texts")
        return self


def content_hash(ids: list[str], texts: list[str]) -> str:
    h = hashlib.sha256()
    for i, t in zip(ids, texts, strict=True):
        h.update(f"{i}\0{t}\0".encode())
    return h.hexdigest()[:16]


def passage_index(passages: list[Passage], folder: Path) -> Index:
    """The index of `passages`, reloaded from `folder` when it holds the same passages."""
    ids, texts = [p.id for p in passages], [p.text for p in passages]
    meta = folder / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("hash") == content_hash(ids, texts):
        return Index.load(folder)
    index = Index(ids, texts)
    index.save(folder)
    write_atomic(meta, json.dumps({"hash": index.fingerprint, "n": len(ids)}))
    return index
