-- Incidents: reports that come in by location, are assigned to their grid and every parent
-- unit, dispatched to a worker and followed to resolution. Every change of state is an
-- event; the incident row carries a version for optimistic concurrency.

CREATE TABLE incident_category (
    code            text PRIMARY KEY,
    name_zh         text NOT NULL,
    deadline_hours  integer NOT NULL CHECK (deadline_hours > 0),
    escalate        boolean NOT NULL DEFAULT false  -- handled by the community, not the grid
);
INSERT INTO incident_category (code, name_zh, deadline_hours, escalate) VALUES
    ('manhole', '井盖缺失', 24, false),
    ('road_damage', '道路破损', 48, false),
    ('garbage', '垃圾堆放', 24, false),
    ('noise', '噪音扰民', 24, false),
    ('water_leak', '漏水', 12, false),
    ('street_light', '路灯故障', 48, false),
    ('dispute', '邻里纠纷', 72, false),
    ('parking', '违规停车', 24, false),
    ('illegal_building', '违章搭建', 168, true),
    ('fire_hazard', '消防隐患', 12, true),
    ('other', '其他', 72, false);

CREATE TABLE worker (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (name <> ''),
    role        text NOT NULL CHECK (role IN ('grid_worker', 'grid_head', 'neighbourhood_head', 'community_worker')),
    unit_id     bigint NOT NULL REFERENCES unit (id),
    phone       text,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_unit ON worker (unit_id) WHERE active;

CREATE TABLE incident (
    id                bigserial PRIMARY KEY,
    external_id       text UNIQUE,
    category          text NOT NULL REFERENCES incident_category (code),
    description       text NOT NULL DEFAULT '',
    reported_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    channel           text NOT NULL,
    contact           text,
    photos            jsonb NOT NULL DEFAULT '[]'::jsonb,
    input_lon         double precision NOT NULL,
    input_lat         double precision NOT NULL,
    input_crs         text NOT NULL,
    geom              geometry (Point, 4326) NOT NULL,
    state             text NOT NULL CHECK (state IN ('reported', 'assigned', 'in_progress', 'resolved',
                                                      'closed', 'rejected', 'duplicate')),
    version           integer NOT NULL DEFAULT 1,
    street_id         bigint REFERENCES unit (id),
    community_id      bigint REFERENCES unit (id),
    grid_id           bigint REFERENCES unit (id),
    compound_id       bigint REFERENCES unit (id),
    neighbourhood_id  bigint REFERENCES unit (id),
    building_id       bigint REFERENCES unit (id),
    unassigned        boolean NOT NULL,
    handled_at_level  text CHECK (handled_at_level IN ('grid', 'community')),
    worker_id         bigint REFERENCES worker (id),
    deadline          timestamptz NOT NULL,
    resolved_at       timestamptz,
    closed_at         timestamptz
);
CREATE INDEX incident_geom ON incident USING gist (geom);
CREATE INDEX incident_grid_time ON incident (grid_id, reported_at);
CREATE INDEX incident_community_time ON incident (community_id, reported_at);
CREATE INDEX incident_street_time ON incident (street_id, reported_at);
CREATE INDEX incident_state ON incident (state);

CREATE TABLE incident_event (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incident (id),
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        text NOT NULL,
    from_state   text,
    to_state     text NOT NULL,
    note         text,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX incident_event_incident ON incident_event (incident_id, id);
