"""Point-in-unit lookup: which street, community, grid, compound, small neighbourhood and
building hold a point. In memory, in numpy, over the boundaries valid at one time.

Each level gets a `LevelIndex`: a raster of cells over the level's extent. A cell that no
unit boundary crosses is *pure* and stores its unit (or none); a *mixed* cell stores the
few units whose edges cross it, and a point there is settled by an exact point-in-polygon
test (crossing number) against those units. A million points take one gather for the pure
cells and a vectorised edge test for the rest.

Boundary rule (deterministic, never two): a point on a boundary shared by two units
belongs to the unit on its east side; on an east-west boundary, to the unit on its north
side (the half-open convention of the crossing-number test). Where boundaries do not meet
exactly, a point inside two units (a hairline overlap) goes to the lower code, and a point
within 1 cm of a unit but inside none (a hairline gap, or the outer edge of the covered
area) goes to the nearest unit, then the lower code: `find` says which points it *widened*
so. Only the levels that tile the land are widened (streets, communities, grids,
compounds). Small neighbourhoods and buildings are not: roads and yards lie between them,
so a point 6 mm outside one is outside it, and a point is in one only if it is inside it
or on its west or south edge.

Chains stay consistent, and widening never takes a point out of a unit that holds it:
geo/locate/locator.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import shapely

SNAP_M = 0.01  # a point within 1 cm of a unit it is not inside still belongs to it
UNWIDENED = ("neighbourhood", "building")  # levels that do not tile the land: never widened
MAX_CELLS = 6_000_000  # per level; cells grow beyond the target size to stay under this
_A = 6378137.0
_E2 = 0.00669437999014

_Lat = TypeVar("_Lat", npt.NDArray[np.float64], np.float64)  # latitudes, or one latitude


def metres_per_degree(lat: _Lat) -> tuple[_Lat, _Lat]:
    """Metres per degree of longitude and of latitude at `lat` (WGS84 ellipsoid)."""
    phi = np.radians(lat)
    w = 1.0 - _E2 * np.sin(phi) ** 2
    per_lon = np.pi / 180.0 * _A / np.sqrt(w) * np.cos(phi)
    per_lat = np.pi / 180.0 * _A * (1.0 - _E2) / w**1.5
    return per_lon, per_lat


def _unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (numpy's own unique hashes large int arrays, 15x slower here)."""
    if len(keys) == 0:
        return keys
    ordered = np.sort(keys)
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _expand(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs (start, count): the run each element belongs to, and the element's index."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.cumsum(counts) - counts
    index = starts[owner] + (np.arange(total) - offsets[owner])
    return owner, index


@dataclass
class LevelIndex:
    level: str
    n: int
    code_rank: np.ndarray  # rank of each unit's code (ties go to the lower)
    bbox: np.ndarray  # (n, 4)
    edge_ptr: np.ndarray  # CSR: unit i has edges edge_ptr[i]:edge_ptr[i+1]
    ex0: np.ndarray
    ey0: np.ndarray
    ex1: np.ndarray
    ey1: np.ndarray
    x0: float = 0.0
    y0: float = 0.0
    sx: float = 1.0
    sy: float = 1.0
    nx: int = 0
    ny: int = 0
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cand_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    cand: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cell_m: float = 0.0
    snap_m: float = SNAP_M

    # -- building ----------------------------------------------------------------------
    @classmethod
    def build(cls, level: str, geoms: np.ndarray, codes: Sequence[str], cell_m: float | None = None,
              max_cells: int = MAX_CELLS) -> LevelIndex:
        """The index of these units. `max_cells` bounds the raster (a patch of scattered units
        over a whole city gets coarser cells, not a city-sized raster: geo/locate/layered.py)."""
        n = len(geoms)
        geoms = np.asarray(geoms, dtype=object)
        polygonal = np.array([g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geoms], bool)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(np.array(codes, dtype=object), kind="stable")] = np.arange(n)
        if n == 0 or not polygonal.any():
            empty = np.zeros(0)
            return cls(level, n, rank, np.zeros((n, 4)), np.zeros(n + 1, np.int64), empty, empty, empty, empty)
        # fewer vertices, same shape (within 0.1 mm): fewer edges to test
        simple = geoms.copy()
        simple[polygonal] = shapely.simplify(geoms[polygonal], 1e-9, preserve_topology=True)
        simple[~polygonal] = None
        parts, part_owner = shapely.get_parts(simple, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
        same = coord_ring[:-1] == coord_ring[1:]
        edge_unit = part_owner[ring_part[coord_ring[:-1][same]]]
        ex0, ey0 = coords[:-1][same, 0], coords[:-1][same, 1]
        ex1, ey1 = coords[1:][same, 0], coords[1:][same, 1]
        order = np.argsort(edge_unit, kind="stable")
        edge_unit = edge_unit[order]
        ex0, ey0, ex1, ey1 = ex0[order], ey0[order], ex1[order], ey1[order]
        edge_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(edge_unit, minlength=n), out=edge_ptr[1:])
        bbox = shapely.bounds(simple)
        bbox[~polygonal] = np.nan
        index = cls(level, n, rank, bbox, edge_ptr, ex0, ey0, ex1, ey1)
        index.snap_m = 0.0 if level in UNWIDENED else SNAP_M
        index._build_cells(edge_unit, cell_m, max_cells)
        return index

    def _build_cells(self, edge_unit: np.ndarray, cell_m: float | None, max_cells: int = MAX_CELLS) -> None:
        valid = ~np.isnan(self.bbox[:, 0])
        minx, miny = np.nanmin(self.bbox[:, 0]), np.nanmin(self.bbox[:, 1])
        maxx, maxy = np.nanmax(self.bbox[:, 2]), np.nanmax(self.bbox[:, 3])
        lat0 = (miny + maxy) / 2
        per_lon, per_lat = metres_per_degree(np.array(lat0))
        if cell_m is None:
            widths = np.minimum((self.bbox[valid, 2] - self.bbox[valid, 0]) * per_lon,
                                (self.bbox[valid, 3] - self.bbox[valid, 1]) * per_lat)
            cell_m = float(np.clip(np.median(widths) / 3.0, 4.0, 250.0))
        width_m = (maxx - minx) * per_lon + 2 * cell_m
        height_m = (maxy - miny) * per_lat + 2 * cell_m
        while (width_m / cell_m) * (height_m / cell_m) > max_cells:
            cell_m *= 1.25
        self.cell_m = cell_m
        self.sx, self.sy = float(cell_m / per_lon), float(cell_m / per_lat)
        self.x0, self.y0 = float(minx - self.sx), float(miny - self.sy)
        self.nx = int(math.ceil((maxx - self.x0) / self.sx)) + 2
        self.ny = int(math.ceil((maxy - self.y0) / self.sy)) + 2
        ncell = self.nx * self.ny

        # mixed cells: every cell an edge passes through (edges cut into pieces of at most one cell)
        u0, v0 = (self.ex0 - self.x0) / self.sx, (self.ey0 - self.y0) / self.sy
        u1, v1 = (self.ex1 - self.x0) / self.sx, (self.ey1 - self.y0) / self.sy
        pieces = np.maximum(1, np.ceil(np.hypot(u1 - u0, v1 - v0))).astype(np.int64)
        owner, step = _expand(np.zeros(len(pieces), np.int64), pieces)
        t0 = step / pieces[owner]
        t1 = (step + 1) / pieces[owner]
        pu0 = u0[owner] + (u1 - u0)[owner] * t0
        pu1 = u0[owner] + (u1 - u0)[owner] * t1
        pv0 = v0[owner] + (v1 - v0)[owner] * t0
        pv1 = v0[owner] + (v1 - v0)[owner] * t1
        # widened by the snap distance, so a cell within 1 cm of an edge knows that edge's unit
        wu, wv = SNAP_M * 1.5 / cell_m, SNAP_M * 1.5 / cell_m
        cu0 = np.floor(np.minimum(pu0, pu1) - wu).astype(np.int64)
        cu1 = np.floor(np.maximum(pu0, pu1) + wu).astype(np.int64)
        cv0 = np.floor(np.minimum(pv0, pv1) - wv).astype(np.int64)
        cv1 = np.floor(np.maximum(pv0, pv1) + wv).astype(np.int64)
        units = edge_unit[owner]
        cells, cell_units = [], []
        for du in (0, 1, 2):
            for dv in (0, 1, 2):
                keep = (cu0 + du <= cu1) & (cv0 + dv <= cv1)
                keep &= (cu0 + du >= 0) & (cu0 + du < self.nx) & (cv0 + dv >= 0) & (cv0 + dv < self.ny)
                cells.append((cv0[keep] + dv) * self.nx + (cu0[keep] + du))
                cell_units.append(units[keep])
        key = _unique(np.concatenate(cells) * (self.n + 1) + np.concatenate(cell_units))
        mixed_cell, mixed_unit = key // (self.n + 1), (key % (self.n + 1)).astype(np.int32)

        # pure cells: the unit holding the cell centre, by scanline over the rows
        labels = np.full(ncell, -1, dtype=np.int32)
        ylo, yhi = np.minimum(self.ey0, self.ey1), np.maximum(self.ey0, self.ey1)
        r0 = np.ceil((ylo - self.y0) / self.sy - 0.5).astype(np.int64)
        r1 = np.ceil((yhi - self.y0) / self.sy - 0.5).astype(np.int64)
        e_of, row = _expand(r0, np.maximum(r1 - r0, 0))
        if len(e_of):
            yc = self.y0 + (row + 0.5) * self.sy
            xa, ya, xb, yb = self.ex0[e_of], self.ey0[e_of], self.ex1[e_of], self.ey1[e_of]
            xc = xa + (yc - ya) * (xb - xa) / (yb - ya)
            unit = edge_unit[e_of]
            order = np.lexsort((xc, unit, row))
            row, unit, xc = row[order], unit[order], xc[order]
            # consecutive crossings of one unit on one row bound its inside
            start = np.ones(len(row), bool)
            start[1:] = (row[1:] != row[:-1]) | (unit[1:] != unit[:-1])
            k_in_run = np.arange(len(row)) - np.maximum.accumulate(np.where(start, np.arange(len(row)), 0))
            left = np.flatnonzero(k_in_run % 2 == 0)
            left = left[left + 1 < len(row)]
            left = left[(row[left + 1] == row[left]) & (unit[left + 1] == unit[left])]
            c0 = np.ceil((xc[left] - self.x0) / self.sx - 0.5).astype(np.int64)
            c1 = np.ceil((xc[left + 1] - self.x0) / self.sx - 0.5).astype(np.int64)
            span = np.maximum(c1 - c0, 0)
            run, col = _expand(c0, span)
            painted_cell = row[left][run] * self.nx + col
            painted_unit = unit[left][run].astype(np.int64)
            labels[painted_cell] = painted_unit
        else:
            painted_cell = painted_unit = np.zeros(0, dtype=np.int64)
        # a cell whose centre two units claim (they overlap) is mixed too: the rule decides there
        twice = np.bincount(painted_cell, minlength=ncell) > 1
        mixed_any = np.zeros(ncell, dtype=bool)
        mixed_any[mixed_cell] = True
        mixed_any |= twice
        # candidates: units with an edge in or near the cell, and every unit claiming its centre
        claim = mixed_any[painted_cell]
        key = _unique(np.concatenate([mixed_cell * (self.n + 1) + mixed_unit,
                                      painted_cell[claim] * (self.n + 1) + painted_unit[claim]]))
        cell_of, unit_of = key // (self.n + 1), (key % (self.n + 1)).astype(np.int32)
        first = np.ones(len(cell_of), bool)
        first[1:] = cell_of[1:] != cell_of[:-1]
        starts = np.flatnonzero(first)
        labels[cell_of[starts]] = -2 - np.arange(len(starts), dtype=np.int32)
        k, u = np.cumsum(first) - 1, unit_of
        self.cand_ptr = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(k, minlength=len(starts)), out=self.cand_ptr[1:])
        self.cand = u
        self.labels = labels

    # -- lookup -------------------------------------------------------------------------
    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The unit index holding each point, or -1."""
        return self.find(x, y)[0]

    def find(self, x: np.ndarray, y: np.ndarray, within: np.ndarray | None = None,
             parent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The unit index holding each point (-1: none), and whether it was *widened*: the point
        is inside no unit of the level, and this one is the nearest within snap_m.

        With `within` (a unit's parent, as an index, for each unit) and `parent` (one per point),
        widening takes only units with within[unit] == parent[point]."""
        out = np.full(len(x), -1, dtype=np.int64)
        widened = np.zeros(len(x), dtype=bool)
        if self.nx == 0 or len(x) == 0:
            return out, widened
        ix = np.floor((x - self.x0) / self.sx)
        iy = np.floor((y - self.y0) / self.sy)
        inside = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        where = np.flatnonzero(inside)
        lab = self.labels[(iy[where] * self.nx + ix[where]).astype(np.int64)].astype(np.int64)
        out[where] = lab
        mixed = lab <= -2
        if mixed.any():
            pts = where[mixed]
            wanted = None if within is None or parent is None else (within, parent[pts])
            out[pts], widened[pts] = self._resolve(x[pts], y[pts], -lab[mixed] - 2, wanted)
        return out, widened

    def _resolve(self, x: np.ndarray, y: np.ndarray, cells: np.ndarray,
                 wanted: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact test of points in mixed cells against their cells' candidate units; then, for a
        point inside none, the nearest unit within snap_m (among the `wanted` ones)."""
        m = len(x)
        result = np.full(m, -1, dtype=np.int64)
        widened = np.zeros(m, dtype=bool)
        starts = self.cand_ptr[cells]
        pair_pt, pair_c = _expand(starts, self.cand_ptr[cells + 1] - starts)
        unit = self.cand[pair_c].astype(np.int64)
        per_lon, per_lat = metres_per_degree(y[pair_pt])
        tol_x, tol_y = self.snap_m / per_lon, self.snap_m / per_lat
        bb = self.bbox[unit]
        px, py = x[pair_pt], y[pair_pt]
        near = (px >= bb[:, 0] - tol_x) & (px <= bb[:, 2] + tol_x) & (py >= bb[:, 1] - tol_y) & (py <= bb[:, 3] + tol_y)
        pair_pt, unit, px, py = pair_pt[near], unit[near], px[near], py[near]
        e_start = self.edge_ptr[unit]
        e_pair, e = _expand(e_start, self.edge_ptr[unit + 1] - e_start)
        ya, yb = self.ey0[e], self.ey1[e]
        xa, xb = self.ex0[e], self.ex1[e]
        qy, qx = py[e_pair], px[e_pair]
        straddle = (ya <= qy) != (yb <= qy)
        denom = np.where(straddle, yb - ya, 1.0)
        xcross = xa + (qy - ya) * (xb - xa) / denom
        crossings = np.bincount(e_pair, weights=(straddle & (qx < xcross)), minlength=len(unit))
        hit = (crossings.astype(np.int64) % 2) == 1
        # inside one or more: the lowest code wins
        if hit.any():
            hp, hu = pair_pt[hit], unit[hit]
            order = np.lexsort((self.code_rank[hu], hp))
            hp, hu = hp[order], hu[order]
            first = np.ones(len(hp), bool)
            first[1:] = hp[1:] != hp[:-1]
            result[hp[first]] = hu[first]
        # inside none: the nearest unit within snap_m (of those wanted)
        lost = result[pair_pt] < 0
        if wanted is not None:
            lost &= wanted[0][unit] == wanted[1][pair_pt]
        if lost.any() and self.snap_m > 0:
            sel = lost[e_pair]
            ep, exa, eya, exb, eyb = e_pair[sel], xa[sel], ya[sel], xb[sel], yb[sel]
            kx, ky = metres_per_degree(py[ep])
            dist = _segment_distance((px[ep] - exa) * kx, (py[ep] - eya) * ky, (exb - exa) * kx, (eyb - eya) * ky)
            best = np.full(len(unit), np.inf)
            np.minimum.at(best, ep, dist)
            ok = best <= self.snap_m
            if ok.any():
                cand_pt, cand_u, cand_d = pair_pt[ok], unit[ok], best[ok]
                order = np.lexsort((self.code_rank[cand_u], cand_d, cand_pt))
                cand_pt, cand_u = cand_pt[order], cand_u[order]
                first = np.ones(len(cand_pt), bool)
                first[1:] = cand_pt[1:] != cand_pt[:-1]
                fill = result[cand_pt[first]] < 0
                result[cand_pt[first][fill]] = cand_u[first][fill]
                widened[cand_pt[first][fill]] = True
        return result, widened

    # -- one point at a time: plain Python on a few edges beats numpy's per-call cost ------------
    def _edges(self, unit: int) -> tuple[list[float], list[float], list[float], list[float]]:
        e0, e1 = int(self.edge_ptr[unit]), int(self.edge_ptr[unit + 1])
        return (self.ex0[e0:e1].tolist(), self.ey0[e0:e1].tolist(),
                self.ex1[e0:e1].tolist(), self.ey1[e0:e1].tolist())

    def _cell(self, x: float, y: float) -> int | None:
        if self.nx == 0:
            return None
        ix = math.floor((x - self.x0) / self.sx)
        iy = math.floor((y - self.y0) / self.sy)
        if not (0 <= ix < self.nx and 0 <= iy < self.ny):
            return None
        return iy * self.nx + ix

    def _candidates(self, label: int) -> list[int]:
        if label >= 0:
            return [label]
        if label == -1:
            return []
        k = -label - 2
        units: list[int] = self.cand[int(self.cand_ptr[k]):int(self.cand_ptr[k + 1])].tolist()
        return units

    def lookup_one(self, x: float, y: float) -> int:
        """`lookup` for a single point (same rule, same answer)."""
        return self.find_one(x, y)[0]

    def find_one(self, x: float, y: float, within: np.ndarray | None = None, parent: int = -1) -> tuple[int, bool]:
        """`find` for a single point (same rule, same answer)."""
        cell = self._cell(x, y)
        if cell is None:
            return -1, False
        label = int(self.labels[cell])
        if label >= -1:
            return label, False
        per_lon, per_lat = (float(v) for v in metres_per_degree(np.float64(y)))
        tx, ty = self.snap_m / per_lon, self.snap_m / per_lat
        inside, outside = [], []
        for unit in self._candidates(label):
            bx0, by0, bx1, by1 = self.bbox[unit].tolist()
            if not (bx0 - tx <= x <= bx1 + tx and by0 - ty <= y <= by1 + ty):
                continue
            edges = self._edges(unit)
            crossings = 0
            for x0, y0, x1, y1 in zip(*edges, strict=True):
                if (y0 <= y) != (y1 <= y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
                    crossings += 1
            if crossings % 2:
                inside.append(unit)
            elif self.snap_m and (within is None or within[unit] == parent):
                outside.append((unit, edges))
        if inside:
            return min(inside, key=lambda u: self.code_rank[u]), False
        near = []
        for unit, (xa, ya, xb, yb) in outside:  # measured only when the point is inside none
            d = min(_segment_distance_one((x - x0) * per_lon, (y - y0) * per_lat,
                                          (x1 - x0) * per_lon, (y1 - y0) * per_lat)
                    for x0, y0, x1, y1 in zip(xa, ya, xb, yb, strict=True))
            if d <= self.snap_m:
                near.append((d, int(self.code_rank[unit]), unit))
        if near:
            return min(near)[2], True
        return -1, False

    def distance_one(self, x: float, y: float, unit: int) -> float:
        if unit < 0:
            return math.nan
        per_lon, per_lat = (float(v) for v in metres_per_degree(np.float64(y)))
        xa, ya, xb, yb = self._edges(unit)
        return min(_segment_distance_one((x - x0) * per_lon, (y - y0) * per_lat, (x1 - x0) * per_lon,
                                         (y1 - y0) * per_lat) for x0, y0, x1, y1 in zip(xa, ya, xb, yb, strict=True))

    def near_one(self, x: float, y: float, radius_m: float, exclude: int) -> list[int]:
        if self.nx == 0 or radius_m <= 0:
            return []
        per_lon, per_lat = (float(v) for v in metres_per_degree(np.float64(y)))
        rx, ry = radius_m / per_lon, radius_m / per_lat
        ix0 = max(math.floor((x - rx - self.x0) / self.sx), 0)
        ix1 = min(math.floor((x + rx - self.x0) / self.sx), self.nx - 1)
        units: set[int] = set()
        for cy in range(max(math.floor((y - ry - self.y0) / self.sy), 0),
                        min(math.floor((y + ry - self.y0) / self.sy), self.ny - 1) + 1):
            if ix0 > ix1:
                break
            for label in self.labels[cy * self.nx + ix0: cy * self.nx + ix1 + 1].tolist():
                units.update(self._candidates(label))
        units.discard(exclude)
        return sorted(u for u in units if self.distance_one(x, y, u) <= radius_m)

    def distance_to_boundary(self, x: np.ndarray, y: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Metres from each point to the boundary of the given unit (NaN where unit < 0)."""
        out = np.full(len(x), np.nan)
        ok = np.flatnonzero(units >= 0)
        if len(ok) == 0:
            return out
        u = units[ok]
        e_pair, e = _expand(self.edge_ptr[u], self.edge_ptr[u + 1] - self.edge_ptr[u])
        px, py = x[ok][e_pair], y[ok][e_pair]
        kx, ky = metres_per_degree(py)
        d = _segment_distance((px - self.ex0[e]) * kx, (py - self.ey0[e]) * ky,
                              (self.ex1[e] - self.ex0[e]) * kx, (self.ey1[e] - self.ey0[e]) * ky)
        best = np.full(len(ok), np.inf)
        np.minimum.at(best, e_pair, d)
        out[ok] = best
        return out

    NEAR_CELLS_PER_CHUNK = 2_000_000

    def near(self, x: np.ndarray, y: np.ndarray, radius_m: float, exclude: np.ndarray) -> list[list[int]]:
        """For each point, the units (other than `exclude`) within radius_m metres."""
        m = len(x)
        if self.nx == 0 or m == 0 or radius_m <= 0:
            return [[] for _ in range(m)]
        # points in chunks, so a wide radius never holds more than a few million cells at once
        span = 2 * radius_m / self.cell_m + 2
        chunk = max(1, int(self.NEAR_CELLS_PER_CHUNK // (span * span)))
        if m > chunk:
            out: list[list[int]] = []
            for start in range(0, m, chunk):
                stop = start + chunk
                out.extend(self._near(x[start:stop], y[start:stop], radius_m, exclude[start:stop]))
            return out
        return self._near(x, y, radius_m, exclude)

    def _near(self, x: np.ndarray, y: np.ndarray, radius_m: float, exclude: np.ndarray) -> list[list[int]]:
        m = len(x)
        found: list[list[int]] = [[] for _ in range(m)]
        # the cells under each point's box of +-radius (2 x 2 when the radius is under a cell)
        per_lon, per_lat = metres_per_degree(y)
        rx, ry = radius_m / per_lon, radius_m / per_lat
        ix0 = np.floor((x - rx - self.x0) / self.sx).astype(np.int64)
        iy0 = np.floor((y - ry - self.y0) / self.sy).astype(np.int64)
        ix1 = np.floor((x + rx - self.x0) / self.sx).astype(np.int64)
        iy1 = np.floor((y + ry - self.y0) / self.sy).astype(np.int64)
        span = int(max((ix1 - ix0).max(), (iy1 - iy0).max())) + 1
        offsets = np.arange(span)
        cx = (ix0[:, None, None] + offsets[None, :, None]).repeat(span, axis=2).ravel()
        cy = (iy0[:, None, None] + offsets[None, None, :]).repeat(span, axis=1).ravel()
        owner = np.repeat(np.arange(m), span * span)
        in_box = (cx <= np.repeat(ix1, span * span)) & (cy <= np.repeat(iy1, span * span))
        cx, cy, owner = cx[in_box], cy[in_box], owner[in_box]
        ok = (cx >= 0) & (cx < self.nx) & (cy >= 0) & (cy < self.ny)
        owner, cells = owner[ok], cy[ok] * self.nx + cx[ok]
        lab = self.labels[cells].astype(np.int64)
        pure = lab >= 0
        pts, units = [owner[pure]], [lab[pure]]
        mixed = lab <= -2
        if mixed.any():
            k = -lab[mixed] - 2
            run, c = _expand(self.cand_ptr[k], self.cand_ptr[k + 1] - self.cand_ptr[k])
            pts.append(owner[mixed][run])
            units.append(self.cand[c].astype(np.int64))
        pts_a, units_a = np.concatenate(pts), np.concatenate(units)
        key = _unique(pts_a * (self.n + 1) + units_a)
        pts_a, units_a = key // (self.n + 1), key % (self.n + 1)
        keep = units_a != exclude[pts_a]
        pts_a, units_a = pts_a[keep], units_a[keep]
        # only units whose box comes within the radius need their edges measured
        per_lon, per_lat = metres_per_degree(y[pts_a])
        bb = self.bbox[units_a]
        gap_x = np.maximum(np.maximum(bb[:, 0] - x[pts_a], x[pts_a] - bb[:, 2]), 0) * per_lon
        gap_y = np.maximum(np.maximum(bb[:, 1] - y[pts_a], y[pts_a] - bb[:, 3]), 0) * per_lat
        close = np.hypot(gap_x, gap_y) <= radius_m
        pts_a, units_a = pts_a[close], units_a[close]
        if len(pts_a):
            d = self.distance_to_boundary(x[pts_a], y[pts_a], units_a)
            within = d <= radius_m
            for p, u in zip(pts_a[within].tolist(), units_a[within].tolist(), strict=True):
                found[p].append(u)
        return found


def _segment_distance_one(px: float, py: float, dx: float, dy: float) -> float:
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else min(1.0, max(0.0, (px * dx + py * dy) / length2))
    return math.hypot(px - t * dx, py - t * dy)


def _segment_distance(px: np.ndarray, py: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Distance from points (px, py) to segments from the origin to (dx, dy), same units."""
    length2 = dx * dx + dy * dy
    t = np.where(length2 > 0, (px * dx + py * dy) / np.where(length2 > 0, length2, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    distance: np.ndarray = np.hypot(px - t * dx, py - t * dy)
    return distance
