"""The toy's data set: three blobs of 2-D points, one per class, from a seeded generator."""

from __future__ import annotations

import numpy as np

CENTRES = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def generate(seed: int, per_class: int = 60, spread: float = 1.0
             ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    inputs = np.concatenate([c + spread * rng.standard_normal((per_class, 2)) for c in CENTRES])
    labels = np.repeat(np.arange(len(CENTRES)), per_class)
    order = rng.permutation(len(labels))  # shuffled, so no split can lean on the order
    return inputs[order], labels[order], ("circle", "square", "triangle")
