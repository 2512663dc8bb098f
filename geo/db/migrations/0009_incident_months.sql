-- Incidents partitioned by month, with the district code in their keys.
--
-- A city's hotline stores millions of reports a year. `incident` is partitioned by the month
-- of `reported_at` (Beijing months: China keeps one time zone, and a month's reports are the
-- ones its offices count), so a month's statistics read one partition and an old month can be
-- archived or detached whole. Every incident carries the 6-digit district (county) code of the
-- place it was reported (the first six digits of its street, community or grid code; 000000 for
-- a report outside every unit), and that code is part of the keys of `incident`, `incident_event`
-- and the references between them: a later move to Citus, distributing by district code, keeps
-- an incident, its events and its district's units on one node.
--
-- A primary key of a partitioned table must hold the partition key, so `external_id` can no
-- longer be unique on `incident` itself; `incident_external_id` keeps that rule (one incident per
-- external id) and points at the incident.
--
-- Months are made by incident_month(month): the months holding reports now, and from then on
-- the one before the current month, the current one and the next three (at `gridmap init`, at every
-- server start and once a day; `gridmap incidents months` by hand). A report for a month without
-- a partition lands in incident_default and is never refused; making its month later moves such
-- rows out of incident_default in the same transaction.

-- 1. The unpartitioned tables step aside; their rows are copied below and they are dropped.
ALTER TABLE incident_event RENAME TO incident_event_0008;
ALTER TABLE incident RENAME TO incident_0008;
ALTER INDEX incident_pkey RENAME TO incident_0008_pkey;
ALTER INDEX incident_external_id_key RENAME TO incident_0008_external_id_key;
ALTER INDEX incident_event_pkey RENAME TO incident_event_0008_pkey;
DROP INDEX incident_geom, incident_grid_time, incident_community_time, incident_street_time, incident_state,
    incident_event_incident;

-- 2. The partitioned incident: the same columns, with its district after its id.
CREATE TABLE incident (
    id                bigint NOT NULL DEFAULT nextval('incident_id_seq'),
    district          text NOT NULL CHECK (district ~ '^[0-9]{6}$'),
    external_id       text,
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
    closed_at         timestamptz,
    -- id first: an incident is looked up by its id alone (one index probe per month)
    CONSTRAINT incident_pkey PRIMARY KEY (id, district, reported_at)
) PARTITION BY RANGE (reported_at);
ALTER SEQUENCE incident_id_seq OWNED BY incident.id;
CREATE TABLE incident_default PARTITION OF incident DEFAULT;
CREATE INDEX incident_geom ON incident USING gist (geom);
CREATE INDEX incident_grid_time ON incident (grid_id, reported_at);
CREATE INDEX incident_community_time ON incident (community_id, reported_at);
CREATE INDEX incident_street_time ON incident (street_id, reported_at);
CREATE INDEX incident_state ON incident (state);

-- One incident per external id (a hotline's or WeChat's own id): a report sent twice is stored once.
CREATE TABLE incident_external_id (
    external_id  text PRIMARY KEY,
    incident_id  bigint NOT NULL,
    district     text NOT NULL,
    reported_at  timestamptz NOT NULL,
    -- deferred: the id is claimed here first, then the incident stored under it
    CONSTRAINT incident_external_id_incident FOREIGN KEY (incident_id, district, reported_at)
        REFERENCES incident (id, district, reported_at) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE incident_event (
    id                    bigint NOT NULL DEFAULT nextval('incident_event_id_seq'),
    incident_id           bigint NOT NULL,
    district              text NOT NULL,
    incident_reported_at  timestamptz NOT NULL,
    at                    timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor                 text NOT NULL,
    from_state            text,
    to_state              text NOT NULL,
    note                  text,
    data                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT incident_event_pkey PRIMARY KEY (id, district),
    CONSTRAINT incident_event_incident FOREIGN KEY (incident_id, district, incident_reported_at)
        REFERENCES incident (id, district, reported_at)
);
ALTER SEQUENCE incident_event_id_seq OWNED BY incident_event.id;
CREATE INDEX incident_event_incident ON incident_event (incident_id, id);

-- 3. Making a month. Returns the partition's name, or NULL when the month has one already.
-- A new month is made beside the table and attached (attaching takes a lighter lock on
-- `incident` than creating a partition in place). Reports of that month waiting in
-- incident_default move into it; the references to them are dropped for the move and made
-- (and checked) again in the same transaction, since PostgreSQL checks a reference to a
-- partitioned table partition by partition.
CREATE FUNCTION incident_month(month date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    lo timestamptz := first::timestamp AT TIME ZONE 'Asia/Shanghai';
    hi timestamptz := (first + interval '1 month')::timestamp AT TIME ZONE 'Asia/Shanghai';
    part text := 'incident_' || to_char(first, 'YYYY_MM');
    waiting boolean;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'incident'::regclass
               AND inhrelid = to_regclass(quote_ident(part))) THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE incident INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    -- lets ATTACH skip checking the new partition's rows against its range
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (reported_at >= %L AND reported_at < %L)',
                   part, part || '_range', lo, hi);
    waiting := EXISTS (SELECT 1 FROM incident_default WHERE reported_at >= lo AND reported_at < hi);
    IF waiting THEN
        ALTER TABLE incident_event DROP CONSTRAINT incident_event_incident;
        ALTER TABLE incident_external_id DROP CONSTRAINT incident_external_id_incident;
        EXECUTE format('WITH moved AS (DELETE FROM incident_default WHERE reported_at >= $1 AND reported_at < $2 '
                       'RETURNING *) INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
    END IF;
    EXECUTE format('ALTER TABLE incident ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_range');
    IF waiting THEN
        ALTER TABLE incident_event ADD CONSTRAINT incident_event_incident
            FOREIGN KEY (incident_id, district, incident_reported_at) REFERENCES incident (id, district, reported_at);
        ALTER TABLE incident_external_id ADD CONSTRAINT incident_external_id_incident
            FOREIGN KEY (incident_id, district, reported_at) REFERENCES incident (id, district, reported_at)
            DEFERRABLE INITIALLY DEFERRED;
    END IF;
    RETURN part;
END $$;

-- 4. The months holding reports now, and last month, this month and the next two.
SELECT incident_month(m) FROM (
    SELECT DISTINCT date_trunc('month', reported_at AT TIME ZONE 'Asia/Shanghai')::date AS m FROM incident_0008
    UNION SELECT (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') + n * interval '1 month')::date
    FROM generate_series(-1, 2) AS n
) months ORDER BY m;

-- 5. The rows, each incident with the district of its units.
CREATE TEMP TABLE unit_district ON COMMIT DROP AS
    SELECT DISTINCT ON (unit_id) unit_id, left(code, 6) AS district
    FROM unit_version WHERE level IN ('street', 'community', 'grid') AND code ~ '^[0-9]{6}'
    ORDER BY unit_id, version DESC;
ALTER TABLE unit_district ADD PRIMARY KEY (unit_id);

INSERT INTO incident (id, district, external_id, category, description, reported_at, received_at, channel, contact,
                      photos, input_lon, input_lat, input_crs, geom, state, version, street_id, community_id, grid_id,
                      compound_id, neighbourhood_id, building_id, unassigned, handled_at_level, worker_id, deadline,
                      resolved_at, closed_at)
SELECT i.id, COALESCE(s.district, c.district, g.district, '000000'), i.external_id, i.category, i.description,
       i.reported_at, i.received_at, i.channel, i.contact, i.photos, i.input_lon, i.input_lat, i.input_crs, i.geom,
       i.state, i.version, i.street_id, i.community_id, i.grid_id, i.compound_id, i.neighbourhood_id, i.building_id,
       i.unassigned, i.handled_at_level, i.worker_id, i.deadline, i.resolved_at, i.closed_at
FROM incident_0008 i
LEFT JOIN unit_district s ON s.unit_id = i.street_id
LEFT JOIN unit_district c ON c.unit_id = i.community_id
LEFT JOIN unit_district g ON g.unit_id = i.grid_id;

INSERT INTO incident_external_id (external_id, incident_id, district, reported_at)
SELECT external_id, id, district, reported_at FROM incident WHERE external_id IS NOT NULL;

INSERT INTO incident_event (id, incident_id, district, incident_reported_at, at, actor, from_state, to_state, note,
                            data)
SELECT e.id, e.incident_id, i.district, i.reported_at, e.at, e.actor, e.from_state, e.to_state, e.note, e.data
FROM incident_event_0008 e JOIN incident i ON i.id = e.incident_id;

DROP TABLE incident_event_0008, incident_0008;
