"""/keys and /audit (admins), and /whoami (anyone with a key).

    POST   /keys          a new key: {"role", "name"}; the key is in the answer once, never again
    GET    /keys          every key (prefix, name, role, when made, used, revoked), no secrets
    DELETE /keys/{id}     revoke a key (it stays on record for the audit log)
    GET    /audit         the audit log, newest first, with filters
    GET    /whoami        the caller's identity, role and permissions
"""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from api import auth, db
from geo import audit, store
from geo import auth as keys
from geo.auth import Identity

router = APIRouter(tags=["security"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(..., description=", ".join(keys.ROLES))
    name: str = Field(..., min_length=1, max_length=100, description="who or what uses the key")


@router.post("/keys", status_code=201, summary="Create an API key (shown once)")
def create_key(body: KeyIn, who: Identity = auth.require("admin")) -> dict:
    with db.pool().connection() as conn:
        record, key = keys.create_key(conn, body.role, body.name, who)
    return jsonable_encoder(record | {"key": key})


@router.get("/keys", summary="The API keys (no secrets)")
def list_keys(active: bool = Query(False, description="only keys not revoked"),
              who: Identity = auth.require("admin")) -> list[dict]:
    with db.pool().connection() as conn:
        return jsonable_encoder(keys.list_keys(conn, include_revoked=not active))


@router.delete("/keys/{key_id}", summary="Revoke an API key (refused at once by this worker, "
               "by the others within the key cache's TTL)")
def revoke_key(key_id: int, who: Identity = auth.require("admin")) -> dict:
    with db.pool().connection() as conn:
        record = keys.revoke_key(conn, key_id, who)
    auth.forget_key(key_id)
    return jsonable_encoder(record)


@router.get("/audit", summary="The audit log, newest first")
def audit_log(
    action: Optional[str] = Query(None, description="e.g. plan.commit, or a prefix ending in '.': plan."),
    subject: Optional[str] = Query(None, description="unit, plan, incident, key, worker, change_set"),
    subject_id: Optional[int] = Query(None),
    key_id: Optional[int] = Query(None),
    actor: Optional[str] = Query(None, description="part of the actor's label, e.g. cli: or a key's name"),
    since: Optional[str] = Query(None, description="ISO 8601, inclusive"),
    until: Optional[str] = Query(None, description="ISO 8601, exclusive"),
    before_id: Optional[int] = Query(None, description="rows older than this one (the next page)"),
    limit: int = Query(100, ge=1, le=audit.MAX_LIMIT),
    who: Identity = auth.require("admin"),
) -> dict:
    with db.pool().connection() as conn:
        rows = audit.query(conn, action=action, subject=subject, subject_id=subject_id, key_id=key_id,
                           actor=actor, since=store.parse_time(since), until=store.parse_time(until),
                           before_id=before_id, limit=limit)
    return {"items": jsonable_encoder(rows),
            "next_before_id": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/whoami", summary="Who the credentials sent stand for, and what they may do")
def whoami(who: Identity = auth.require("read")) -> dict:
    return {"actor": who.label, "key_id": who.key_id, "name": who.key_name, "role": who.role,
            "permissions": sorted(p for p in keys.PERMISSIONS if who.can(p)), "auth": auth.mode()}
