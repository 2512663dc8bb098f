"""Interactive Leaflet maps (folium) for planners and dispatchers.

The maps arrive with the maps issue; this package is where they will be built.
"""
