-- Plans: stored proposals to split, merge or redraw units. A plan is drawn against
-- the units as they were (their versions are kept), previewed, edited (each edit is a
-- new revision; earlier revisions stay) and committed or discarded. Commit refuses if
-- any unit it replaces has changed since.

CREATE TABLE plan (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('split', 'merge', 'redraw')),
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'committed', 'discarded')),
    level         text NOT NULL REFERENCES unit_level (level),  -- level of the proposed units
    parent_id     bigint REFERENCES unit (id),                   -- the unit whose inside is redrawn
    revision      integer NOT NULL DEFAULT 1,
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics       jsonb NOT NULL DEFAULT '{}'::jsonb,
    notes         jsonb NOT NULL DEFAULT '[]'::jsonb,
    actor         text NOT NULL DEFAULT 'gridmap',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    change_id     bigint REFERENCES change_set (id)
);
CREATE INDEX plan_status ON plan (status);

-- The units a plan replaces, as they were when it was drawn (one group per merge).
CREATE TABLE plan_replaces (
    plan_id   bigint NOT NULL REFERENCES plan (id),
    grp       integer NOT NULL DEFAULT 1,
    unit_id   bigint NOT NULL REFERENCES unit (id),
    version   integer NOT NULL,
    code      text NOT NULL,
    PRIMARY KEY (plan_id, unit_id)
);

-- The proposed units, per revision (an edit adds a revision, never rewrites one).
CREATE TABLE plan_unit (
    plan_id     bigint NOT NULL REFERENCES plan (id),
    revision    integer NOT NULL,
    grp         integer NOT NULL DEFAULT 1,
    seq         integer NOT NULL,
    code        text NOT NULL,
    name        text NOT NULL,
    households  integer,
    population  integer,
    geom        geometry (MultiPolygon, 4326) NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (plan_id, revision, seq),
    CHECK (ST_IsValid(geom))
);
