"""The index that follows commits (geo/locate/layered.py) answers exactly as an index built
afresh over the boundaries after the same commits, for every sequence of edits: boundary
moves, splits, retirements, renames and recodes, with points on shared edges, on vertices
and within a centimetre of them. And a snapshot on disk answers as the index it saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from geo.locate import snapshot
from geo.locate.layered import Area, Change, Layered
from geo.locate.locator import Locator
from geo.units.levels import LEVELS
from tests.locate_checks import answers, one_by_one

X0, Y0 = 114.30, 30.55
STEP = 0.004  # grids of about 380 m by 440 m


def _city() -> dict[int, dict[str, Any]]:
    """One street, two communities side by side, each 3 x 3 grids (rectangles)."""
    rows: dict[int, dict[str, Any]] = {1: {"unit_id": 1, "level": "street", "code": "S1", "name": "street",
                                           "version": 1, "geom": box(X0, Y0, X0 + 6 * STEP, Y0 + 3 * STEP)}}
    next_id = 2
    for c in range(2):
        cid = next_id
        rows[cid] = {"unit_id": cid, "level": "community", "code": f"C{c}", "name": f"community {c}", "version": 1,
                     "street_id": 1, "geom": box(X0 + 3 * c * STEP, Y0, X0 + (3 * c + 3) * STEP, Y0 + 3 * STEP)}
        next_id += 1
        for i in range(3):
            for j in range(3):
                x = X0 + (3 * c + i) * STEP
                rows[next_id] = {"unit_id": next_id, "level": "grid", "code": f"C{c}G{i}{j}", "name": f"grid {next_id}",
                                 "version": 1, "street_id": 1, "community_id": cid,
                                 "geom": box(x, Y0 + j * STEP, x + STEP, Y0 + (j + 1) * STEP)}
                next_id += 1
    return rows


def _by_level(rows: dict[int, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {level: [] for level in LEVELS}
    for row in rows.values():
        out[row["level"]].append({k: v for k, v in row.items() if k != "level"})
    return out


def _commit(rows: dict[int, dict[str, Any]], kind: str, pick: int, amount: float, next_id: int) -> None:
    """One edit of the kind a planner makes, in place on `rows`."""
    grids = sorted(u for u, r in rows.items() if r["level"] == "grid")
    g = rows[grids[pick % len(grids)]]
    if kind == "rename":
        rows[g["unit_id"]] = {**g, "name": g["name"] + "'", "version": g["version"] + 1}
    elif kind == "recode":
        rows[g["unit_id"]] = {**g, "code": g["code"] + "x", "version": g["version"] + 1}
    elif kind == "move":  # the shared edge with the next grid east in the community moves
        x0, y0, x1, y1 = g["geom"].bounds
        east = [r for r in rows.values() if r["level"] == "grid" and r.get("community_id") == g["community_id"]
                and abs(r["geom"].bounds[0] - x1) < 1e-12 and abs(r["geom"].bounds[1] - y0) < 1e-12
                and abs(r["geom"].bounds[3] - y1) < 1e-12]
        if not east:
            return
        e = east[0]
        ex1 = e["geom"].bounds[2]
        cut = x0 + (ex1 - x0) * (0.2 + 0.6 * amount)
        rows[g["unit_id"]] = {**g, "geom": box(x0, y0, cut, y1), "version": g["version"] + 1}
        rows[e["unit_id"]] = {**e, "geom": box(cut, y0, ex1, y1), "version": e["version"] + 1}
    elif kind == "split":  # the grid becomes two new ones, north and south
        x0, y0, x1, y1 = g["geom"].bounds
        cut = y0 + (y1 - y0) * (0.2 + 0.6 * amount)
        del rows[g["unit_id"]]
        for k, (a, b) in enumerate(((y0, cut), (cut, y1))):
            rows[next_id + k] = {**g, "unit_id": next_id + k, "code": f"{g['code']}s{k}", "version": 1,
                                 "geom": box(x0, a, x1, b)}
    elif kind == "community":  # the community is renamed: a label, no geometry
        c = rows[g["community_id"]]
        rows[c["unit_id"]] = {**c, "name": c["name"] + "'", "version": c["version"] + 1}


def _advance(index: Layered, before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]) -> Layered:
    """What serving processes do after a commit (their database queries, here over rows)."""
    moved: dict[str, list[int]] = {level: [] for level in LEVELS}
    relabelled: dict[str, dict[int, tuple[str, int]]] = {}
    boxes = []
    for unit_id in set(before) | set(after):
        old, new = before.get(unit_id), after.get(unit_id)
        if old == new:
            continue
        level = (old or new or {})["level"]
        same_place = (old is not None and new is not None and old["code"] == new["code"]
                      and old["geom"].equals_exact(new["geom"], 0)
                      and old.get("community_id") == new.get("community_id"))
        if same_place:
            assert new is not None
            relabelled.setdefault(level, {})[unit_id] = (new["name"], new["version"])
            continue
        moved[level].append(unit_id)
        boxes += [r["geom"].bounds for r in (old, new) if r is not None]
    change = Change({lv: np.array(ids, dtype=np.int64) for lv, ids in moved.items() if ids}, relabelled)
    area = Area.of_boxes(np.array(boxes))
    patch = None
    if len(area):
        fetch = shapely.union_all([box(*b) for b in area.boxes()])
        near = {u: r for u, r in after.items() if r["geom"].intersects(fetch)}
        for r in list(near.values()):
            for col in ("street_id", "community_id"):
                if r.get(col):
                    near[r[col]] = after[r[col]]
        patch = Locator.build(_by_level(near), generation=None)
    return index.advance(change, patch, area, (index.generation or 0) + 1)


def _probe_points(rows: dict[int, dict[str, Any]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random points, every vertex, edge midpoints, and points a few millimetres off them."""
    xs = [rng.uniform(X0 - 0.001, X0 + 6 * STEP + 0.001, 300)]
    ys = [rng.uniform(Y0 - 0.001, Y0 + 3 * STEP + 0.001, 300)]
    for r in rows.values():
        c = shapely.get_coordinates(r["geom"])
        mid = (c[:-1] + c[1:]) / 2
        for pts in (c, mid, mid + 3e-8, mid - 3e-8):
            xs.append(pts[:, 0])
            ys.append(pts[:, 1])
    return np.concatenate(xs), np.concatenate(ys)


CHAIN = ("street", "community", "grid")


def _answers(index: Any, x: np.ndarray, y: np.ndarray) -> list[tuple[Any, ...]]:
    return answers(index, x, y, CHAIN)


def _one_by_one(index: Any, x: np.ndarray, y: np.ndarray) -> list[tuple[int | None, ...]]:
    return one_by_one(index, x, y, CHAIN)


EDITS = st.lists(st.tuples(st.sampled_from(["rename", "recode", "move", "split", "community"]),
                           st.integers(0, 40), st.floats(0, 1)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(EDITS, st.integers(0, 2**32 - 1))
def test_a_layered_index_answers_as_an_index_built_afresh(edits: list[tuple[str, int, float]], seed: int) -> None:
    rows = _city()
    index = Layered.over(Locator.build(_by_level(rows), generation=0))
    next_id = 1000
    for kind, pick, amount in edits:
        before = {u: dict(r) for u, r in rows.items()}
        _commit(rows, kind, pick, amount, next_id)
        next_id += 2
        index = _advance(index, before, rows)
        if index.layers > Layered.MAX_LAYERS:
            fetch = shapely.union_all([box(*b) for b in index.total_area().boxes()])
            near = {u: r for u, r in rows.items() if r["geom"].intersects(fetch) or r["level"] != "grid"}
            index = index.compacted(Locator.build(_by_level(near)), index.generation or 0)
    fresh = Locator.build(_by_level(rows), generation=index.generation)
    x, y = _probe_points(rows, np.random.default_rng(seed))
    assert _answers(index, x, y) == _answers(fresh, x, y)
    assert _one_by_one(index, x, y) == _one_by_one(fresh, x, y)
    assert index.size() == fresh.size()


def test_a_rename_adds_no_layer_and_is_read_at_once() -> None:
    rows = _city()
    index = Layered.over(Locator.build(_by_level(rows), generation=0))
    before = {u: dict(r) for u, r in rows.items()}
    _commit(rows, "rename", 4, 0.5, 0)
    renamed = _advance(index, before, rows)
    assert renamed.layers == 0
    gid = sorted(u for u, r in rows.items() if r["level"] == "grid")[4]
    x, y = rows[gid]["geom"].centroid.x, rows[gid]["geom"].centroid.y
    i = renamed.locate_one(x, y)["grid"]
    assert renamed.units["grid"].names[i] == rows[gid]["name"]
    assert renamed.units["grid"].versions[i] == 2
    assert index.units["grid"].names[index.locate_one(x, y)["grid"]] == before[gid]["name"]  # the old one stands


def test_a_snapshot_on_disk_answers_as_the_index_it_saved(tmp_path: Path) -> None:
    rows = _city()
    built = Locator.build(_by_level(rows), generation=7)
    folder = snapshot.save(built, tmp_path / "g7", {"epoch": "e"})
    loaded = snapshot.load(folder)
    assert loaded.generation == 7
    assert isinstance(loaded.indexes["grid"].labels, np.memmap)  # mapped, not read into memory
    x, y = _probe_points(rows, np.random.default_rng(3))
    assert _answers(loaded, x, y) == _answers(built, x, y)
    assert _one_by_one(loaded, x, y) == _one_by_one(built, x, y)
    assert snapshot.manifest(tmp_path / "nothing") is None
