"""The layout the sample generator draws on: a lattice of slightly slanted roads whose
blocks are quadrilaterals, points inside a block by bilinear position, and unique names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BLOCKS_PER_CELL = 3  # an arterial road every this many blocks
Rec = dict[str, Any]  # a community, compound, row, building, cell or piece as the generator draws it


class Names:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(50):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        base = make()
        k = 2
        while f"{base}{k}" in self.used:
            k += 1
        self.used.add(f"{base}{k}")
        return f"{base}{k}"

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]


class Lattice:
    """Slightly slanted road lines; blocks are the quadrilaterals between them."""

    def __init__(self, rng: np.random.Generator, nx: int, ny: int):
        def positions(n: int) -> tuple[np.ndarray, np.ndarray]:
            widths = rng.uniform(200, 265, size=n)
            arterial = np.arange(n + 1) % BLOCKS_PER_CELL == 0
            pos = np.concatenate([[0.0], np.cumsum(widths)])
            return pos - pos[-1] / 2, arterial

        self.X, self.x_arterial = positions(nx)
        self.Y, self.y_arterial = positions(ny)
        # lines lean a little; in a big city less, so neighbours never cross (at most ~60 m drift)
        lean_x = min(0.04, 60.0 / max(abs(self.Y[0]), 1.0))
        lean_y = min(0.04, 60.0 / max(abs(self.X[0]), 1.0))
        self.sx = rng.uniform(-lean_x, lean_x, size=nx + 1)  # slope dx/dy of "vertical" lines
        self.ty = rng.uniform(-lean_y, lean_y, size=ny + 1)  # slope dy/dx of "horizontal" lines
        self.nx, self.ny = nx, ny

    def node(self, i: int, j: int) -> np.ndarray:
        s, t = self.sx[i], self.ty[j]
        x = (self.X[i] + s * self.Y[j]) / (1 - s * t)
        y = self.Y[j] + t * x
        return np.array([x, y])

    def corners(self, bi: int, bj: int) -> np.ndarray:
        return np.array([self.node(bi, bj), self.node(bi + 1, bj),
                         self.node(bi + 1, bj + 1), self.node(bi, bj + 1)])


def bilinear(corners: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    p00, p10, p11, p01 = corners
    u = np.asarray(u)[..., None]
    v = np.asarray(v)[..., None]
    out: np.ndarray = (1 - u) * (1 - v) * p00 + u * (1 - v) * p10 + u * v * p11 + (1 - u) * v * p01
    return out


def quad(corners: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    return bilinear(corners, np.array([u0, u1, u1, u0]), np.array([v0, v0, v1, v1]))


def split_even(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * k / n for k in range(n + 1)]
