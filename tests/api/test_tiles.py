"""Vector tiles over a real HTTP server and the sample district, decoded with the
mapbox-vector-tile package and checked against PostGIS and geo.datums.

Tile coordinates are turned back into positions with PostGIS's own ST_TileEnvelope and
pyproj, not with geo.tiles, so the tile maths is checked too."""

from __future__ import annotations

import math

import httpx
import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import shape

from geo.coords import datums
from geo.db import tiles as tile_queries
from geo.tiles import maths as tiles
from geo.units import levels

CENTRE = (114.30, 30.55)  # the sample district's centre
MARGIN = tiles.BUFFER / tiles.EXTENT
TO_LONLAT = Transformer.from_crs(3857, 4326, always_xy=True)
TO_METRES = Transformer.from_crs(4326, 32650, always_xy=True)  # UTM 50N, metres on the ground


@pytest.fixture
def conn(sample_url):
    with psycopg.connect(sample_url, autocommit=True) as c:
        yield c


def _apply(geom, fn):
    return shapely.transform(geom, lambda xy: np.column_stack(fn(xy[:, 0], xy[:, 1])))


def metres(geom):
    return _apply(geom, TO_METRES.transform)


def envelope(conn, z, x, y, margin=0.0) -> tuple[float, float, float, float]:
    return conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ST_TileEnvelope(%s, %s, %s, margin => %s) e",
        [z, x, y, margin],
    ).fetchone()


def unit_size(conn, z, x, y) -> float:
    """One tile unit, in metres on the ground at the tile's centre."""
    minx, miny, maxx, maxy = envelope(conn, z, x, y)
    lat = TO_LONLAT.transform((minx + maxx) / 2, (miny + maxy) / 2)[1]
    return (maxx - minx) / tiles.EXTENT * math.cos(math.radians(lat))


def lonlat_rect(conn, z, x, y) -> tuple[float, float, float, float]:
    """The tile with its buffer, in lon/lat (a mercator rectangle is a lon/lat rectangle)."""
    minx, miny, maxx, maxy = envelope(conn, z, x, y, MARGIN)
    west, south = TO_LONLAT.transform(minx, miny)
    east, north = TO_LONLAT.transform(maxx, maxy)
    return west, south, east, north


def decode(conn, content: bytes, z: int, x: int, y: int) -> tuple[dict, dict]:
    """The tile's layers (name -> extent, count) and its features by id: (properties, lon/lat geometry)."""
    raw = mapbox_vector_tile.decode(content, default_options={"y_coord_down": True})
    minx, _, maxx, maxy = envelope(conn, z, x, y)
    size = (maxx - minx) / tiles.EXTENT

    def to_lonlat(tx, ty):
        return TO_LONLAT.transform(minx + tx * size, maxy - ty * size)

    layers, features = {}, {}
    for name, layer in raw.items():
        layers[name] = (layer["extent"], len(layer["features"]))
        for f in layer["features"]:
            assert f["id"] not in features, f"feature {f['id']} twice"
            features[f["id"]] = (f["properties"], _apply(shape(f["geometry"]), to_lonlat))
    return layers, features


def stored(conn, level: str, rect, grow: float = 0.0) -> dict[int, dict]:
    """Current units of `level` near a lon/lat rectangle, with what their tile properties must be."""
    parent = levels.PARENTS[level]
    parent_col = levels.PARENT_COLUMNS[parent[0]] if parent else "NULL"
    rows = conn.execute(
        f"SELECT unit_id, code, name, level, households, {parent_col}, ST_AsBinary(geom) FROM unit_version "
        "WHERE level = %s AND valid_to IS NULL AND geom && ST_Expand(ST_MakeEnvelope(%s, %s, %s, %s, 4326), %s)",
        [level, *rect, grow],
    ).fetchall()
    out = {}
    for uid, code, name, lv, households, parent_id, wkb in rows:
        props = {"id": uid, "code": code, "name": name, "level": lv, "households": households,
                 "parent_id": parent_id}
        band = levels.HOUSEHOLD_BANDS.get(lv)
        if band and households is not None:
            props["band"] = "below" if households < band[0] else "above" if households > band[1] else "in"
        out[uid] = {"props": {k: v for k, v in props.items() if v is not None},
                    "geom": shapely.from_wkb(bytes(wkb))}
    return out


def hausdorff_m(a, b) -> float:
    return shapely.hausdorff_distance(metres(a), metres(b))


def assert_drawn_where(drawn, expected, unit: float) -> None:
    """`drawn` (decoded from a tile) lies where `expected` is: no point of it more than two
    tile units away, and the area between them no more than a one-unit strip along the
    boundary. (Not a Hausdorff bound both ways: quantising drops zero-width spikes.)"""
    a, b = metres(drawn), metres(expected)
    assert b.buffer(2 * unit).covers(a), f"drawn {shapely.hausdorff_distance(a, b):.2f} m away"
    assert a.symmetric_difference(b).area <= b.length * unit


def get_tile(client, level, z, x, y, **params) -> httpx.Response:
    return client.get(f"/tiles/{level}/{z}/{x}/{y}.mvt", params=params)


# ---------------------------------------------------------------------------


@pytest.mark.parametrize("level, z", [("grid", 15), ("neighbourhood", 16), ("street", 13)])
def test_a_tile_holds_exactly_the_units_it_meets_with_their_properties(client, conn, level, z):
    x, y = tiles.tile_at(*CENTRE, z)
    response = get_tile(client, level, z, x, y)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layers, features = decode(conn, response.content, z, x, y)
    assert list(layers) == [level] and layers[level][0] == 4096

    # PostGIS, the slow obvious way: every unit of the level projected and met with the tile.
    # A unit whose part in the tile is too thin to hold a disc of one tile unit may collapse
    # when quantised; any thicker part must be there.
    unit = unit_size(conn, z, x, y)
    minx, _, maxx, _ = envelope(conn, z, x, y)
    met = dict(conn.execute(
        "SELECT unit_id, NOT ST_IsEmpty(ST_Buffer(ST_Intersection(ST_Transform(geom, 3857), e), -%s)) "
        "FROM unit_version, ST_TileEnvelope(%s, %s, %s, margin => %s) e "
        "WHERE level = %s AND valid_to IS NULL AND ST_Intersects(ST_Transform(geom, 3857), e)",
        [(maxx - minx) / tiles.EXTENT, z, x, y, MARGIN, level],
    ).fetchall())
    assert len(features) >= (2 if level == "street" else 20)
    assert set(features) <= set(met)
    assert {uid for uid, thick in met.items() if thick} <= set(features)

    rect = lonlat_rect(conn, z, x, y)
    units = stored(conn, level, rect)
    for uid, (props, geom) in features.items():
        assert props == units[uid]["props"]
        assert_drawn_where(geom, shapely.clip_by_rect(units[uid]["geom"], *rect), unit)
        lon, lat = geom.representative_point().coords[0]
        assert units[uid]["geom"].buffer(1e-5).contains(shapely.Point(lon, lat))

    plain = client.get(f"/tiles/{level}/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert decode(conn, plain.content, z, x, y)[1].keys() == features.keys()
    if len(plain.content) >= 1024:
        assert response.headers["content-encoding"] == "gzip"
        assert response.num_bytes_downloaded < len(plain.content)


def test_gcj02_tile_is_moved_by_the_datum_offset(client, conn):
    z = 15
    x, y = tiles.tile_at(*CENTRE, z)
    unit = unit_size(conn, z, x, y)
    rect = lonlat_rect(conn, z, x, y)
    units = stored(conn, "grid", rect, grow=0.02)
    gcj = get_tile(client, "grid", z, x, y, datum="gcj02")
    wgs = get_tile(client, "grid", z, x, y, datum="WGS84")
    assert gcj.status_code == wgs.status_code == 200
    assert gcj.headers["etag"] != wgs.headers["etag"]
    _, moved = decode(conn, gcj.content, z, x, y)
    _, plain = decode(conn, wgs.content, z, x, y)

    # the reference: every stored vertex moved with geo.datums, then cut to the tile
    box = shapely.box(*rect)
    shifted = {uid: _apply(u["geom"], datums.wgs84_to_gcj02) for uid, u in units.items()}
    met = {uid: not metres(g.intersection(box)).buffer(-unit).is_empty
           for uid, g in shifted.items() if g.intersects(box)}
    assert set(moved) <= set(met)
    assert {uid for uid, thick in met.items() if thick} <= set(moved)
    assert set(moved) != set(plain)  # ~500 m is half a z15 tile: other grids come in
    for uid, (props, geom) in moved.items():
        assert props == units[uid]["props"]
        assert_drawn_where(geom, shapely.clip_by_rect(shifted[uid], *rect), unit)

    # a grid wholly inside both tiles: moved by the offset geo.datums gives at its centre
    inner = shapely.box(*rect).buffer(-0.002)
    both = [uid for uid in set(moved) & set(plain)
            if inner.contains(units[uid]["geom"]) and inner.contains(shifted[uid])]
    assert both
    for uid in both:
        c = units[uid]["geom"].centroid
        want = shapely.Point(datums.wgs84_to_gcj02(c.x, c.y))
        offset = metres(c).distance(metres(want))
        assert 300 < offset < 800
        assert metres(moved[uid][1].centroid).distance(metres(want)) <= unit
        assert metres(plain[uid][1].centroid).distance(metres(c)) <= unit


def test_units_smaller_than_a_pixel_are_left_out_at_low_zoom(client, conn):
    z = 11  # below buildings' first zoom, where the API answers 204: the tile query itself
    x, y = tiles.tile_at(*CENTRE, z)
    _, features = decode(conn, tile_queries.render(conn, "building", z, x, y), z, x, y)
    minx, _, maxx, _ = envelope(conn, z, x, y)
    mercator_unit = (maxx - minx) / tiles.EXTENT
    size = dict(conn.execute(
        "SELECT unit_id, greatest(ST_XMax(g) - ST_XMin(g), ST_YMax(g) - ST_YMin(g)) / %s "
        "FROM (SELECT unit_id, ST_Transform(geom, 3857) g FROM unit_version "
        "      WHERE level = 'building' AND valid_to IS NULL) b",
        [mercator_unit],
    ).fetchall())
    small = {uid for uid, s in size.items() if s < tiles.SMALL - 0.5}
    large = {uid for uid, s in size.items() if s > tiles.SMALL + 0.5}
    assert small and large
    assert not small & set(features)
    assert large <= set(features)


def test_empty_tile_is_204_and_bad_input_gets_a_clear_422(client, conn):
    far = get_tile(client, "grid", 14, 0, 0)
    assert far.status_code == 204 and far.content == b""
    assert far.headers["cache-control"] and far.headers["etag"]
    x, y = tiles.tile_at(*CENTRE, 15)
    before = get_tile(client, "grid", 15, x, y, as_of="2000-01-01")
    assert before.status_code == 204
    assert "max-age" in before.headers["cache-control"]

    cases = [
        ("/tiles/parish/15/0/0.mvt", "unknown level 'parish': use one of street, community, grid, compound"),
        ("/tiles/grid/23/0/0.mvt", "z=23 is outside 0..22"),
        ("/tiles/grid/-1/0/0.mvt", "z=-1 is outside 0..22"),
        ("/tiles/grid/ten/0/0.mvt", "z must be a whole number from 0 to 22"),
        ("/tiles/grid/3/8/0.mvt", "x=8 is outside 0..7 at zoom 3"),
        ("/tiles/grid/3/0/-1.mvt", "y=-1 is outside 0..7 at zoom 3"),
        ("/tiles/grid/3/0/1.5.mvt", "y must be a whole number from 0 to 7"),
        (f"/tiles/grid/15/{x}/{y}.mvt?as_of=last+week", "time 'last week' is not ISO 8601"),
        (f"/tiles/grid/15/{x}/{y}.mvt?datum=bd09", "unknown datum 'bd09': use wgs84"),
        (f"/tiles/grid/15/{x}/{y}.mvt?datum=mars", "unknown datum 'mars'"),
    ]
    for path, needle in cases:
        response = client.get(path)
        assert response.status_code == 422, path
        assert needle in response.json()["detail"], (path, response.json())


def test_as_of_serves_the_old_boundary_and_etag_follows_changes_to_the_level(client, conn):
    before = conn.execute("SELECT now()").fetchone()[0].isoformat()
    street = client.get("/units", params={"level": "street", "limit": 1}).json()["features"][0]
    old = shape(street["geometry"])
    z = 13
    x, y = tiles.tile_at(old.centroid.x, old.centroid.y, z)
    unit = unit_size(conn, z, x, y)
    rect = lonlat_rect(conn, z, x, y)
    first = get_tile(client, "street", z, x, y)
    assert first.headers["cache-control"] == "public, no-cache"
    tag = first.headers["etag"]
    again = client.get(f"/tiles/street/{z}/{x}/{y}.mvt", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    gx, gy = tiles.tile_at(*CENTRE, 15)
    grid_tag = get_tile(client, "grid", 15, gx, gy).headers["etag"]

    bigger = old.buffer(0.001)  # ~100 m further out all round
    edit = client.put(f"/units/{street['id']}", json={"version": 1, "geometry": bigger.__geo_interface__})
    assert edit.status_code == 200, edit.text

    now = client.get(f"/tiles/street/{z}/{x}/{y}.mvt", headers={"If-None-Match": tag})
    assert now.status_code == 200 and now.headers["etag"] != tag
    drawn = decode(conn, now.content, z, x, y)[1][street["id"]][1]
    assert_drawn_where(drawn, shapely.clip_by_rect(bigger, *rect), unit)
    assert hausdorff_m(drawn, shapely.clip_by_rect(old, *rect)) > 50

    past = get_tile(client, "street", z, x, y, as_of=before)
    assert past.status_code == 200
    assert past.headers["cache-control"] == "public, no-cache"  # minutes ago: a slow commit may yet land
    drawn = decode(conn, past.content, z, x, y)[1][street["id"]][1]
    assert_drawn_where(drawn, shapely.clip_by_rect(old, *rect), unit)

    # the street edit left the grid level alone; an edit to a grid does not
    unchanged = client.get(f"/tiles/grid/15/{gx}/{gy}.mvt", headers={"If-None-Match": grid_tag})
    assert unchanged.status_code == 304
    grid = client.get("/units", params={"level": "grid", "limit": 1}).json()["features"][0]
    assert client.put(f"/units/{grid['id']}", json={"version": 1, "name": "新名字网格"}).status_code == 200
    changed = client.get(f"/tiles/grid/15/{gx}/{gy}.mvt", headers={"If-None-Match": grid_tag})
    assert changed.status_code == 200 and changed.headers["etag"] != grid_tag


def test_tile_query_finds_units_through_the_gist_index(conn):
    """The envelope is transformed to 4326 once and met with `&&`: the predicate is indexable.
    (Sequential scans are switched off so that the small sample does not hide a query that
    could only scan: such a query would still show a Seq Scan.)"""
    x, y = tiles.tile_at(*CENTRE, 15)
    sql, params = tile_queries.tile_query("grid", 15, x, y)
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0]
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]
    gist = [n for n in nodes if n.get("Index Name", "").startswith("unit_version_geom")]
    assert gist and "&&" in gist[0]["Index Cond"]


def test_tile_maths_agrees_with_postgis_and_the_gcj02_box_holds_the_tile(conn):
    for z, x, y in [(0, 0, 0), (1, 0, 0), (2, 1, 3), (3, 6, 3), (11, 1674, 841), (15, 26787, 13461),
                    (22, 3429290, 1723010)]:
        ours = tiles.mercator_bounds(z, x, y, MARGIN)
        theirs = envelope(conn, z, x, y, MARGIN)
        assert np.allclose(ours, theirs, rtol=0, atol=1e-6)
    for z in range(0, 23):
        x, y = tiles.tile_at(*CENTRE, z)
        west, south, east, north = tiles.lonlat_bounds(z, x, y)
        assert west <= CENTRE[0] < east and south < CENTRE[1] <= north

    # every WGS84 point GCJ-02 moves into a tile lies in the box the gcj02 query reads
    for lon, lat, z in [(114.30, 30.55, 5), (114.30, 30.55, 11), (114.30, 30.55, 18), (121.5, 31.2, 13),
                        (87.6, 43.8, 14), (126.6, 45.8, 16),
                        (72.01, 40.0, 9), (72.004, 40.0, 16), (130.0, 55.8271, 15)]:  # China's box edge
        x, y = tiles.tile_at(lon, lat, z)
        west, south, east, north = tiles.lonlat_bounds(z, x, y, MARGIN)
        gx, gy = np.meshgrid(np.linspace(west, east, 41), np.linspace(south, north, 41))
        wx, wy = datums.gcj02_to_wgs84(gx.ravel(), gy.ravel())
        bx0, by0, bx1, by1 = tiles.gcj02_source_box(z, x, y)
        assert (wx >= bx0).all() and (wx <= bx1).all() and (wy >= by0).all() and (wy <= by1).all()


@pytest.mark.parametrize("level", levels.LEVELS)
def test_a_level_below_its_first_zoom_is_an_empty_tile_that_never_changes(client, level):
    first = levels.MIN_ZOOM[level]
    if first == 0:
        return
    x, y = tiles.tile_at(*CENTRE, first - 1)
    below = get_tile(client, level, first - 1, x, y)
    assert below.status_code == 204 and below.content == b""
    assert below.headers["gridmap-min-zoom"] == str(first)
    assert "immutable" in below.headers["cache-control"]
    x, y = tiles.tile_at(*CENTRE, first)
    assert get_tile(client, level, first, x, y).status_code in (200, 204)


def test_a_tile_url_carrying_the_levels_state_is_immutable_and_served_from_memory(client, conn):
    x, y = tiles.tile_at(*CENTRE, 15)
    state = tile_queries.level_state(conn, "grid")
    conn.commit()
    named = get_tile(client, "grid", 15, x, y, v=state)
    assert named.status_code == 200
    assert named.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = get_tile(client, "grid", 15, x, y, v=state)
    assert again.content == named.content  # the same bytes: kept, not made again
    stale = get_tile(client, "grid", 15, x, y, v="0.0")  # a page from before a commit
    assert stale.headers["cache-control"] == "public, no-cache"
    grid = client.get("/units", params={"level": "grid", "limit": 1}).json()["features"][0]
    assert client.put(f"/units/{grid['id']}", json={"version": 1, "name": "又一个名字"}).status_code == 200
    after = get_tile(client, "grid", 15, x, y, v=state)  # the old URL: now current content, not immutable
    assert after.headers["cache-control"] == "public, no-cache"
    assert tile_queries.level_state(conn, "grid") != state
