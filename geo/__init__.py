"""gridmap's core: the domain (unit levels, codes), spatial algorithms and database access.

Modules:
    levels      the nested unit levels and which level lies inside which
    codes       the hierarchical unit codes (statistical division codes, grid codes)
    crs         coordinate systems users hand us, and reprojection to WGS84
    geometry    geometry checks and repairs applied before anything is stored
    store       the versioned unit store (reads "as of" a time, boundary changes, lineage)
    files       reading unit files (GeoJSON, GeoPackage, Shapefile) and writing exports
    sample      the generator of realistic sample districts
    db          connections, migrations and the embedded PostGIS cluster
    cli         the `gridmap` command
"""
