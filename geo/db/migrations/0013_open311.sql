-- Open311 GeoReport v2, complete: a report's address as the resident wrote it (address_string),
-- kept and returned; and status updates since a time (the servicerequestupdates extension) read
-- from incident_event by time.
ALTER TABLE incident ADD COLUMN address text;
CREATE INDEX incident_event_at ON incident_event (at, id);
