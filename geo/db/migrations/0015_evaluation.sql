-- Residents judge the result (回访/民评). A report gets a token its reporter keeps (only its
-- SHA-256 is stored); once the incident is resolved, the reporter rates it through the token:
-- satisfied, basically satisfied or unsatisfied, with a comment. No rating within the office's
-- deadline closes it as not evaluated.
ALTER TABLE incident ADD COLUMN evaluation_token_hash text;
ALTER TABLE incident ADD COLUMN evaluation text
    CHECK (evaluation IN ('satisfied', 'basically_satisfied', 'unsatisfied', 'not_evaluated'));
ALTER TABLE incident ADD COLUMN evaluation_comment text;
ALTER TABLE incident ADD COLUMN evaluated_at timestamptz;
CREATE INDEX incident_evaluation_token ON incident (evaluation_token_hash) WHERE evaluation_token_hash IS NOT NULL;
CREATE INDEX incident_awaiting_evaluation ON incident (resolved_at) WHERE state = 'resolved' AND evaluation IS NULL;
