-- Workers follow their units (issue 13). When a change retires the unit a worker is attached
-- to, the worker moves to the successor holding most of its households (geo/usecases/workers.py
-- follow_change); where none fits, the worker stays on the retired unit, flagged here
-- (unplaced_since, unplaced_reason) until a dispatcher gives them a unit. Every change to a
-- worker is an event in worker_event: added, edited, moved by a boundary change, left unplaced,
-- deactivated, reactivated. A worker is never deleted: incidents keep naming them.

ALTER TABLE worker ADD COLUMN unplaced_since timestamptz;
ALTER TABLE worker ADD COLUMN unplaced_reason text;
CREATE INDEX worker_unplaced ON worker (id) WHERE unplaced_since IS NOT NULL;
CREATE INDEX worker_unit_any ON worker (unit_id);

CREATE TABLE worker_event (
    id            bigserial PRIMARY KEY,
    worker_id     bigint NOT NULL REFERENCES worker (id),
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('add', 'edit', 'follow', 'unplaced', 'deactivate', 'reactivate')),
    from_unit_id  bigint REFERENCES unit (id),
    to_unit_id    bigint REFERENCES unit (id),
    change_id     bigint REFERENCES change_set (id),
    note          text,
    data          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX worker_event_worker ON worker_event (worker_id, id);
