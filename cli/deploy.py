"""gridmap nginx-config: the nginx in front of several app instances (the scaled layout).

The configuration it writes:
- spreads requests over the app instances (`--app`, least connections) and passes a request
  to the next instance when one is down or answers 502/503 (GET and HEAD only: a report or an
  edit is never sent twice);
- caches vector tiles: a tile URL carrying its level's current state (`?v=`, which the maps
  use) is immutable, so nginx keeps it and answers it without asking an app; every tile is
  still authorised by the app (`auth_request` to /whoami, which a worker answers from its key
  cache), so a revoked key stops getting tiles at once;
- passes everything else through, with X-Forwarded-For and X-Forwarded-Proto set (uvicorn
  trusts them from FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console

TEMPLATE = """# gridmap behind nginx: {count} app instance(s), vector tiles cached. Written by `gridmap nginx-config`.
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{daemon}
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # tiles: Cache-Control from the app decides (immutable with the current ?v=, no-cache without)
    proxy_cache_path {cache} levels=1:2 keys_zone=gridmap_tiles:32m max_size={cache_size} inactive=7d
                     use_temp_path=off;

    upstream gridmap {{
        least_conn;
{servers}
        keepalive 64;
    }}

    server {{
        listen {listen};
        client_max_body_size 21m;

        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
        proxy_next_upstream_tries 2;
        proxy_read_timeout 300s;

        location = /_gridmap_auth {{
            internal;
            proxy_pass http://gridmap/whoami;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}

        location /tiles/ {{
            auth_request /_gridmap_auth;
            proxy_pass http://gridmap;
            proxy_cache gridmap_tiles;
            proxy_cache_lock on;
            proxy_cache_revalidate on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}

        location / {{
            proxy_pass http://gridmap;
        }}
    }}
}}
"""


def render(apps: list[str], listen: str, prefix: Path, cache: Path, cache_size: str = "2g",
           foreground: bool = False) -> str:
    """The nginx configuration for these app instances (host:port each)."""
    servers = "\n".join(f"        server {app} max_fails=1 fail_timeout=5s;" for app in apps)
    return TEMPLATE.format(count=len(apps), prefix=prefix, cache=cache, cache_size=cache_size, servers=servers,
                           listen=listen, daemon="daemon off;" if foreground else "")


def nginx_config(
    app: list[str] = typer.Option(..., "--app", help="an app instance, host:port (repeat for each)"),
    listen: str = typer.Option("8000", help="where nginx listens: port, or address:port"),
    prefix: Path = typer.Option(Path("/var/lib/gridmap-nginx"), help="nginx's pid, log and temporary files"),
    cache: Path = typer.Option(Path("/var/cache/gridmap-tiles"), help="the tile cache"),
    cache_size: str = typer.Option("2g", help="the tile cache's largest size"),
    foreground: bool = typer.Option(False, help="daemon off (under a supervisor, or in a container)"),
    output: Path | None = typer.Option(None, "-o", "--output", help="write here instead of standard output"),
) -> None:
    """Write the nginx configuration of the scaled layout (docs/operations.md, Several app instances)."""
    text = render(app, listen, prefix, cache, cache_size, foreground)
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}: nginx -p {prefix} -c {output.resolve()}")
