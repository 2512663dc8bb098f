"""gridmap's core: everything that is not HTTP, pages or the command line.

From the bottom up (a module imports only what stands below it; docs/architecture.md):

    errors.py, times.py   the kinds of error people read; times as users type them
    coords/               coordinate systems, GCJ-02 and BD-09, positions and boxes clients send
    units/                the levels (one table), codes, geometry checks, the unit model, containment
    locate/, security/    the in-memory point index; identities, roles, keys, masking
    planning/, incidents/, files/, sample/, tiles/
                          the planner, the incident rules, unit files, generated districts, tile maths
    settings.py           every setting, read once
    db/                   the SQL layer: the only place SQL lives
    usecases/             what people do: each owns its transaction and writes its audit row

Nothing below settings.py talks to a database or reads a setting: it takes values as arguments.
"""
