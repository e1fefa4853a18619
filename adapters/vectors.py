"""Embeddings as Immich stores them: a string holding a JSON array of floats.

The Immich server writes that string as it is into a pgvector column and searches by cosine
distance, so a vector that is zero or not finite would poison every search it takes part in.
"""

from __future__ import annotations

import json

import numpy as np

from adapters.errors import RequestError


def checked(features: np.ndarray, what: str) -> np.ndarray:
    """``features`` as one float64 vector; a 500 naming ``what`` (the model kind) for a vector
    that search cannot use (zero or not finite)."""
    vector = np.asarray(features, np.float64).reshape(-1)  # float64: no overflow or underflow in the norm
    norm = float(np.linalg.norm(vector))
    if not np.all(np.isfinite(vector)) or not np.isfinite(norm) or norm == 0.0:
        raise RequestError(500, f"the {what} model returned an embedding that is zero or not finite")
    return vector


def vector_string(features: np.ndarray, normalize: bool, what: str) -> str:
    """``features`` as Immich's string, L2-normalised if asked; a 500 naming ``what`` for a
    vector that search cannot use."""
    vector = checked(features, what)
    if normalize:
        vector = vector / np.linalg.norm(vector)
    return json.dumps(vector.astype(np.float32).tolist(), separators=(",", ":"))
