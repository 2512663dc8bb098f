"""/login and /logout: a session for the maps in a browser, opened with an API key.

The form takes a key; a valid one gets a signed session cookie (HttpOnly, SameSite=Lax,
Secure over HTTPS, expiring after GRIDMAP_SESSION_HOURS, 12 by default) and is sent on to
the map it came from. The cookie names the key, not its secret: revoking the key ends its
sessions too (within the key cache's TTL, see api/security.py). It authorises reads only.
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import security as auth

router = APIRouter(tags=["auth"])

_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 Log in · gridmap</title>
<style>
body {{ font: 15px/1.5 system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; background: #eef1f4; margin: 0; }}
main {{ max-width: 26rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.3rem; margin: 0 0 1rem; }}
label {{ display: block; margin-bottom: .3rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem; font: inherit; }}
button {{ margin-top: 1rem; padding: .5rem 1.2rem; font: inherit; cursor: pointer; }}
.error {{ color: #b00020; }} .note {{ color: #555; font-size: .9rem; }}
</style></head><body><main>{body}</main></body></html>"""


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    home: str = request.app.url_path_for("maps_index")
    if not target:
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return home
    return target


def _form(request: Request, next_url: str, error: str | None = None) -> str:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    body = (
        "<h1>网格地图 gridmap · 登录 Log in</h1>" + message +
        f'<form method="post" action="{request.app.url_path_for("login")}">'
        '<label for="key">API 密钥 API key</label>'
        '<input type="password" id="key" name="key" autocomplete="current-password" required autofocus '
        'placeholder="gm_…">'
        f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
        '<button type="submit">登录 Log in</button></form>'
        '<p class="note">密钥由管理员创建 Keys are made by an admin: '
        '<code>gridmap keys create --role dispatcher --name NAME</code></p>'
    )
    return _PAGE.format(body=body)


@router.get("/login", summary="The login form for the maps (takes an API key)", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    target = _safe_next(request, next)
    if not auth.enabled():
        body = (f"<h1>网格地图 gridmap</h1><p>认证已关闭 Auth is off on this server: no login is needed.</p>"
                f'<p><a href="{html.escape(target)}">继续 Continue</a></p>')
        return HTMLResponse(_PAGE.format(body=body))
    return HTMLResponse(_form(request, target))


def _same_origin(request: Request) -> bool:
    """Not a form posted from another site (browsers say so in Sec-Fetch-Site; a proxy
    rewriting Host does not change it)."""
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")


@router.post("/login", summary="Open a map session with an API key (form: key, next)", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    target = _safe_next(request, str(form.get("next") or ""))
    if not auth.enabled():
        return RedirectResponse(target, status_code=303)
    if not _same_origin(request):
        return HTMLResponse(_form(request, target, "登录请求来自其他网站 This login came from another site."),
                            status_code=403)
    identity = await auth.verify_key(str(form.get("key") or "").strip())
    if identity is None:
        return HTMLResponse(_form(request, target, "密钥无效或已撤销 This key is not valid (unknown or revoked)."),
                            status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(auth.SESSION_COOKIE, auth.session_cookie(identity), max_age=auth.session_seconds(),
                        path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response


def _secure(request: Request) -> bool:
    """Secure cookies over HTTPS (as uvicorn sees the scheme, X-Forwarded-Proto from a trusted
    proxy included), or always with GRIDMAP_COOKIE_SECURE=on."""
    return request.url.scheme == "https" or auth.policy().cookie_secure


@router.post("/logout", summary="End the map session", response_class=HTMLResponse)
def logout(request: Request) -> Response:
    response = RedirectResponse(request.app.url_path_for("login_form"), status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/logout", summary="End the map session (from a link)", response_class=HTMLResponse)
def logout_link(request: Request) -> Response:
    return logout(request)
