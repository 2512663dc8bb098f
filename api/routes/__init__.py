"""One module per resource of the HTTP API; api/app.py includes their routers."""
