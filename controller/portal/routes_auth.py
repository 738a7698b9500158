"""Sign-in with a one-time link, sign-out, and the portal's front page.

Opening the link shows a button rather than signing in at once: link previewers and mail
scanners that fetch URLs must not spend the token. The button's form carries a nonce that must
match a cookie set with the page (a login CSRF guard: another site cannot sign a browser into
an organization of its choosing).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from controller.portal import auth
from controller.portal.base import (
    LOGIN_NONCE_COOKIE,
    PREFIX,
    RAW_SESSION,
    SESSION,
    SESSION_COOKIE,
    clear_cookie,
    in_thread,
    redirect,
    render,
    same_value,
    set_cookie,
    store,
    take_flash,
)

routes = web.RouteTableDef()


@routes.get("/login", name="login")
async def login_page(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    if SESSION in request and not token:
        raise redirect(PREFIX + "/")
    nonce = secrets.token_urlsafe(24) if token else ""
    response = render(request, "login.html", token=token, nonce=nonce,
                      signed_out="signed_out" in request.query)
    if nonce:
        set_cookie(response, request, LOGIN_NONCE_COOKIE, nonce, max_age=auth.LINK_TTL_S)
    return response


@routes.post("/login", name="login_post")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token, nonce = form.get("token"), form.get("nonce")
    if not isinstance(token, str) or not isinstance(nonce, str) or not same_value(
        nonce, request.cookies.get(LOGIN_NONCE_COOKIE)
    ):
        return render(request, "login.html", status=403, token="", nonce="", signed_out=False,
                      problem="This sign-in form is out of date: open the link again.")
    opened = await in_thread(auth.redeem_login_token, store(request), token)
    if opened is None:
        return render(request, "login.html", status=401, token="", nonce="", signed_out=False,
                      problem="This sign-in link is unknown, already used or expired. "
                              "Ask for a new one: kallglot portal link --org <organization id>")
    raw, _ = opened
    response = web.HTTPSeeOther(PREFIX + "/")
    set_cookie(response, request, SESSION_COOKIE, raw, max_age=auth.SESSION_TTL_S)
    clear_cookie(response, LOGIN_NONCE_COOKIE)
    raise response


@routes.post("/logout", name="logout")
async def logout(request: web.Request) -> web.Response:
    await in_thread(auth.end_session, store(request), request[RAW_SESSION])
    response = web.HTTPSeeOther(PREFIX + "/login?signed_out=1")
    clear_cookie(response, SESSION_COOKIE)
    raise response


@routes.get("/", name="home")
async def home(request: web.Request) -> web.Response:
    return render(request, "home.html", nav="home", flash=await take_flash(request))
