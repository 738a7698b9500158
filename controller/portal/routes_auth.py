"""Sign-in with a one-time link, sign-out, and the portal's front page.

The link (``…/portal/login#token=kgpl_…``) carries its token in the fragment, which browsers
never send: no access log, proxy or Referer header ever holds it. Opening it shows a button
rather than signing in at once: link previewers and mail scanners must not spend the token. The
button's form carries a nonce that must match a cookie set with the page (a login CSRF guard:
another site cannot sign a browser into an organization of its choosing).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from controller.portal import auth
from controller.portal.base import (
    LOGIN_NONCE_COOKIE,
    PREFIX,
    RAW_SESSION,
    SESSION_COOKIE,
    clear_cookie,
    in_thread,
    render,
    same_value,
    set_cookie,
    store,
    take_flash,
)

routes = web.RouteTableDef()


def _login_form(request: web.Request, *, status: int = 200, problem: str = "") -> web.Response:
    """The sign-in form with a fresh nonce, set as a cookie beside it."""
    nonce = secrets.token_urlsafe(24)
    response = render(request, "login.html", status=status, nonce=nonce, problem=problem,
                      signed_out="signed_out" in request.query)
    set_cookie(response, request, LOGIN_NONCE_COOKIE, nonce, max_age=auth.LINK_TTL_S)
    return response


@routes.get("/login", name="login")
async def login_page(request: web.Request) -> web.Response:
    # The link carries its token after "#": browsers never send it, so no access log, proxy or
    # Referer sees it; portal.js moves it into the form.
    return _login_form(request)


@routes.post("/login", name="login_post")
async def login(request: web.Request) -> web.Response:
    form = await request.post()
    token, nonce = form.get("token"), form.get("nonce")
    if not isinstance(token, str) or not isinstance(nonce, str) or not same_value(
        nonce, request.cookies.get(LOGIN_NONCE_COOKIE)
    ):
        return _login_form(request, status=403,
                           problem="This sign-in form is out of date: open the link again.")
    opened = await in_thread(auth.redeem_login_token, store(request), token.strip())
    if opened is None:
        return _login_form(request, status=401, problem=(
            "This sign-in link is unknown, already used or expired. "
            "Ask for a new one: kallglot portal link --org <organization id>"))
    if RAW_SESSION in request:  # signing in again (perhaps to another organization) ends the old session
        await in_thread(auth.end_session, store(request), request[RAW_SESSION])
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
