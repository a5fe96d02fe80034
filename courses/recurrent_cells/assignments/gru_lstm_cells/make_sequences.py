"""The sequence-classification data set: noisy waves, one class per number of cycles.

Each example is a sequence of ``length`` steps of one feature, ``sin(2π k t / length + phase)``
plus noise, where ``k`` (1, 2 or 3 cycles) is the class and the phase is random: a model has
to follow the whole sequence to tell them apart, a single step says nothing.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("one_cycle", "two_cycles", "three_cycles")


def generate(seed: int, per_class: int = 100, length: int = 16, noise: float = 0.3
             ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    inputs, labels = [], []
    for label, cycles in enumerate((1, 2, 3)):
        phase = rng.uniform(0, 2 * np.pi, (per_class, 1))
        wave = np.sin(2 * np.pi * cycles * t[None, :] + phase)
        inputs.append(wave + noise * rng.standard_normal((per_class, length)))
        labels.append(np.full(per_class, label))
    x = np.concatenate(inputs)[:, :, None].astype(np.float32)  # [N, length, 1 feature]
    y = np.concatenate(labels).astype(np.int64)
    order = rng.permutation(len(y))  # shuffled: no split may lean on the order
    return x[order], y[order], CLASSES
