"""The generator of realistic sample districts around Wuhan.

A district is laid out on a road lattice: arterial roads every ~700 m and local
streets between them cut the land into blocks of ~230 m. Blocks hold gated
compounds (towers and slabs), old open blocks (6-7 floor walk-ups) and
non-residential land (schools, parks, markets). Buildings have floors, entrances
(单元) and households. From these the generator draws:

- small neighbourhoods: runs of entrances of one building, 10-80 households,
  tiling each residential compound;
- grids of ~300-500 households: runs of whole compounds or whole rows of buildings,
  never cutting a building, tiling their community;
- communities of whole blocks (some oversized, > 3,000 households, some undersized),
  tiling their street; streets of whole arterial cells, tiling the district.

Everything is drawn in metres on a plane and projected to WGS84 with a transverse
Mercator centred on the district, so shared boundaries are shared exactly.
Deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import LineString, Polygon

from geo.sample.grids import draw_grids
from geo.sample.layout import BLOCKS_PER_CELL, Lattice, Names, Rec, quad, split_even
from geo.units import codes

CENTRE = (114.30, 30.55)
DEFAULT_COUNTY = "420199"  # a made-up county code in Wuhan's range (4201xx), not a real district
CELLS_PER_STREET = 2  # a street is 2 x 2 arterial cells
SAMPLE_CELLS = 16  # scale 1.0: 4 streets, ~50 communities, ~320 grids
GRIDS_PER_SCALE = 320
ROW_MAX = 450  # a row of buildings never holds more than this, so grids can end at any row
SNAP = 0.001  # unions snap to 1 mm so shared edges stay shared

WORDS = ["东湖", "紫阳", "梅苑", "桃源", "丹枫", "晴川", "翠微", "凤凰", "白沙", "黄鹤", "长春", "积玉",
         "复兴", "南湖", "珞珈", "首义", "楚河", "沙湖", "水杉", "桂园", "临江", "月湖", "琴台", "江滩",
         "青石", "杨柳", "荷塘", "石门", "龙泉", "明珠", "锦绣", "和平", "友谊", "新华", "民主", "建设"]
PLACE = ["路", "湖", "山", "园", "桥", "门", "港", "洲", "苑", "坊", "岭", "里"]
ESTATE = ["花园", "小区", "家园", "苑", "新村", "公寓", "名都", "华府", "雅居", "城"]
NONRES = [("school", "小学"), ("park", "公园"), ("market", "农贸市场"), ("school", "中学"),
          ("clinic", "社区卫生服务中心")]
NUMERALS = "一二三四五六七八九十"

# Community layouts inside an arterial cell of 3 x 3 blocks: (row, col, rows, cols).
TEMPLATES = [
    ([(0, 0, 1, 3), (1, 0, 1, 3), (2, 0, 1, 3)], 3),
    ([(0, 0, 3, 1), (0, 1, 3, 1), (0, 2, 3, 1)], 3),
    ([(0, 0, 2, 3), (2, 0, 1, 3)], 2),           # one oversized community
    ([(0, 0, 1, 3), (1, 0, 2, 2), (1, 2, 2, 1)], 2),
    ([(0, 0, 1, 1), (0, 1, 1, 2), (1, 0, 2, 3)], 2),  # one undersized, one oversized
    ([(0, 0, 2, 2), (0, 2, 2, 1), (2, 0, 1, 3)], 2),
    ([(0, 0, 1, 1), (0, 1, 1, 1), (0, 2, 1, 1), (1, 0, 2, 3)], 1),  # small ones and a big one
]


@dataclass
class District:
    """The generated layers, each a GeoDataFrame in WGS84."""

    layers: dict[str, gpd.GeoDataFrame]

    def summary(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.layers.items()}

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        for name, frame in self.layers.items():
            frame.to_file(path, layer=name, driver="GPKG", engine="pyogrio")
        return path


def generate(seed: int = 7, scale: float = 1.0, county: str = DEFAULT_COUNTY,
             centre: tuple[float, float] = CENTRE,
             progress: Callable[[str, int, int], None] | None = None) -> District:
    """Generate a district; scale 1.0 is the shipped sample (~50 communities, ~320 grids)."""
    rng = np.random.default_rng(seed)
    names = Names(rng)
    progress = progress or (lambda stage, done, total: None)
    cells = max(1, round(SAMPLE_CELLS * scale))
    streets_x = max(1, round(math.sqrt(cells) / CELLS_PER_STREET))
    streets_y = max(1, math.ceil(cells / (streets_x * CELLS_PER_STREET**2)))
    cells_x, cells_y = streets_x * CELLS_PER_STREET, streets_y * CELLS_PER_STREET
    lattice = Lattice(rng, cells_x * BLOCKS_PER_CELL, cells_y * BLOCKS_PER_CELL)
    communities = _lay_out_communities(rng, cells_x, cells_y)
    compounds, buildings, hoods, block_info = _fill_blocks(rng, lattice, communities, progress)

    # ---- grids: runs of pieces along each community's traversal ----------------
    for n_comm, comm in enumerate(communities):
        comm["compounds"] = [c for b in comm["blocks"] for c in block_info[b]["compounds"]]
        comm["grids"] = draw_grids(rng, comm, block_info)
        if n_comm % 200 == 0:
            progress("grids", n_comm, len(communities))
    progress("grids", len(communities), len(communities))
    return _assemble(lattice, communities, compounds, buildings, hoods, county, centre, names, rng,
                     streets_x, streets_y, progress)


# ---- communities: templates of blocks inside each arterial cell ---------------------

def _lay_out_communities(rng: np.random.Generator, cells_x: int, cells_y: int) -> list[Rec]:
    """The communities of every arterial cell, each a dict: street (sx, sy), blocks [(bi, bj)]
    in traversal order."""
    communities: list[Rec] = []
    weights = np.array([w for _, w in TEMPLATES], dtype=float)
    for cy in range(cells_y):
        for cx in range(cells_x):
            template = TEMPLATES[int(rng.choice(len(TEMPLATES), p=weights / weights.sum()))][0]
            flip = bool(rng.integers(2))
            for r, c, h, w in template:
                communities.append({"street": (cx // CELLS_PER_STREET, cy // CELLS_PER_STREET),
                                    "blocks": _community_blocks(cx, cy, flip, r, c, h, w)})
    return communities


def _community_blocks(cx: int, cy: int, flip: bool, r: int, c: int, h: int, w: int) -> list[tuple[int, int]]:
    """The blocks of one community of a template (rows r..r+h, columns c..c+w of the cell
    cx, cy), in the order a grid walks them."""
    blocks = []
    for k, rr in enumerate(range(r, r + h)):
        cols = list(range(c, c + w))
        if k % 2 == 1:
            cols.reverse()
        for cc in cols:
            # template rows count from the top of the cell; flip mirrors it
            row = rr if flip else BLOCKS_PER_CELL - 1 - rr
            blocks.append((cx * BLOCKS_PER_CELL + cc, cy * BLOCKS_PER_CELL + row))
    # traverse rows bottom to top so a grid can leave a block through its top
    rows = sorted({b[1] for b in blocks})
    ordered = []
    for k, row in enumerate(rows):
        in_row = sorted(b for b in blocks if b[1] == row)
        ordered.extend(in_row if k % 2 == 0 else in_row[::-1])
    return ordered


# ---- blocks: compounds, buildings, neighbourhood cells ------------------------------

def _fill_blocks(rng: np.random.Generator, lattice: Lattice, communities: list[Rec],
                 progress: Callable[[str, int, int], None],
                 ) -> tuple[list[Rec], list[Rec], list[Rec], dict[tuple[int, int], Rec]]:
    """Every block cut into compounds and filled with buildings and neighbourhood cells: the
    compounds, buildings and cells, and per block its corners and compounds."""
    compounds: list[Rec] = []
    buildings: list[Rec] = []
    hoods: list[Rec] = []
    block_info: dict[tuple[int, int], Rec] = {}
    total_blocks = lattice.nx * lattice.ny
    lone_blocks = {c["blocks"][0] for c in communities if len(c["blocks"]) == 1}
    for n_block, (bi, bj) in enumerate((i, j) for j in range(lattice.ny) for i in range(lattice.nx)):
        if n_block % 500 == 0:
            progress("blocks", n_block, total_blocks)
        corners = lattice.corners(bi, bj)
        width = float(np.linalg.norm(corners[1] - corners[0]))
        height = float(np.linalg.norm(corners[3] - corners[0]))
        kind = rng.choice(["modern", "old", "mixed", "park"], p=[0.45, 0.3, 0.2, 0.05])
        if kind == "park" and (bi, bj) in lone_blocks:
            kind = "old"  # a community is never all park
        block_compounds = []
        for u0, u1, ckind in _block_parts(rng, kind):
            comp: Rec = {"block": (bi, bj), "u": (u0, u1), "kind": ckind, "rows": [],
                         "quad": quad(corners, u0, u1, 0.0, 1.0)}
            if ckind != "nonres":
                _fill_compound(rng, comp, corners, width * (u1 - u0), height, buildings, hoods)
            comp["households"] = sum(r["households"] for r in comp["rows"])
            compounds.append(comp)
            block_compounds.append(comp)
        block_info[(bi, bj)] = {"corners": corners, "compounds": block_compounds}
    progress("blocks", total_blocks, total_blocks)
    return compounds, buildings, hoods, block_info


def _block_parts(rng: np.random.Generator, kind: str) -> list[tuple[float, float, str]]:
    """A block of `kind` cut across u into compounds: (u0, u1, kind of the compound)."""
    if kind == "park":
        return [(0.0, 1.0, "nonres")]
    if kind == "mixed":
        cut = float(rng.uniform(0.3, 0.45))
        return [(0.0, cut, "nonres"), (cut, 1.0, "modern")] if rng.integers(2) else \
            [(0.0, 1 - cut, "modern"), (1 - cut, 1.0, "nonres")]
    n = int(rng.integers(1, 3)) if kind == "modern" else int(rng.integers(2, 4))
    cuts = split_even(0.0, 1.0, n)
    cuts = [cuts[0]] + [c + float(rng.uniform(-0.08, 0.08)) for c in cuts[1:-1]] + [cuts[-1]]
    return [(cuts[k], cuts[k + 1], kind) for k in range(n)]


def _fill_compound(rng: np.random.Generator, comp: Rec, corners: np.ndarray, width_m: float, height_m: float,
                   buildings: list[Rec], hoods: list[Rec]) -> None:
    """Lay rows of buildings in a compound and cut it into neighbourhood cells."""
    u0: float = comp["u"][0]
    u1: float = comp["u"][1]
    margin = 10.0
    b_kind, depth, pitch, length, entrance_len = _building_type(rng, comp["kind"])
    usable_h = height_m - 2 * margin
    n_rows = max(1, int(usable_h // pitch))
    row_edges = split_even(0.0, 1.0, n_rows)  # band edges in v

    def to_u(m: float) -> float:
        return u0 + (u1 - u0) * m / width_m

    for r in range(n_rows):
        bv0, bv1 = row_edges[r], row_edges[r + 1]
        band_m = (bv1 - bv0) * height_m
        centre_v = (bv0 + bv1) / 2
        half = min(depth, band_m - 2 * margin) / 2 / height_m
        # buildings along u inside the margin
        gap = float(rng.uniform(10, 20))
        span = width_m - 2 * margin
        lens = _building_lengths(rng, span, gap, length)
        if not lens:
            continue  # too narrow for any building: no rows anywhere in this compound
        floors = _floors(rng, b_kind, len(lens))
        per_floor = [2 if b_kind != "walkup" or rng.random() < 0.7 else 3 for _ in lens]
        entrances = [max(1, int(round(blen / entrance_len))) for blen in lens]
        hh = [f * p * e for f, p, e in zip(floors, per_floor, entrances, strict=True)]
        while sum(hh) > ROW_MAX and len(lens) > 1:
            for lst in (lens, floors, per_floor, entrances, hh):
                lst.pop()
        used = sum(lens) + gap * (len(lens) - 1)
        start = margin + (span - used) / 2
        row: Rec = {"band": (bv0, bv1), "households": 0, "cells": []}
        x = start
        b_edges = []
        for blen in lens:
            b_edges.append((x, x + blen))
            x += blen + gap
        # cell edges (metres from the compound's left edge): gap midpoints
        cell_edges = [0.0] + [(b_edges[k][1] + b_edges[k + 1][0]) / 2 for k in range(len(b_edges) - 1)] + [width_m]
        for k, (bx0, bx1) in enumerate(b_edges):
            b_uv = (to_u(bx0), to_u(bx1), centre_v - half, centre_v + half)
            building: Rec = {
                "compound": comp, "quad": quad(corners, *b_uv), "kind": b_kind, "floors": floors[k],
                "entrances": entrances[k], "per_floor": per_floor[k], "households": hh[k],
                "population": int(round(hh[k] * rng.uniform(2.3, 3.0))), "hoods": [],
            }
            buildings.append(building)
            # neighbourhoods: runs of entrances with at most 80 households
            e_hh = floors[k] * per_floor[k]
            e_len = (bx1 - bx0) / entrances[k]
            groups = _entrance_runs(entrances[k], e_hh)
            for g, group in enumerate(groups):
                left = cell_edges[k] if g == 0 else bx0 + group[0] * e_len
                right = cell_edges[k + 1] if g == len(groups) - 1 else bx0 + (group[-1] + 1) * e_len
                hood: Rec = {
                    "compound": comp, "building": building, "row": row, "entrances": (group[0] + 1, group[-1] + 1),
                    "households": e_hh * len(group),
                    "quad": quad(corners, to_u(left), to_u(right), bv0, bv1),
                }
                hood["population"] = int(round(hood["households"] * rng.uniform(2.3, 3.0)))
                hoods.append(hood)
                building["hoods"].append(hood)
                row["cells"].append(hood)
        row["households"] = sum(hh)
        row["quad"] = quad(corners, u0, u1, bv0, bv1)
        comp["rows"].append(row)


def _building_type(rng: np.random.Generator, kind: str) -> tuple[str, float, float, tuple[int, int], float]:
    """The buildings of a compound of `kind`: their kind, depth and row pitch (m), the range
    their lengths are drawn from (m) and the length of one entrance (m)."""
    if kind == "old":
        return "walkup", 11.0, 26.0, (36, 60), 12.0
    b_kind = "tower" if rng.random() < 0.45 else "slab"
    depth, pitch = (24.0, 55.0) if b_kind == "tower" else (14.0, 42.0)
    length = (24, 30) if b_kind == "tower" else (40, 66)
    entrance_len = 30.0 if b_kind == "tower" else 20.0
    return b_kind, depth, pitch, length, entrance_len


def _building_lengths(rng: np.random.Generator, span: float, gap: float, length: tuple[int, int]) -> list[float]:
    """The lengths of one row's buildings, `gap` apart, drawn until the next would not fit in
    `span`; when none fits, one as long as fits, or none where even the shortest cannot."""
    lens: list[float] = []
    pos = 0.0
    while True:
        blen = float(rng.uniform(*length))
        if pos + blen > span:
            break
        lens.append(blen)
        pos += blen + gap
    if not lens and span >= length[0]:
        lens = [min(span, float(length[1]))]  # every band of a compound gets buildings
    return lens


def _floors(rng: np.random.Generator, b_kind: str, n: int) -> list[int]:
    """The floors of n buildings of `b_kind`."""
    if b_kind == "walkup":
        return [int(rng.integers(5, 8)) for _ in range(n)]
    if b_kind == "slab":
        return [int(rng.integers(11, 27)) for _ in range(n)]
    return [int(rng.integers(18, 34)) for _ in range(n)]


def _entrance_runs(entrances: int, e_hh: int) -> list[list[int]]:
    """A building's entrances (0..entrances-1) in runs of at most 80 households (at least one
    entrance each)."""
    groups: list[list[int]] = []
    run: list[int] = []
    for e in range(entrances):
        if run and (len(run) + 1) * e_hh > 80:
            groups.append(run)
            run = []
        run.append(e)
    groups.append(run)
    return groups


def _order_key(geom: Any, band: float = 150.0) -> tuple[int, float]:
    """Numbering order west to east, then north to south (rows of `band` metres)."""
    c = geom.centroid
    return (-math.floor(c.y / band), c.x)


def _assemble(lattice: Lattice, communities: list[Rec], compounds: list[Rec], buildings: list[Rec],
              hoods: list[Rec], county: str, centre: tuple[float, float], names: Names, rng: np.random.Generator,
              streets_x: int, streets_y: int, progress: Callable[[str, int, int], None]) -> District:
    _outline(lattice, communities, compounds, buildings, hoods, progress)

    # ---- streets and codes ---------------------------------------------------------
    rows: dict[str, list[Rec]] = {lv: [] for lv in ("street", "community", "grid", "compound", "neighbourhood",
                                                    "building")}
    for s_seq, street in enumerate(_streets(communities), start=1):
        _street_rows(rows, street, s_seq, county, names, rng)

    rows["road"] = _roads(lattice, compounds, names)
    return District(_to_wgs84(rows, centre))


def _outline(lattice: Lattice, communities: list[Rec], compounds: list[Rec], buildings: list[Rec],
             hoods: list[Rec], progress: Callable[[str, int, int], None]) -> None:
    """The geometry of everything, in metres: compounds, buildings and neighbourhood cells, and
    each community's outline and its grids'."""
    for comp in compounds:
        comp["geom"] = Polygon(comp["quad"])
    for b in buildings:
        b["geom"] = Polygon(b["quad"])
    for h in hoods:
        h["geom"] = Polygon(h["quad"])
    block_geom = {(bi, bj): Polygon(lattice.corners(bi, bj)) for bj in range(lattice.ny) for bi in range(lattice.nx)}
    for n_comm, comm in enumerate(communities):
        comm["geom"] = shapely.union_all([block_geom[b] for b in comm["blocks"]], grid_size=SNAP)
        comm["grid_geoms"] = [
            shapely.union_all([Polygon(p["quad"]) for p in grid], grid_size=SNAP)
            for grid in comm["grids"]
        ]
        if n_comm % 200 == 0:
            progress("outlines", n_comm, len(communities))


def _streets(communities: list[Rec]) -> list[Rec]:
    """The streets (key, outline, communities), in numbering order."""
    street_groups: dict[tuple[int, int], list[Rec]] = {}
    for comm in communities:
        street_groups.setdefault(comm["street"], []).append(comm)
    street_list = []
    for key, comms in street_groups.items():
        geom = shapely.union_all([c["geom"] for c in comms], grid_size=SNAP)
        street_list.append({"key": key, "geom": geom, "communities": comms})
    street_list.sort(key=lambda s: _order_key(s["geom"], 1500.0))
    return street_list


def _street_rows(rows: dict[str, list[Rec]], street: Rec, s_seq: int, county: str, names: Names,
                 rng: np.random.Generator) -> None:
    """Name and number a street and everything in it, adding their rows."""
    s_name = names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "街道")
    s_code = codes.street_code(county, s_seq)
    street_hh = 0
    street["communities"].sort(key=lambda c: _order_key(c["geom"], 400.0))
    for c_seq, comm in enumerate(street["communities"], start=1):
        street_hh += _community_rows(rows, comm, c_seq, s_code, names, rng)
    rows["street"].append({
        "code": s_code, "name": s_name, "households": street_hh,
        "population": sum(r["population"] for r in rows["community"] if r["street_code"] == s_code),
        "geom": street["geom"],
    })


def _community_rows(rows: dict[str, list[Rec]], comm: Rec, c_seq: int, s_code: str, names: Names,
                    rng: np.random.Generator) -> int:
    """Name and number a community, its grids and compounds, adding their rows; its households."""
    c_name = names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "社区")
    c_code = codes.community_code(s_code, c_seq)
    comm_hh: int = sum(c["households"] for c in comm["compounds"])
    comm_pop = sum(h["population"] for c in comm["compounds"] for r in c["rows"] for h in r["cells"])
    rows["community"].append({"code": c_code, "name": c_name, "households": comm_hh,
                              "population": comm_pop, "street_code": s_code, "geom": comm["geom"],
                              "blocks": len(comm["blocks"])})
    # grids numbered west to east, then north to south
    order = sorted(range(len(comm["grids"])), key=lambda k: _order_key(comm["grid_geoms"][k]))
    for g_seq, k in enumerate(order, start=1):
        grid = comm["grids"][k]
        g_code = codes.grid_code(c_code, g_seq)
        g_cells = [h for piece in grid for r in piece["rows"] for h in r["cells"]]
        for h in g_cells:
            h["grid_code"] = g_code
            h["building"]["grid_code"] = g_code
        rows["grid"].append({
            "code": g_code, "name": f"{c_name}第{g_seq}网格",
            "households": sum(h["households"] for h in g_cells),
            "population": sum(h["population"] for h in g_cells),
            "community_code": c_code, "geom": comm["grid_geoms"][k],
        })
    comps = sorted(comm["compounds"], key=lambda c: _order_key(c["geom"], 100.0))
    for p_seq, comp in enumerate(comps, start=1):
        _compound_rows(rows, comp, codes.compound_code(c_code, p_seq), c_code, names, rng)
    return comm_hh


def _compound_rows(rows: dict[str, list[Rec]], comp: Rec, p_code: str, c_code: str, names: Names,
                   rng: np.random.Generator) -> None:
    """Name a compound and number its buildings and neighbourhoods, adding their rows."""
    nkind, p_name = _compound_kind(comp["kind"], names, rng)
    comp_hoods = [h for r in comp["rows"] for h in r["cells"]]
    by_id: dict[int, Rec] = {}
    for r in comp["rows"]:
        for h in r["cells"]:
            by_id.setdefault(id(h["building"]), h["building"])
    comp_buildings = list(by_id.values())
    rows["compound"].append({
        "code": p_code, "name": p_name, "households": comp["households"],
        "population": sum(h["population"] for h in comp_hoods), "community_code": c_code,
        "kind": nkind, "buildings": len(comp_buildings), "geom": comp["geom"],
    })
    comp_buildings.sort(key=lambda b: _order_key(b["geom"], 30.0))
    for b_seq, b in enumerate(comp_buildings, start=1):
        b["code"] = codes.building_code(p_code, b_seq)
        b["name"] = f"{p_name}{b_seq}栋"
        b["seq"] = b_seq
        rows["building"].append({
            "code": b["code"], "name": b["name"], "households": b["households"],
            "population": b["population"], "compound_code": p_code, "grid_code": b["grid_code"],
            "kind": b["kind"], "floors": b["floors"], "height_m": round(b["floors"] * 3.0, 1),
            "entrances": b["entrances"], "households_per_floor": b["per_floor"] * b["entrances"],
            "geom": b["geom"],
        })
    comp_hoods.sort(key=lambda h: (h["building"]["seq"], h["entrances"][0]))
    for n_seq, h in enumerate(comp_hoods, start=1):
        e0, e1 = h["entrances"]
        units = f"{e0}单元" if e0 == e1 else f"{e0}-{e1}单元"
        rows["neighbourhood"].append({
            "code": codes.neighbourhood_code(p_code, n_seq),
            "name": f"{h['building']['name']}{units}邻里",
            "households": h["households"], "population": h["population"],
            "compound_code": p_code, "grid_code": h["grid_code"],
            "building_code": h["building"]["code"], "geom": h["geom"],
        })


def _compound_kind(kind: str, names: Names, rng: np.random.Generator) -> tuple[str, str]:
    """The kind a compound of `kind` is stored as, and a name for it."""
    if kind == "nonres":
        nkind, suffix = NONRES[int(rng.integers(len(NONRES)))]
        return nkind, names.unique(lambda: names.pick(WORDS) + suffix)
    if kind == "old":
        return "open_block", names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "片区")
    return "gated", names.unique(lambda: names.pick(WORDS) + names.pick(ESTATE))


def _roads(lattice: Lattice, compounds: list[Rec], names: Names) -> list[Rec]:
    """Roads along the lattice lines, and lanes inside compounds between rows of buildings."""
    road_rows = []
    for i in range(lattice.nx + 1):
        pts = [lattice.node(i, j) for j in range(lattice.ny + 1)]
        arterial = bool(lattice.x_arterial[i])
        road_rows.append({"code": f"R-NS-{i:03d}", "kind": "arterial" if arterial else "local",
                          "name": names.pick(WORDS) + ("大道" if arterial else "路"), "geom": LineString(pts)})
    for j in range(lattice.ny + 1):
        pts = [lattice.node(i, j) for i in range(lattice.nx + 1)]
        arterial = bool(lattice.y_arterial[j])
        road_rows.append({"code": f"R-EW-{j:03d}", "kind": "arterial" if arterial else "local",
                          "name": names.pick(WORDS) + ("大道" if arterial else "街"), "geom": LineString(pts)})
    # lanes inside compounds, between rows of buildings (小区内部道路)
    lane = 0
    for comp in compounds:
        for row in comp["rows"][:-1]:
            lane += 1
            road_rows.append({"code": f"R-L-{lane:04d}", "kind": "lane", "name": "小区内部路",
                              "geom": LineString([row["quad"][3], row["quad"][2]])})
    return road_rows


def _to_wgs84(rows: dict[str, list[Rec]], centre: tuple[float, float]) -> dict[str, gpd.GeoDataFrame]:
    """Each layer's rows as a GeoDataFrame in WGS84 (the plane is a transverse Mercator on
    `centre`); polygons as MultiPolygons."""
    plane = pyproj.CRS.from_proj4(
        f"+proj=tmerc +lat_0={centre[1]} +lon_0={centre[0]} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    )
    to_lonlat = pyproj.Transformer.from_crs(plane, 4326, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_lonlat.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    layers = {}
    for name, recs in rows.items():
        geoms = np.array([r.pop("geom") for r in recs], dtype=object)
        geoms = shapely.transform(geoms, project)
        if name != "road":
            geoms = np.array([g if g.geom_type == "MultiPolygon" else shapely.multipolygons([g])
                              for g in geoms], dtype=object)
        layers[name] = gpd.GeoDataFrame(recs, geometry=list(geoms), crs=4326)
    return layers
