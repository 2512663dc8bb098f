-- Duplicates linked both ways: a report marked a duplicate names the incident it repeats
-- (duplicate_of); the original lists the reports that repeat it (found by this index). The
-- reference is checked by the application: an incident's id alone is not a key of the
-- partitioned table (its key holds its district and month too).
ALTER TABLE incident ADD COLUMN duplicate_of bigint;
CREATE INDEX incident_duplicate_of ON incident (duplicate_of) WHERE duplicate_of IS NOT NULL;
-- and the search for reports like a new one: the same category, near it, not long ago
CREATE INDEX incident_category_geom ON incident USING gist (category, geom);
