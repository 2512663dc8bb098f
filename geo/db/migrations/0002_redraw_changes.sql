-- A redraw (boundaries moved between units without a split or merge) is a change kind too.
ALTER TABLE change_set DROP CONSTRAINT change_set_kind_check;
ALTER TABLE change_set ADD CONSTRAINT change_set_kind_check
    CHECK (kind IN ('load', 'edit', 'split', 'merge', 'redraw', 'retire'));
