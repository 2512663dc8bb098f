"""The boundary index each serving process keeps for /locate and for intake.

The index is a base and a few layers (geo/locate/layered.py):

- **the base** is a snapshot on disk (geo/locate/snapshot.py), one per database history and
  boundary generation, under GRIDMAP_INDEX_DIR. Every process on the machine maps the same
  files, so the operating system keeps one copy however many workers run, and a process
  starts by mapping it, not by rebuilding. When no snapshot is usable (a new database, a
  restore, changes the log no longer reaches) one is built, by one process at a time (a file
  lock): in this process for a small city, in a child process for a big one, so the build's
  peak memory leaves with the child;
- **a layer** per commit: `current()` checks the boundary generation (geo/db/generation.py)
  on each call; when it moved, the changes since (geo/db/index_feed.py) give the units moved
  and renamed, and only the units around the moved ones are read and indexed. A rename adds
  no layer. A lookup never answers from boundaries older than the last commit: it waits for
  the layer, which takes time in proportion to the change, not to the city;
- more than 8 layers are folded into one, and when the layers hold more than 2 % of the
  base's units a new base is built in the background, the old one answering meanwhile.

Lookups in the past (`around`) read only the units near the points asked about, valid at
that time, and index those: no past index of the whole city is ever built or kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import psycopg

from geo import settings
from geo.db import generation, index_feed, pool, replica, units
from geo.db.connection import database_url
from geo.db.embedded import project_root
from geo.locate import snapshot
from geo.locate.index import metres_per_degree
from geo.locate.layered import Area, Layered
from geo.locate.locator import Locator
from geo.units import levels

log = logging.getLogger("gridmap.index")

REBASE_SHARE = 0.02  # a new base once the layers hold this share of the base's units
PATCH_CELLS_PER_UNIT = 64  # a patch's rasters: scattered commits must not make city-sized ones
INLINE_BUILD_MAX = 150_000  # current units: a bigger base is built in a child process
SNAPSHOTS_KEPT = 2
LOG_KEPT = 20_000  # generations of the change log kept behind a new snapshot (a few thousand commits)
PAST_BUILDS_AT_ONCE = 2  # lookups in the past building their small index at the same time

_lock = threading.Lock()
_current: Layered | None = None
_key: tuple[str, str] | None = None
_rebasing: threading.Thread | None = None
_past = threading.BoundedSemaphore(PAST_BUILDS_AT_ONCE)
stats = {"snapshot_loads": 0, "snapshot_builds": 0, "layers_added": 0, "relabels": 0, "compactions": 0}


def folder() -> Path:
    """Where index snapshots are kept (GRIDMAP_INDEX_DIR, else GRIDMAP_HOME/index)."""
    config = settings.get()
    return config.index_dir or (config.home or project_root() / ".gridmap") / "index"


def _history_folder(history: index_feed.History) -> Path:
    return folder() / history.key


def _snapshots(where: Path) -> list[tuple[int, Path]]:
    """The whole snapshots in a history's folder, newest first."""
    found = []
    if where.is_dir():
        for entry in where.iterdir():
            if entry.name.startswith("g") and entry.name[1:].isdigit() and snapshot.manifest(entry) is not None:
                found.append((int(entry.name[1:]), entry))
    return sorted(found, reverse=True)


def _usable(where: Path, history: index_feed.History) -> tuple[int, Path] | None:
    for gen, path in _snapshots(where):
        if history.reaches(gen):
            return gen, path
    return None


@contextmanager
def _build_lock(where: Path) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    with open(where / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_snapshot(conn: psycopg.Connection) -> Path:
    """Write a snapshot of the boundaries stored now (`gridmap index build`, and a serving
    process with no usable one). Returns its folder."""
    with index_feed.snapshot_read(conn):
        history = index_feed.history(conn)
        where = _history_folder(history)
        locator = units.locator(conn)
    target = where / f"g{locator.generation}"
    with _build_lock(where):
        if snapshot.manifest(target) is None:
            snapshot.save(locator, target, {"epoch": history.epoch, "database": conn.info.dbname})
            stats["snapshot_builds"] += 1
        for _, old in _snapshots(where)[SNAPSHOTS_KEPT:]:
            shutil.rmtree(old, ignore_errors=True)  # processes mapping it keep their pages
    # the log need not reach far behind the newest snapshot: instances with an older one build
    # again (on a replica, nothing is deleted: the primary's next snapshot does it)
    assert locator.generation is not None
    index_feed.prune(conn, locator.generation - LOG_KEPT)
    return target


def _build_elsewhere(conn: psycopg.Connection, history: index_feed.History) -> None:
    """A snapshot at least as new as `history`, built by whoever gets the lock first."""
    where = _history_folder(history)
    with _build_lock(where):
        if _usable(where, history) is not None:
            return  # another process built it while this one waited
        current_units = sum(units.count_units(conn).values())
    if current_units <= INLINE_BUILD_MAX:
        build_snapshot(conn)
        return
    log.info("building the point index of %s units in a child process", f"{current_units:,}")
    env = {**os.environ, "DATABASE_URL": database_url()}
    done = subprocess.run([sys.executable, "-m", "cli", "index", "build", "--quiet"], env=env, cwd=project_root(),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the point index failed: {done.stderr.strip()[-2000:]}")
    stats["snapshot_builds"] += 1


def _open(folder: Path) -> Layered:
    """A snapshot, mapped, as a base."""
    stats["snapshot_loads"] += 1
    return Layered.over(snapshot.load(folder))


def _follow(conn: psycopg.Connection, state: Layered, history: index_feed.History) -> Layered | None:
    """`state` brought to `history.generation` (None: the change log does not reach back)."""
    assert state.generation is not None
    if state.generation >= history.generation:
        return state
    changes = index_feed.changes_since(conn, state.generation)
    if changes is None:
        return None
    area = Area.of_boxes(changes.boxes)
    patch = Locator.build(index_feed.rows_in(conn, area.boxes()), cells_per_unit=PATCH_CELLS_PER_UNIT) if len(area) \
        else None
    stats["layers_added" if patch is not None else "relabels"] += 1
    state = state.advance(changes.change, patch, area, history.generation)
    if state.layers > Layered.MAX_LAYERS:
        stats["compactions"] += 1
        rows = index_feed.rows_in(conn, state.total_area().boxes())
        state = state.compacted(Locator.build(rows, cells_per_unit=PATCH_CELLS_PER_UNIT), history.generation)
    return state


def _advance(generation_now: int, conn: psycopg.Connection | None = None) -> Layered:
    global _current, _key
    with _lock:
        for _attempt in range(3):
            state = _fresh(generation_now)
            if state is not None:
                return state
            state = _current
            with _connection(conn, generation_now) as c:
                with index_feed.snapshot_read(c):
                    history = index_feed.history(c)
                    if _key is None or (history.key, _url()) != _key:
                        state = None
                    newer = _usable(_history_folder(history), history)
                    if newer is not None and (state is None or newer[0] > (state.base.generation or 0)):
                        state = _open(newer[1])  # a newer base (another process rebased)
                    if state is not None:
                        state = _follow(c, state, history)
                    if state is None:
                        need = history
                    else:
                        _current, _key = state, (history.key, _url())
                        _maybe_rebase(state)
                        return state
                _build_elsewhere(c, need)
        raise RuntimeError("the point index could not catch up with the boundary changes: try again")


@contextmanager
def _connection(conn: psycopg.Connection | None, at_least: int | None = None) -> Iterator[psycopg.Connection]:
    """`conn`, else one for reads: a streaming replica's once it has replayed generation
    `at_least` (geo/db/replica.py), else the primary's."""
    if conn is not None:
        yield conn
        return
    with replica.reading(at_least) as own:
        yield own


def _maybe_rebase(state: Layered) -> None:
    """A new base in the background once the layers have grown (one thread per process; the
    file lock makes it one build per machine)."""
    global _rebasing
    base_units = sum(len(state.base.units[level].ids) for level in levels.LEVELS)
    if state.patched_units() <= max(REBASE_SHARE * base_units, 2_000):
        return
    if _rebasing is not None and _rebasing.is_alive():
        return

    def rebase() -> None:
        try:
            with pool.pool().connection() as conn:
                history = index_feed.history(conn)
                conn.commit()
                _build_elsewhere(conn, history)
        except Exception:  # the layers keep answering; the next commit tries again
            log.exception("building a new base for the point index failed")

    _rebasing = threading.Thread(target=rebase, name="gridmap-index-rebase", daemon=True)
    _rebasing.start()


def _generation() -> int:
    """The boundary generation now (a pooled connection: threads do not each keep one)."""
    with pool.pool().connection() as conn:
        now = generation.current(conn)
        conn.commit()
        return now


def _url() -> str:
    return settings.get().database_url or ""


def _fresh(generation_now: int) -> Layered | None:
    state = _current
    if _key is not None and _key[1] != _url():  # the process was pointed at another database
        return None
    if state is not None and state.generation is not None and state.generation >= generation_now:
        return state
    return None


async def current_async() -> Layered:
    """`current()` for async handlers: the generation check does not block the event loop, and
    many requests share one check (generation.Gate)."""
    latest = await generation.gate().latest()
    state = _fresh(latest)
    if state is None:
        state = await anyio.to_thread.run_sync(_advance, latest)
    return state


def current(conn: psycopg.Connection | None = None) -> Layered:
    """The index of the boundaries stored now, brought up to the last committed change.

    With `conn` (a request's own connection, possibly inside its transaction) the check and
    the update use it: a request never holds one pooled connection while waiting for a
    second, which under load starves the pool."""
    now = generation.current(conn) if conn is not None else _generation()
    return _fresh(now) or _advance(now, conn)


def around(when: datetime | None, x: np.ndarray, y: np.ndarray, radius_m: float = 0.0,
           conn: psycopg.Connection | None = None) -> Locator:
    """An index of the units valid at `when` (None: now) near the points (x, y), within
    `radius_m` metres and 1 cm: it answers for those points as the whole city's would."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    # degrees of longitude are the shortest; the shortest of all at the point farthest from the equator
    top = min(float(np.max(np.abs(y))) if len(y) else 0.0, 80.0)
    pad_deg = (radius_m + 0.5) / float(metres_per_degree(np.float64(top))[0])
    with _past, _connection(conn) as c:
        with index_feed.snapshot_read(c):
            rows = index_feed.rows_near(c, x, y, pad_deg, when)
            locator = Locator.build(rows)
            # buildings are looked up only inside streets when the city has any: the city's
            # answer, not the few streets near the points
            locator.any_streets = index_feed.any_streets(c, when)
    return locator


def status(conn: psycopg.Connection) -> dict[str, Any]:
    """The snapshots kept for this database and how far each is behind (`gridmap index status`)."""
    history = index_feed.history(conn)
    conn.commit()
    where = _history_folder(history)
    return {"epoch": history.epoch, "generation": history.generation, "folder": str(where),
            "snapshots": [{"generation": gen, "behind": history.generation - gen,
                           "usable": history.reaches(gen)}
                          for gen, _ in _snapshots(where)]}


def reset() -> None:
    global _current, _key
    with _lock:
        _current = None
        _key = None
