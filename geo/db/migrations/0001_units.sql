-- Nested, versioned units. A unit (street, community, grid, compound, small
-- neighbourhood, building) keeps its id for life; each change to it closes one
-- row of unit_version (valid_to) and opens the next (valid_from), so the state
-- at any past time can be read back. Nothing is overwritten.

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE unit_level (
    level     text PRIMARY KEY,
    rank      smallint NOT NULL UNIQUE,
    label_zh  text NOT NULL
);
INSERT INTO unit_level (level, rank, label_zh) VALUES
    ('street', 1, '街道'),
    ('community', 2, '社区'),
    ('grid', 3, '网格'),
    ('compound', 4, '小区'),
    ('neighbourhood', 5, '小邻里'),
    ('building', 6, '楼栋');

-- One change set per write: a file load, an edit, a split, a merge.
CREATE TABLE change_set (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('load', 'edit', 'split', 'merge', 'retire')),
    actor       text NOT NULL DEFAULT 'gridmap',
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE unit (
    id          bigserial PRIMARY KEY,
    level       text NOT NULL REFERENCES unit_level (level),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE unit_version (
    id                bigserial PRIMARY KEY,
    unit_id           bigint NOT NULL REFERENCES unit (id),
    version           integer NOT NULL CHECK (version >= 1),
    level             text NOT NULL REFERENCES unit_level (level),
    code              text NOT NULL CHECK (code <> ''),
    name              text NOT NULL,
    -- the whole chain of parents (NULL where the level has no such parent)
    street_id         bigint REFERENCES unit (id),
    community_id      bigint REFERENCES unit (id),
    grid_id           bigint REFERENCES unit (id),
    compound_id       bigint REFERENCES unit (id),
    neighbourhood_id  bigint REFERENCES unit (id),
    households        integer CHECK (households >= 0),
    population        integer CHECK (population >= 0),
    geom              geometry (Geometry, 4326) NOT NULL,
    attributes        jsonb NOT NULL DEFAULT '{}'::jsonb,
    valid_from        timestamptz NOT NULL,
    valid_to          timestamptz,
    change_id         bigint NOT NULL REFERENCES change_set (id),
    closed_by         bigint REFERENCES change_set (id),
    UNIQUE (unit_id, version),
    CHECK (valid_to IS NULL OR valid_to > valid_from),
    CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
    CHECK (GeometryType(geom) = 'MULTIPOLYGON'
           OR (level = 'building' AND GeometryType(geom) = 'POINT')),
    -- two versions of one unit never overlap in time
    EXCLUDE USING gist (unit_id WITH =, tstzrange(valid_from, valid_to) WITH &&)
);

CREATE INDEX unit_version_geom_current ON unit_version USING gist (geom) WHERE valid_to IS NULL;
CREATE INDEX unit_version_geom ON unit_version USING gist (geom);
CREATE UNIQUE INDEX unit_version_one_current ON unit_version (unit_id) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX unit_version_current_code ON unit_version (level, code) WHERE valid_to IS NULL;
CREATE INDEX unit_version_level_time ON unit_version (level, valid_from, valid_to);
CREATE INDEX unit_version_code ON unit_version (code);
CREATE INDEX unit_version_street ON unit_version (street_id) WHERE valid_to IS NULL;
CREATE INDEX unit_version_community ON unit_version (community_id) WHERE valid_to IS NULL;
CREATE INDEX unit_version_grid ON unit_version (grid_id) WHERE valid_to IS NULL;
CREATE INDEX unit_version_compound ON unit_version (compound_id) WHERE valid_to IS NULL;

-- Which old units became which new ones (splits and merges).
CREATE TABLE unit_lineage (
    change_id     bigint NOT NULL REFERENCES change_set (id),
    from_unit_id  bigint NOT NULL REFERENCES unit (id),
    to_unit_id    bigint NOT NULL REFERENCES unit (id),
    kind          text NOT NULL CHECK (kind IN ('split', 'merge', 'redraw')),
    PRIMARY KEY (change_id, from_unit_id, to_unit_id)
);
CREATE INDEX unit_lineage_to ON unit_lineage (to_unit_id);

-- The road network (centre lines), which planning follows.
CREATE TABLE road (
    id          bigserial PRIMARY KEY,
    code        text UNIQUE,
    name        text NOT NULL DEFAULT '',
    kind        text NOT NULL DEFAULT 'local',
    geom        geometry (MultiLineString, 4326) NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
    change_id   bigint REFERENCES change_set (id)
);
CREATE INDEX road_geom ON road USING gist (geom);

-- Every committed change to units bumps this counter and notifies listeners,
-- so caches of boundaries (the point-in-grid index) know to reload.
CREATE TABLE boundary_generation (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation  bigint NOT NULL
);
INSERT INTO boundary_generation VALUES (true, 0);

CREATE FUNCTION bump_boundary_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE boundary_generation SET generation = generation + 1;
    PERFORM pg_notify('gridmap_units', (SELECT generation::text FROM boundary_generation));
    RETURN NULL;
END $$;

CREATE TRIGGER unit_version_changed
    AFTER INSERT OR UPDATE OR DELETE ON unit_version
    FOR EACH STATEMENT EXECUTE FUNCTION bump_boundary_generation();
