"""The SQL layer: the only place SQL lives, one module per aggregate (units, unit_writes,
roads, plans, incidents, workers, stats, features, tiles, maps, keys, audit), with the pool,
the boundary generation, the embedded cluster, migrations and backups."""
