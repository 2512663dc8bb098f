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

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from shapely.geometry import LineString, Polygon

from geo.sample.layout import BLOCKS_PER_CELL, Lattice, Names, quad, split_even
from geo.units import codes

CENTRE = (114.30, 30.55)
DEFAULT_COUNTY = "420199"  # a made-up county code in Wuhan's range (4201xx), not a real district
CELLS_PER_STREET = 2  # a street is 2 x 2 arterial cells
SAMPLE_CELLS = 16  # scale 1.0: 4 streets, ~50 communities, ~320 grids
GRIDS_PER_SCALE = 320
GRID_MAX = 500
GRID_MIN = 300
ROW_MAX = 450
PIECE_MAX = 220  # a compound above this is cut into rows of buildings for grids  # a row of buildings never holds more than this, so grids can end at any row

WORDS = ["东湖", "紫阳", "梅苑", "桃源", "丹枫", "晴川", "翠微", "凤凰", "白沙", "黄鹤", "长春", "积玉",
         "复兴", "南湖", "珞珈", "首义", "楚河", "沙湖", "水杉", "桂园", "临江", "月湖", "琴台", "江滩",
         "青石", "杨柳", "荷塘", "石门", "龙泉", "明珠", "锦绣", "和平", "友谊", "新华", "民主", "建设"]
PLACE = ["路", "湖", "山", "园", "桥", "门", "港", "洲", "苑", "坊", "岭", "里"]
ESTATE = ["花园", "小区", "家园", "苑", "新村", "公寓", "名都", "华府", "雅居", "城"]
NONRES = [("school", "小学"), ("park", "公园"), ("market", "农贸市场"), ("school", "中学"), ("clinic", "社区卫生服务中心")]
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

    # ---- communities: templates of blocks inside each arterial cell -------------
    communities = []  # dicts: street (sx, sy), blocks [(bi, bj)] in traversal order
    weights = np.array([w for _, w in TEMPLATES], dtype=float)
    for cy in range(cells_y):
        for cx in range(cells_x):
            template = TEMPLATES[int(rng.choice(len(TEMPLATES), p=weights / weights.sum()))][0]
            flip = bool(rng.integers(2))
            for r, c, h, w in template:
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
                communities.append({"street": (cx // CELLS_PER_STREET, cy // CELLS_PER_STREET),
                                    "blocks": ordered})

    # ---- blocks: compounds, buildings, neighbourhood cells --------------------
    compounds, buildings, hoods = [], [], []
    block_info: dict[tuple[int, int], dict] = {}
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
        if kind == "park":
            parts = [(0.0, 1.0, "nonres")]
        elif kind == "mixed":
            cut = float(rng.uniform(0.3, 0.45))
            parts = [(0.0, cut, "nonres"), (cut, 1.0, "modern")] if rng.integers(2) else \
                [(0.0, 1 - cut, "modern"), (1 - cut, 1.0, "nonres")]
        else:
            n = int(rng.integers(1, 3)) if kind == "modern" else int(rng.integers(2, 4))
            cuts = split_even(0.0, 1.0, n)
            cuts = [cuts[0]] + [c + float(rng.uniform(-0.08, 0.08)) for c in cuts[1:-1]] + [cuts[-1]]
            parts = [(cuts[k], cuts[k + 1], kind) for k in range(n)]
        block_compounds = []
        for u0, u1, ckind in parts:
            comp = {"block": (bi, bj), "u": (u0, u1), "kind": ckind, "rows": [],
                    "quad": quad(corners, u0, u1, 0.0, 1.0)}
            if ckind != "nonres":
                _fill_compound(rng, comp, corners, width * (u1 - u0), height, buildings, hoods)
            comp["households"] = sum(r["households"] for r in comp["rows"])
            compounds.append(comp)
            block_compounds.append(comp)
        block_info[(bi, bj)] = {"corners": corners, "compounds": block_compounds}
    progress("blocks", total_blocks, total_blocks)

    # ---- grids: runs of pieces along each community's traversal ----------------
    for n_comm, comm in enumerate(communities):
        comm["compounds"] = [c for b in comm["blocks"] for c in block_info[b]["compounds"]]
        comm["grids"] = _draw_grids(rng, comm, block_info)
        if n_comm % 200 == 0:
            progress("grids", n_comm, len(communities))
    progress("grids", len(communities), len(communities))
    return _assemble(lattice, communities, compounds, buildings, hoods, county, centre, names, rng,
                     streets_x, streets_y, progress)


def _pieces(comm: dict, block_info: dict) -> list[dict]:
    """The community cut into pieces a grid takes whole, in an order where each
    piece touches the one before it (so a run of pieces is contiguous)."""
    blocks = comm["blocks"]
    pieces = []
    rightward = True
    pos = "bottom"  # where, vertically, the last piece touched the next compound
    for k, block in enumerate(blocks):
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        prev = blocks[k - 1] if k else None
        if nxt is not None and nxt[1] == block[1]:
            rightward = nxt[0] > block[0]
        elif prev is not None and prev[1] == block[1]:
            rightward = block[0] > prev[0]
        elif prev is not None:
            rightward = not rightward
        if prev is not None and prev[1] != block[1]:
            pos = "bottom"  # entered from below
        in_block = block_info[block]["compounds"]
        for comp in (in_block if rightward else in_block[::-1]):
            if comp["households"] > PIECE_MAX and len(comp["rows"]) > 1:
                rows = comp["rows"] if pos != "top" else comp["rows"][::-1]
                for row in rows:
                    pieces.append({"comp": comp, "rows": [row], "households": row["households"],
                                   "quad": row["quad"]})
                pos = "top" if pos != "top" else "bottom"
            else:
                pieces.append({"comp": comp, "rows": list(comp["rows"]),
                               "households": comp["households"], "quad": comp["quad"]})
                pos = "any" if pos == "any" else pos
    return pieces


def _draw_grids(rng, comm: dict, block_info: dict) -> list[list[dict]]:
    """Group the community's pieces into grids of ~300-500 households, each contiguous."""
    pieces = _pieces(comm, block_info)
    for piece in pieces:
        piece["geom"] = Polygon(piece["quad"])
    n = len(pieces)
    touches = [True] + [
        a["geom"].buffer(0.05, quad_segs=1).intersection(b["geom"]).area > 0.05
        for a, b in zip(pieces, pieces[1:])
    ]
    hh = np.concatenate([[0], np.cumsum([p["households"] for p in pieces])])
    target = float(rng.uniform(400, 440))

    def cost(i: int, j: int) -> float:
        """Cost of one grid made of pieces i..j-1."""
        if not all(touches[i + 1:j]):
            return 1e6
        total = hh[j] - hh[i]
        if GRID_MIN <= total <= GRID_MAX:
            return ((total - target) / 100.0) ** 2
        return 10.0 + (GRID_MIN - total if total < GRID_MIN else total - GRID_MAX) / 10.0

    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if hh[j] - hh[i] > 3 * GRID_MAX:
                break
            c = best[i] + cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    grids, j = [], n
    while j > 0:
        grids.append(pieces[cut[j]:j])
        j = cut[j]
    grids.reverse()
    # a run that turned a corner badly falls apart: each part becomes a grid of its own,
    # and crumbs join the neighbour they share most boundary with
    out: list[list[dict]] = []
    for grid in grids:
        union = shapely.union_all([p["geom"] for p in grid], grid_size=0.001)
        if union.geom_type == "Polygon":
            out.append(grid)
            continue
        parts = list(union.geoms)
        groups = [[] for _ in parts]
        for piece in grid:
            probe = piece["geom"].representative_point()
            k = int(np.argmin([part.distance(probe) for part in parts]))
            groups[k].append(piece)
        out.extend(g for g in groups if g)
    changed = True
    while changed and len(out) > 1:
        changed = False
        for k, grid in enumerate(out):
            hh = sum(p["households"] for p in grid)
            if hh >= GRID_MIN // 2:
                continue
            mine = shapely.union_all([p["geom"] for p in grid], grid_size=0.001)
            best, best_len = None, 0.5
            for j, other in enumerate(out):
                if j == k:
                    continue
                theirs = shapely.union_all([p["geom"] for p in other], grid_size=0.001)
                shared = mine.boundary.intersection(theirs.boundary).length
                if shared > best_len:
                    best, best_len = j, shared
            if best is not None:
                out[best].extend(grid)
                del out[k]
                changed = True
                break
    return out


def _fill_compound(rng, comp, corners, width_m, height_m, buildings, hoods) -> None:
    """Lay rows of buildings in a compound and cut it into neighbourhood cells."""
    u0, u1 = comp["u"]
    kind = comp["kind"]
    margin = 10.0
    if kind == "old":
        b_kind, depth, pitch, length, entrance_len = "walkup", 11.0, 26.0, (36, 60), 12.0
    else:
        b_kind = "tower" if rng.random() < 0.45 else "slab"
        depth, pitch = (24.0, 55.0) if b_kind == "tower" else (14.0, 42.0)
        length = (24, 30) if b_kind == "tower" else (40, 66)
        entrance_len = 30.0 if b_kind == "tower" else 20.0
    usable_h = height_m - 2 * margin
    n_rows = max(1, int(usable_h // pitch))
    row_edges = split_even(0.0, 1.0, n_rows)  # band edges in v
    for r in range(n_rows):
        bv0, bv1 = row_edges[r], row_edges[r + 1]
        band_m = (bv1 - bv0) * height_m
        centre_v = (bv0 + bv1) / 2
        half = min(depth, band_m - 2 * margin) / 2 / height_m
        # buildings along u inside the margin
        gap = float(rng.uniform(10, 20))
        span = width_m - 2 * margin
        lens, pos = [], 0.0
        while True:
            blen = float(rng.uniform(*length))
            if pos + blen > span:
                break
            lens.append(blen)
            pos += blen + gap
        if not lens:
            if span < length[0]:
                continue  # too narrow for any building: no rows anywhere in this compound
            lens = [min(span, float(length[1]))]  # every band of a compound gets buildings
        if b_kind == "walkup":
            floors = [int(rng.integers(5, 8)) for _ in lens]
        elif b_kind == "slab":
            floors = [int(rng.integers(11, 27)) for _ in lens]
        else:
            floors = [int(rng.integers(18, 34)) for _ in lens]
        per_floor = [2 if b_kind != "walkup" or rng.random() < 0.7 else 3 for _ in lens]
        entrances = [max(1, int(round(blen / entrance_len))) for blen in lens]
        hh = [f * p * e for f, p, e in zip(floors, per_floor, entrances)]
        while sum(hh) > ROW_MAX and len(lens) > 1:
            for lst in (lens, floors, per_floor, entrances, hh):
                lst.pop()
        used = sum(lens) + gap * (len(lens) - 1)
        start = margin + (span - used) / 2
        row = {"band": (bv0, bv1), "households": 0, "cells": []}
        x = start
        b_edges = []
        for blen in lens:
            b_edges.append((x, x + blen))
            x += blen + gap
        # cell edges (metres from the compound's left edge): gap midpoints
        cell_edges = [0.0] + [(b_edges[k][1] + b_edges[k + 1][0]) / 2 for k in range(len(b_edges) - 1)] + [width_m]
        to_u = lambda m: u0 + (u1 - u0) * m / width_m  # noqa: E731
        for k, (bx0, bx1) in enumerate(b_edges):
            b_uv = (to_u(bx0), to_u(bx1), centre_v - half, centre_v + half)
            building = {
                "compound": comp, "quad": quad(corners, *b_uv), "kind": b_kind, "floors": floors[k],
                "entrances": entrances[k], "per_floor": per_floor[k], "households": hh[k],
                "population": int(round(hh[k] * rng.uniform(2.3, 3.0))), "hoods": [],
            }
            buildings.append(building)
            # neighbourhoods: runs of entrances with at most 80 households
            e_hh = floors[k] * per_floor[k]
            e_len = (bx1 - bx0) / entrances[k]
            groups, run = [], []
            for e in range(entrances[k]):
                if run and (len(run) + 1) * e_hh > 80:
                    groups.append(run)
                    run = []
                run.append(e)
            groups.append(run)
            for g, group in enumerate(groups):
                left = cell_edges[k] if g == 0 else bx0 + group[0] * e_len
                right = cell_edges[k + 1] if g == len(groups) - 1 else bx0 + (group[-1] + 1) * e_len
                hood = {
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


def _order_key(geom, band: float = 150.0):
    """Numbering order west to east, then north to south (rows of `band` metres)."""
    c = geom.centroid
    return (-math.floor(c.y / band), c.x)


def _assemble(lattice, communities, compounds, buildings, hoods, county, centre, names, rng,
              streets_x, streets_y, progress) -> District:
    grid_size = 0.001  # snap unions to 1 mm so shared edges stay shared

    def poly(quad) -> Polygon:
        return Polygon(quad)

    # geometry of everything, in metres
    for comp in compounds:
        comp["geom"] = poly(comp["quad"])
    for b in buildings:
        b["geom"] = poly(b["quad"])
    for h in hoods:
        h["geom"] = poly(h["quad"])
    block_geom = {(bi, bj): poly(lattice.corners(bi, bj)) for bj in range(lattice.ny) for bi in range(lattice.nx)}
    for n_comm, comm in enumerate(communities):
        comm["geom"] = shapely.union_all([block_geom[b] for b in comm["blocks"]], grid_size=grid_size)
        comm["grid_geoms"] = [
            shapely.union_all([Polygon(p["quad"]) for p in grid], grid_size=grid_size)
            for grid in comm["grids"]
        ]
        if n_comm % 200 == 0:
            progress("outlines", n_comm, len(communities))

    # ---- streets and codes ---------------------------------------------------------
    street_groups: dict[tuple[int, int], list] = {}
    for comm in communities:
        street_groups.setdefault(comm["street"], []).append(comm)
    street_list = []
    for key, comms in street_groups.items():
        geom = shapely.union_all([c["geom"] for c in comms], grid_size=grid_size)
        street_list.append({"key": key, "geom": geom, "communities": comms})
    street_list.sort(key=lambda s: _order_key(s["geom"], 1500.0))

    rows = {lv: [] for lv in ("street", "community", "grid", "compound", "neighbourhood", "building")}
    for s_seq, street in enumerate(street_list, start=1):
        s_name = names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "街道")
        s_code = codes.street_code(county, s_seq)
        street_hh = 0
        street["communities"].sort(key=lambda c: _order_key(c["geom"], 400.0))
        for c_seq, comm in enumerate(street["communities"], start=1):
            c_name = names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "社区")
            c_code = codes.community_code(s_code, c_seq)
            comm_hh = sum(c["households"] for c in comm["compounds"])
            comm_pop = sum(h["population"] for c in comm["compounds"] for r in c["rows"] for h in r["cells"])
            street_hh += comm_hh
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
                p_code = codes.compound_code(c_code, p_seq)
                if comp["kind"] == "nonres":
                    nkind, suffix = NONRES[int(rng.integers(len(NONRES)))]
                    p_name = names.unique(lambda: names.pick(WORDS) + suffix)
                elif comp["kind"] == "old":
                    nkind = "open_block"
                    p_name = names.unique(lambda: names.pick(WORDS) + names.pick(PLACE) + "片区")
                else:
                    nkind = "gated"
                    p_name = names.unique(lambda: names.pick(WORDS) + names.pick(ESTATE))
                comp_hoods = [h for r in comp["rows"] for h in r["cells"]]
                by_id = {}
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
        rows["street"].append({
            "code": s_code, "name": s_name, "households": street_hh,
            "population": sum(r["population"] for r in rows["community"] if r["street_code"] == s_code),
            "geom": street["geom"],
        })

    # ---- roads along the lattice lines ----------------------------------------------
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
    rows["road"] = road_rows

    # ---- to WGS84 ---------------------------------------------------------------------
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
    return District(layers)
