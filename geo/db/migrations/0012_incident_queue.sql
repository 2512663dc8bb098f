-- A report outside every unit is never a dead end: it waits in the dispatcher queue of the street
-- nearest its point (within 5 km; beyond that, the district's queue: no street), and is filed
-- under that street's district. Its own units stay empty: it lies in none of them.
ALTER TABLE incident ADD COLUMN queue_street_id bigint REFERENCES unit (id);
