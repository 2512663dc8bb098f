"""/keys and /audit (admins), and /whoami (anyone with a key).

    POST   /keys          a new key: {"role", "name"}; the key is in the answer once, never again
    GET    /keys          every key (prefix, name, role, when made, used, revoked), no secrets
    DELETE /keys/{id}     revoke a key (it stays on record for the audit log)
    GET    /audit         the audit log, newest first, with filters
    GET    /whoami        the caller's identity, role and permissions
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from api import security
from api.deps import AdminCaller, Conn, ReadCaller, encoded, encoded_rows, time_of
from geo.db import audit, keys
from geo.security.identity import PERMISSIONS, ROLES
from geo.usecases import keys as key_work

router = APIRouter(tags=["security"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(..., description=", ".join(ROLES))
    name: str = Field(..., min_length=1, max_length=100, description="who or what uses the key")


@router.post("/keys", status_code=201, summary="Create an API key (shown once)")
def create_key(body: KeyIn, conn: Conn, who: AdminCaller) -> dict[str, Any]:
    record, key = key_work.create_key(conn, body.role, body.name, who)
    return encoded(record | {"key": key})


@router.get("/keys", summary="The API keys (no secrets)")
def list_keys(conn: Conn, who: AdminCaller,
              active: Annotated[bool, Query(description="only keys not revoked")] = False) -> list[dict[str, Any]]:
    return encoded_rows(keys.all_keys(conn, include_revoked=not active))


@router.delete("/keys/{key_id}", summary="Revoke an API key (refused at once by this worker, "
               "by the others within the key cache's TTL)")
def revoke_key(key_id: int, conn: Conn, who: AdminCaller) -> dict[str, Any]:
    record = key_work.revoke_key(conn, key_id, who)
    security.forget_key(key_id)
    return encoded(record)


@router.get("/audit", summary="The audit log, newest first")
def audit_log(
    conn: Conn,
    who: AdminCaller,
    action: Annotated[str | None, Query(description="e.g. plan.commit, or a prefix ending in '.': plan.")] = None,
    subject: Annotated[str | None, Query(description="unit, plan, incident, key, worker, change_set")] = None,
    subject_id: Annotated[int | None, Query()] = None,
    key_id: Annotated[int | None, Query()] = None,
    actor: Annotated[str | None, Query(description="part of the actor's label, e.g. cli: or a key's name")] = None,
    since: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    before_id: Annotated[int | None, Query(description="rows older than this one (the next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIMIT)] = 100,
) -> dict[str, Any]:
    rows = audit.query(conn, action=action, subject=subject, subject_id=subject_id, key_id=key_id,
                       actor=actor, since=time_of(since), until=time_of(until), before_id=before_id, limit=limit)
    return {"items": jsonable_encoder(rows),
            "next_before_id": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/whoami", summary="Who the credentials sent stand for, and what they may do")
def whoami(who: ReadCaller) -> dict[str, Any]:
    return {"actor": who.label, "key_id": who.key_id, "name": who.key_name, "role": who.role,
            "permissions": sorted(p for p in PERMISSIONS if who.can(p)), "auth": security.mode()}
