"""Unit files in and out (GeoJSON, GeoPackage, Shapefile): no database here."""
