"""/maps/dispatch: incidents for dispatchers (一屏总览、一图指挥).

The page holds the boundaries (grids, communities, streets) and asks /maps/api/incidents
every few seconds for the incidents that match its filters: their points (clustered and
coloured by state), a heat map binned on the server, open and overdue counts per grid, and
the names and codes of the units they lie in. Above MAX_MARKERS matching incidents it gets
no points, only the heat map and the counts, so the answer stays small however many there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from geo.errors import InvalidInput
from geo.incidents import OPEN_STATES, STATES
from maps import overview, page, units

MAX_MARKERS = 10_000
REFRESH_S = 20
HEAT_CELL_DEG = 0.0004  # ~40 m bins for the heat map
STATE_ZH = {"reported": "待派单", "assigned": "已派单", "in_progress": "处置中", "resolved": "已办结",
            "closed": "已关闭", "rejected": "已驳回", "duplicate": "重复件"}
# one character on each marker (the category at a glance)
GLYPH = {"manhole": "井", "road_damage": "路", "garbage": "垃", "noise": "噪", "water_leak": "水",
         "street_light": "灯", "dispute": "纠", "parking": "停", "illegal_building": "违", "fire_hazard": "火",
         "other": "他"}
WINDOWS = [(None, "全部 all time"), (24, "近24小时 last 24 h"), (24 * 7, "近7天 last 7 days"),
           (24 * 30, "近30天 last 30 days"), (24 * 90, "近90天 last 90 days")]
FIELDS = ("id", "lon", "lat", "state", "category", "overdue", "reported_at", "deadline", "street_id",
          "community_id", "grid_id", "worker", "channel", "description", "unassigned")
CHANNEL_ZH = {"hotline": "热线", "wechat": "微信", "app": "App", "patrol": "巡查", "rider": "骑手", "web": "网页",
              "open311": "Open311", "import": "导入"}


def categories(conn) -> list[dict]:
    rows = conn.execute("SELECT code, name_zh, deadline_hours FROM incident_category ORDER BY code").fetchall()
    return [{"code": c, "zh": zh, "deadline_hours": h, "glyph": GLYPH.get(c, zh[:1])} for c, zh, h in rows]


def _list(text: str | None) -> list[str] | None:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    return items or None


@dataclass
class Filters:
    states: list[str] | None
    categories: list[str] | None
    hours: float | None

    @classmethod
    def parse(cls, conn, state: str | None, category: str | None, hours: float | None) -> "Filters":
        states = _list(state)
        for s in states or ():
            if s not in STATES:
                raise InvalidInput(f"unknown state {s!r}: use one of {', '.join(STATES)}")
        cats = _list(category)
        if cats:
            known = {c["code"] for c in categories(conn)}
            for c in cats:
                if c not in known:
                    raise InvalidInput(f"unknown category {c!r}: use one of {', '.join(sorted(known))}")
        return cls(states, cats, hours)

    def where(self, start: datetime | None, *, with_state: bool = True) -> tuple[str, dict]:
        """SQL over `incident i` and its named parameters (with `open` and `cell` for the queries)."""
        clauses, params = ["true"], {"open": list(OPEN_STATES), "cell": HEAT_CELL_DEG}
        if start is not None:
            clauses.append("i.reported_at >= %(start)s")
            params["start"] = start
        if self.categories:
            clauses.append("i.category = ANY(%(categories)s)")
            params["categories"] = self.categories
        if with_state and self.states:
            clauses.append("i.state = ANY(%(states)s)")
            params["states"] = self.states
        return " AND ".join(clauses), params


_OPEN = "i.state = ANY(%(open)s)"
_OVERDUE = "(i.state = ANY(%(open)s) AND now() > i.deadline)"


def incidents(conn, filters: Filters, limit: int = MAX_MARKERS) -> dict:
    """What the dispatch map shows for these filters (see the module docstring)."""
    now = conn.execute("SELECT now()").fetchone()[0]
    start = now - timedelta(hours=filters.hours) if filters.hours else None
    where, params = filters.where(start)
    total, n_open, n_overdue = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {_OPEN}), count(*) FILTER (WHERE {_OVERDUE}) "
        f"FROM incident i WHERE {where}", params).fetchone()
    rows = []
    if total <= limit:
        rows = conn.execute(
            f"""
            SELECT i.id, ST_X(i.geom), ST_Y(i.geom), i.state, i.category, {_OVERDUE}, i.reported_at, i.deadline,
                   i.street_id, i.community_id, i.grid_id, w.name, i.channel, left(i.description, 140), i.unassigned
            FROM incident i LEFT JOIN worker w ON w.id = i.worker_id
            WHERE {where} ORDER BY i.id
            """, params).fetchall()
    heat = conn.execute(
        f"""
        SELECT round(avg(ST_X(i.geom))::numeric, 6)::float8, round(avg(ST_Y(i.geom))::numeric, 6)::float8, count(*)
        FROM incident i WHERE {where}
        GROUP BY floor(ST_X(i.geom) / %(cell)s), floor(ST_Y(i.geom) / %(cell)s)
        """, params).fetchall()
    # per grid: open and overdue whatever the state filter (open is itself a set of states)
    grid_where, grid_params = filters.where(start, with_state=False)
    grids = conn.execute(
        f"""
        SELECT i.grid_id, count(*) FILTER (WHERE {_OPEN}), count(*) FILTER (WHERE {_OVERDUE}), count(*)
        FROM incident i WHERE {grid_where} AND i.grid_id IS NOT NULL GROUP BY 1
        """, grid_params).fetchall()
    unit_ids = {u for r in rows for u in r[8:11] if u} | {g[0] for g in grids}
    names = {}
    if unit_ids:
        for uid, level, code, name in conn.execute(
                "SELECT DISTINCT ON (unit_id) unit_id, level, code, name FROM unit_version "
                "WHERE unit_id = ANY(%s) ORDER BY unit_id, version DESC", [sorted(unit_ids)]):
            names[uid] = [level, code, name]
    return {
        "now": now, "from": start, "total": total, "open": n_open, "overdue": n_overdue, "limit": limit,
        "too_many": total > limit, "fields": FIELDS,
        "incidents": [[r[0], round(r[1], 7), round(r[2], 7), *r[3:]] for r in rows],
        "heat": [list(h) for h in heat],
        "grids": {g[0]: list(g[1:]) for g in grids},
        "units": names,
    }


def render(conn, *, base: str | None = None, refresh: int = REFRESH_S, max_markers: int = MAX_MARKERS,
           tiles_available: bool = False, threshold: int = overview.TILE_THRESHOLD) -> str:
    configs, data = overview.layer_configs(conn, ("street", "community", "grid"), tiles_available, threshold,
                                           ("street", "community", "grid"))
    config = {
        "levels": configs, "extent": units.extent(conn), "refresh": refresh, "maxMarkers": max_markers,
        "states": [{"key": s, "zh": STATE_ZH[s], "open": s in OPEN_STATES} for s in STATES],
        "categories": categories(conn), "channels": CHANNEL_ZH,
        "windows": [{"hours": h, "label": label} for h, label in WINDOWS],
        "api": {"incidents": "/maps/api/incidents", "incident": "/incidents/", "unit": "/maps/api/units/"},
    }
    plugins = ("markercluster", "heat") + (("vectorgrid",) if any(c["mode"] == "tiles" for c in configs) else ())
    return page.render("dispatch", "事件调度 Dispatch · gridmap", config, data=overview.embed(data),
                       plugins=plugins, base=base)
