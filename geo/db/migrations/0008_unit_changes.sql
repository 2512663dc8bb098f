-- Which units each boundary generation changed (issue 14), so a process that keeps an index
-- of the boundaries updates it for the units a commit touched instead of rebuilding it.
--
-- Every statement on unit_version still moves the generation on by one (and notifies), and
-- now also logs, at that generation, each version row it wrote or closed: the unit, its level
-- and the box of the row's geometry (a closed row's box is where the unit *was*; an opened
-- row's, where it is now). A statement writing more than 20,000 rows (a file load, a restore)
-- logs nothing and sets `complete_from` instead: an index older than that generation is built
-- again, which costs less than replaying the change.
--
-- `epoch` names this database's history: a restore starts a new one, so an index snapshot
-- made from another history (same generation number, other boundaries) is never taken.

ALTER TABLE boundary_generation
    ADD COLUMN epoch uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN complete_from bigint NOT NULL DEFAULT 0;
UPDATE boundary_generation SET complete_from = generation;

CREATE TABLE unit_change (
    generation  bigint NOT NULL,
    unit_id     bigint NOT NULL,
    level       text NOT NULL,
    x0          double precision NOT NULL,
    y0          double precision NOT NULL,
    x1          double precision NOT NULL,
    y1          double precision NOT NULL,
    -- an opened version whose geometry, code and parents are its previous version's
    -- (a rename, new household figures): an index updates its labels, not its cells
    same_place  boolean NOT NULL DEFAULT false
);
CREATE INDEX unit_change_generation ON unit_change (generation);

CREATE FUNCTION log_unit_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    g bigint;
    n bigint;
BEGIN
    UPDATE boundary_generation SET generation = generation + 1 RETURNING generation INTO g;
    IF TG_OP = 'DELETE' THEN
        SELECT count(*) INTO n FROM old_rows;
    ELSE
        SELECT count(*) INTO n FROM new_rows;
    END IF;
    IF n > 20000 THEN
        UPDATE boundary_generation SET complete_from = g;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO unit_change (generation, unit_id, level, x0, y0, x1, y1)
        SELECT g, unit_id, level, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM old_rows;
    ELSIF TG_OP = 'UPDATE' THEN
        -- closing a version: the box is where the unit was (and, if a geometry was changed
        -- in place, where it is now)
        INSERT INTO unit_change (generation, unit_id, level, x0, y0, x1, y1)
        SELECT g, unit_id, level, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM new_rows;
        INSERT INTO unit_change (generation, unit_id, level, x0, y0, x1, y1)
        SELECT g, o.unit_id, o.level, ST_XMin(o.geom), ST_YMin(o.geom), ST_XMax(o.geom), ST_YMax(o.geom)
        FROM old_rows o JOIN new_rows w ON w.id = o.id WHERE NOT ST_OrderingEquals(o.geom, w.geom);
    ELSE
        INSERT INTO unit_change (generation, unit_id, level, x0, y0, x1, y1, same_place)
        SELECT g, w.unit_id, w.level, ST_XMin(w.geom), ST_YMin(w.geom), ST_XMax(w.geom), ST_YMax(w.geom),
               p.id IS NOT NULL AND p.code = w.code AND ST_OrderingEquals(p.geom, w.geom)
               AND p.street_id IS NOT DISTINCT FROM w.street_id
               AND p.community_id IS NOT DISTINCT FROM w.community_id
               AND p.grid_id IS NOT DISTINCT FROM w.grid_id
               AND p.compound_id IS NOT DISTINCT FROM w.compound_id
               AND p.neighbourhood_id IS NOT DISTINCT FROM w.neighbourhood_id
        FROM new_rows w LEFT JOIN unit_version p ON p.unit_id = w.unit_id AND p.version = w.version - 1;
    END IF;
    PERFORM pg_notify('gridmap_units', g::text);
    RETURN NULL;
END $$;

DROP TRIGGER unit_version_changed ON unit_version;
DROP FUNCTION bump_boundary_generation();

CREATE TRIGGER unit_version_inserted AFTER INSERT ON unit_version
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_unit_change();
CREATE TRIGGER unit_version_updated AFTER UPDATE ON unit_version
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION log_unit_change();
CREATE TRIGGER unit_version_deleted AFTER DELETE ON unit_version
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION log_unit_change();
