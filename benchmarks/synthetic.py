"""Synthetic faces with the spread of real ones, for the scale benchmarks.

``Generator`` draws people with the covariances of real centres and real
within-person deviations (fitted on lfw-dev's embeddings, ``harness.real_faces``),
so they lie, as real embeddings do, in about 78 of the 128 dimensions.
``isotropic`` draws them from spherical normals matched to given mean distances:
they fill all 128 dimensions.
"""

from __future__ import annotations

import numpy as np

DIM = 128


class Generator:
    """Synthetic people with the real centres' and within-person covariances."""

    def __init__(self, embeddings: np.ndarray, owners: np.ndarray) -> None:
        counts = np.bincount(owners)
        several = np.flatnonzero(counts >= 2)
        centres = np.array([embeddings[owners == p].mean(axis=0) for p in several])
        deviations = np.concatenate(
            [
                (embeddings[owners == p] - centres[i]) * np.sqrt(counts[p] / (counts[p] - 1))
                for i, p in enumerate(several)
            ]
        )
        within = np.cov(deviations, rowvar=False)
        # A centre from n photos varies by within / n besides the spread of people.
        between = np.cov(centres, rowvar=False) - within * np.mean(1.0 / counts[several])
        values, vectors = np.linalg.eigh(between)
        self.between = vectors * np.sqrt(np.clip(values, 0, None))
        values, vectors = np.linalg.eigh(within)
        self.within = vectors * np.sqrt(np.clip(values, 0, None))
        self.mean = centres.mean(axis=0)
        self.photos_per_person = counts[counts > 0]
        # People differ in how much their photos vary (age, pose, light): a per-person
        # scale of the noise, its spread chosen to match the real same-person spread.
        same = [
            np.linalg.norm(embeddings[owners == p][:, None] - embeddings[owners == p], axis=2)
            for p in several
        ]
        per_person = np.array([d[np.triu_indices(len(d), 1)].mean() for d in same])
        self.scale_sd = float(per_person.std() / per_person.mean())

    def faces(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` synthetic faces as float32, made 100,000 at a time to bound memory."""
        parts = [
            self.people(rng, min(100_000, count - done))[0].astype(np.float32)
            for done in range(0, count, 100_000)
        ]
        return np.concatenate(parts) if parts else np.empty((0, DIM), np.float32)

    def people(self, rng: np.random.Generator, faces: int) -> tuple[np.ndarray, np.ndarray]:
        sizes: list[int] = []
        total = 0  # a running sum: summing the list each time made a million faces take minutes
        while total < faces:
            sizes.append(int(rng.choice(self.photos_per_person)))
            total += sizes[-1]
        sizes[-1] -= total - faces
        centres = self.mean + rng.normal(size=(len(sizes), DIM)) @ self.between.T
        owners = np.repeat(np.arange(len(sizes)), sizes)
        scale = np.clip(rng.normal(1.0, self.scale_sd, size=len(sizes)), 0.3, None)
        noise = rng.normal(size=(faces, DIM)) @ self.within.T
        rows = centres[owners] + scale[owners, None] * noise
        return rows, owners


# Log-normal spread of each face's noise scale and each person's centre scale, and the
# shrink of the means that they cause: chosen so that the synthetic distances match lfw-dev's
# means and standard deviations (printed by bench_cluster as "synthetic distances").
FACE_SCALE_SD = 0.27
CENTRE_SCALE_SD = 0.13
SAME_SHRINK = 0.95
DIFFERENT_SHRINK = 0.98


def isotropic(
    n: int, same_mean: float, diff_mean: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces (float32) and their people: centres ``N(0, sb^2 I)``, faces ``centre +
    N(0, sw^2 I)``, sizes drawn like lfw-dev's (1 to 6 photos, a quarter strangers),
    the distances' means matched to ``same_mean`` and ``diff_mean``."""
    rng = np.random.default_rng(seed)
    sw = SAME_SHRINK * same_mean / np.sqrt(2 * DIM)
    sb = np.sqrt(max((DIFFERENT_SHRINK * diff_mean) ** 2 / (2 * DIM) - sw**2, 1e-6))
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(1 if rng.random() < 0.25 else int(rng.integers(2, 7)))
    truth = np.repeat(np.arange(len(sizes)), sizes)[:n]
    centres = rng.normal(scale=sb, size=(len(sizes), DIM))
    centres *= np.exp(rng.normal(0, CENTRE_SCALE_SD, (len(sizes), 1)))
    noise = rng.normal(scale=sw, size=(n, DIM)) * np.exp(rng.normal(0, FACE_SCALE_SD, (n, 1)))
    return (centres[truth] + noise).astype(np.float32), truth
