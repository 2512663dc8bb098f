"""Generated sample districts and cities: roads, compounds, buildings and every unit level."""
