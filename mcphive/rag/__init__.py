"""The RAG substrate: chunking, ingestion, and a chromadb document store with hybrid (vector + BM25) search.

Embeddings come from :mod:`mcphive.embeddings`; importing this package loads neither chromadb
nor the model (both load when a :class:`DocumentStore` is created or first searched).
"""

from __future__ import annotations

from mcphive.rag.chunking import Chunk, chunk_document
from mcphive.rag.ingest import IngestReport, SkippedFile, ingest
from mcphive.rag.rerank import CrossEncoderReranker, LexicalOverlapReranker, Reranker, make_reranker
from mcphive.rag.store import DocumentStore, FileRecord, Hit, HnswConfig

__all__ = [
    "Chunk",
    "CrossEncoderReranker",
    "DocumentStore",
    "FileRecord",
    "Hit",
    "HnswConfig",
    "IngestReport",
    "LexicalOverlapReranker",
    "Reranker",
    "SkippedFile",
    "chunk_document",
    "ingest",
    "make_reranker",
]
