import psycopg

from geo.db.migrations import applied, available, migrate


def test_migrations_apply_once_and_rerun_is_a_no_op(databases):
    url = databases.url(databases.create())
    with psycopg.connect(url) as conn:
        first = migrate(conn)
        assert first == [name for name, _ in available()]
        tables_before = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        assert migrate(conn) == []
        assert migrate(conn) == []
        assert applied(conn) == first
        tables_after = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        assert tables_after == tables_before
        assert conn.execute("SELECT count(*) FROM schema_migration").fetchone()[0] == len(first)
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3")
        levels = [r[0] for r in conn.execute("SELECT level FROM unit_level ORDER BY rank")]
        assert levels == ["street", "community", "grid", "compound", "neighbourhood", "building"]


def test_two_versions_of_one_unit_cannot_overlap_in_time(db_url):
    """The exclusion constraint is the store's last line of defence."""
    with psycopg.connect(db_url) as conn:
        change = conn.execute("INSERT INTO change_set (kind) VALUES ('load') RETURNING id").fetchone()[0]
        unit = conn.execute("INSERT INTO unit (level) VALUES ('street') RETURNING id").fetchone()[0]
        insert = (
            "INSERT INTO unit_version (unit_id, version, level, code, name, geom, valid_from, valid_to, change_id) "
            "VALUES (%s, %s, 'street', '420199001000', 's', "
            "ST_Multi(ST_MakeEnvelope(114.3, 30.5, 114.31, 30.51, 4326)), %s, %s, %s)"
        )
        conn.execute(insert, [unit, 1, "2026-01-01", "2026-03-01", change])
        try:
            conn.execute(insert, [unit, 2, "2026-02-01", None, change])
        except psycopg.errors.ExclusionViolation:
            conn.rollback()
        else:
            raise AssertionError("overlapping versions were accepted")
