-- A committed plan is a record (issue 13): what it did, as it stood at commit, stays with it.
-- `record` holds the comparison with the boundaries it replaced (households moved and where
-- each new unit's households came from), every code that followed its unit to a new parent,
-- the workers moved or left without a unit and the open incidents re-assigned.
ALTER TABLE plan ADD COLUMN record jsonb;
