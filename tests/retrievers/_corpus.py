"""Shared test data: a small corpus and a deterministic bag-of-words embedder."""

from __future__ import annotations

import re
import zlib

import numpy as np

CORPUS = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "The first FIFA World Cup was held in Uruguay in 1930.",
    "Mount Everest is the highest mountain above sea level.",
    "The Nile is a major north-flowing river in Africa.",
    "Python is a programming language that emphasises readability.",
    "The Pacific is the largest and deepest ocean on Earth.",
    "Photosynthesis turns light, water and carbon dioxide into sugar.",
]

DIM = 64


def bow(texts: list[str]) -> np.ndarray:
    """Hashed bag of words: texts sharing words get similar vectors."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            if len(word) > 2:
                out[row, zlib.crc32(word.encode()) % DIM] += 1.0
        out[row, DIM - 1] += 0.01  # never all zeros
    return out
