"""The maps as pages: Leaflet (through folium) for planners and dispatchers, every asset served
by the app. A page is given its data and its URLs by its route (api/routes/maps.py)."""
