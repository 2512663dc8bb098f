"""/plans and /validate: draw split and merge plans, preview, compare, edit, commit, discard,
and check the stored units for gaps, overlaps and units outside their band."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AsOf, Conn, PlanCaller, encoded, encoded_rows
from api.security import require
from geo.db import pool, units
from geo.security.identity import Identity
from geo.units import levels
from geo.usecases import plan_edits, plans, validation

# Plans (drafts included) and /validate are planners' work: every route needs `plan`.
router = APIRouter(tags=["planning"], dependencies=[require("plan")])


class SplitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: int | str = Field(..., description="id or code of the community or grid to split")
    into: str = Field("grid", description="grid, community or neighbourhood")
    households: str | None = Field(None, description="household band LOW-HIGH, e.g. 300-500 "
                                                        "(default: the level's band)")
    parts: int | None = Field(None, ge=1, le=500, description="number of parts (default: chosen)")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: str = Field("community", description="community, grid or neighbourhood")
    floor: int | None = Field(None, ge=1, description="units below this many households are merged")
    ceiling: int | None = Field(None, ge=1, description="no merged unit above this (default: the band's)")
    within: int | None = Field(None, description="only units inside this unit id")


class PlanEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int = Field(..., ge=1, description="the plan revision the edit is based on (409 if stale)")
    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]] = Field(..., min_length=1, max_length=2000)
    crs: str | None = Field(None, description="wgs84 (default), cgcs2000, gcj02, bd09 or EPSG:nnnn")


class Commit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int | None = Field(None, ge=1, description="refuse (409) unless the plan is at this revision")


def _split(req: SplitRequest, who: Identity) -> dict[str, Any]:
    with pool.pool().connection() as conn:
        unit_id = units.resolve(conn, req.unit)
        unit = units.get_unit(conn, unit_id)
        into = levels.parse_level(req.into)
        band = levels.parse_band(req.households, into) if req.households else None
        return plans.draw_split(conn, unit_id, into, band=band, parts=req.parts, seed=req.seed,
                                actor=who) | {"unit": unit["code"]}


@router.post("/plans/split", status_code=201, summary="Draw a plan splitting a community or grid")
async def split(req: SplitRequest, who: PlanCaller) -> dict[str, Any]:
    # drawing takes seconds: off the event loop, its connection taken in the worker thread
    return encoded(await run_in_threadpool(_split, req, who))


@router.post("/plans/merge", status_code=201, summary="Draw a plan merging undersized units into neighbours")
def merge(req: MergeRequest, conn: Conn, who: PlanCaller) -> dict[str, Any]:
    return encoded(plans.draw_merge(conn, req.level, floor=req.floor, ceiling=req.ceiling,
                                    within=req.within, actor=who))


@router.get("/plans", summary="Plans, newest first")
def list_plans(conn: Conn, status: Annotated[str | None, Query(description="draft, committed or discarded")] = None
               ) -> list[dict[str, Any]]:
    return encoded_rows(plans.list_plans(conn, status))


@router.get("/plans/{plan_id}", summary="One plan: what it replaces, its units, metrics and notes")
def get_plan(plan_id: int, conn: Conn) -> dict[str, Any]:
    return encoded(plans.get_plan(conn, plan_id))


@router.get("/plans/{plan_id}/units", summary="The plan's proposed units as GeoJSON (a revision, or the latest)",
            response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def plan_units(plan_id: int, conn: Conn, revision: Annotated[int | None, Query(ge=1)] = None) -> Response:
    return Response(plans.plan_geojson(conn, plan_id, revision), media_type="application/geo+json")


@router.get("/plans/{plan_id}/compare", summary="The plan against current boundaries: households moved, per unit")
def compare(plan_id: int, conn: Conn) -> dict[str, Any]:
    return encoded(plans.compare(conn, plan_id))


@router.put("/plans/{plan_id}/units", summary="Upload changed polygons (only those, by code) as a new revision")
def edit(plan_id: int, body: PlanEdit, conn: Conn, who: PlanCaller) -> dict[str, Any]:
    return encoded(plan_edits.edit_plan(conn, plan_id, body.features, expected_revision=body.revision,
                                        crs_text=body.crs, actor=who))


@router.post("/plans/{plan_id}/commit", summary="Validate and apply the plan in one transaction (409 if stale)")
def commit(plan_id: int, conn: Conn, who: PlanCaller, body: Commit | None = None) -> dict[str, Any]:
    return encoded(plans.commit_plan(conn, plan_id, expected_revision=body.revision if body else None,
                                     actor=who))


@router.post("/plans/{plan_id}/discard", summary="Discard a draft plan (it stays on record)")
def discard(plan_id: int, conn: Conn, who: PlanCaller) -> dict[str, Any]:
    return encoded(plans.discard_plan(conn, plan_id, actor=who))


@router.get("/validate", summary="Gaps, overlaps, units outside parents or bands, as GeoJSON",
            response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def check(conn: Conn, when: AsOf,
          level: Annotated[str | None, Query(description="one level (default: all)")] = None) -> Response:
    lv = levels.parse_level(level) if level else None
    report = validation.validate(conn, lv, when)
    return Response(validation.to_text(report), media_type="application/geo+json")
