"""The console's pages. Each report page is a view of a reports API answer: it calls the same
query (``ReportQueries``) with the parameters of its URL (the last search stays in the URL)
plus the viewer's time zone, and links its JSON twin. Forms that change something post with
the session's CSRF token; viewers get 403 for every change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import segno
from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from postline.common.policy.fields import parse_domain
from postline.reports.access import Gate
from postline.reports.console import views
from postline.reports.console.accounts import (
    LANGUAGES,
    MIN_PASSWORD,
    ROLES,
    Accounts,
    new_totp_secret,
    totp_uri,
)
from postline.reports.console.assets import vendor_file
from postline.reports.console.auth import ConsoleAuth, LoginFailed, User
from postline.reports.console.i18n import Words
from postline.reports.console.oplog import ACTIONS, OperationLog
from postline.reports.console.render import render
from postline.reports.console.sessions import CODE, LOGIN_COOKIE, SESSION_COOKIE, new_token, same
from postline.reports.errors import ReportsError, Throttled, Unavailable
from postline.reports.params import SearchError
from postline.reports.queries import ReportQueries
from postline.reports.suppressions import SuppressionsClient

logger = logging.getLogger(__name__)


class LoginRequired(Exception):
    """No live session: the page answers a redirect to the log-in page."""


class PageRefused(Exception):
    """A console page's refusal, shown as a page in the viewer's words."""

    def __init__(self, status: int, key: str, user: User | None = None) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.user = user


@dataclass
class Console:
    queries: ReportQueries
    gate: Gate
    auth: ConsoleAuth
    accounts: Accounts
    oplog: OperationLog
    suppressions: SuppressionsClient | None
    assets: str = ""

    @property
    def servers(self) -> dict[str, list[str]]:
        return {
            name: [u.name for u in server.api_users]
            for name, server in self.queries.policy.servers.items()
        }


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def words_for(request: Request, user: User | None = None) -> Words:
    if user is not None:
        return Words(user.account.language)
    asked = request.query_params.get("lang", "")
    if asked in LANGUAGES:
        return Words(asked)
    accept = request.headers.get("accept-language", "").lower()
    return Words("ja" if accept.startswith("ja") else "en")


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/",
    )


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/errors"


def console_router(c: Console) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def user_of(request: Request) -> User:
        user = await c.auth.user(request.cookies.get(SESSION_COOKIE))
        if user is None:
            raise LoginRequired
        return user

    async def changing_form(request: Request, user: User, *, admin: bool = False) -> dict[str, str]:
        """The posted form of a change: its CSRF token checked, the viewer refused."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not user.session.csrf_ok(form.get("csrf_token")):
            logger.warning("%s: form without a valid CSRF token refused", user.account.email)
            raise PageRefused(403, "refused.csrf", user)
        if not user.caller.may_change or (admin and not user.account.is_admin):
            raise PageRefused(403, "refused.viewer", user)
        return form

    def base(request: Request, user: User, words: Words, **extra: Any) -> dict[str, Any]:
        params = dict(request.query_params)
        return {
            "user": user.account,
            "csrf": user.session.csrf,
            "menu": views.menu(words, user.account.is_admin, request.url.path),
            "params": params,
            "scope": views.scope_list(c.servers, params),
            "notice": request.query_params.get("done", ""),
            **extra,
        }

    async def report(
        request: Request,
        template: str,
        days: int,
        run: Callable[[User, dict[str, str]], Awaitable[Any]],
        shape: Callable[[Words, Any], dict[str, Any]] = lambda w, a: {},
        api: str | None = None,
        **extra: Any,
    ) -> Response:
        """A report page: the URL's search (or the default days), the answer, its JSON twin."""
        user = await user_of(request)
        words = words_for(request, user)
        params = views.with_defaults(request.query_params, user.account.timezone, days)
        asked = {**params, "tz": user.account.timezone}
        answer, error, status = None, "", 200
        try:
            answer = await run(user, asked)
        except SearchError as exc:
            error, status = views.form_error(words, exc), 400
        except ReportsError as exc:
            error, status = words(f"refused.{exc.code}"), exc.status
        context = base(request, user, words, **extra)
        context["params"] = params
        context.update(
            answer=answer,
            error=error,
            api_url=f"{api}?{urlencode(asked)}" if api else "",
            **(shape(words, answer) if answer is not None else {}),
        )
        return render(request, template, words, context, status)

    # --- logging in and out ---------------------------------------------------------------

    def login_page(
        request: Request, words: Words, error: str = "", status: int = 200, **extra: Any
    ) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or new_token()
        context = {
            "csrf": token,
            "error": error,
            "next": safe_next(request.query_params.get("next")),
            "email": "",
            **extra,
        }
        response = render(request, "login", words, context, status)
        set_cookie(response, request, LOGIN_COOKIE, token, 3600)
        return response

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/errors", 303)

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request, words_for(request))

    @router.post("/login")
    async def login(request: Request) -> Response:
        words = words_for(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not same(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf_token", "")):
            return login_page(request, words, words("refused.csrf"), 403)
        email = form.get("email", "")
        try:
            result = await c.auth.login(email, form.get("password", ""), client_ip(request))
        except Throttled as exc:
            return login_page(
                request, words, words("login.throttled", seconds=exc.retry_after), 429,
                email=email,
            )  # fmt: skip
        except LoginFailed:
            return login_page(request, words, words("login.failed"), 401, email=email)
        target = safe_next(form.get("next"))
        if result.session.stage == CODE:
            target = "/login/code?" + urlencode({"next": target})
        response = RedirectResponse(target, 303)
        set_cookie(response, request, SESSION_COOKIE, result.token, int(c.auth.sessions.ttl))
        return response

    async def pending_of(request: Request) -> User:
        pending = await c.auth.user(request.cookies.get(SESSION_COOKIE), stage=CODE)
        if pending is None:
            raise LoginRequired
        return pending

    def code_page(request: Request, pending: User, error: str = "", status: int = 200) -> Response:
        words = words_for(request, pending)
        context = {
            "csrf": pending.session.csrf,
            "error": error,
            "next": safe_next(request.query_params.get("next")),
        }
        return render(request, "login_code", words, context, status)

    @router.get("/login/code")
    async def code_form(request: Request) -> Response:
        return code_page(request, await pending_of(request))

    @router.post("/login/code")
    async def code(request: Request) -> Response:
        pending = await pending_of(request)
        words = words_for(request, pending)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not pending.session.csrf_ok(form.get("csrf_token")):
            return code_page(request, pending, words("refused.csrf"), 403)
        try:
            result = await c.auth.second_step(pending, form.get("code", ""), client_ip(request))
        except Throttled as exc:
            return code_page(
                request, pending, words("login.throttled", seconds=exc.retry_after), 429
            )
        except LoginFailed:
            return code_page(request, pending, words("login.code_failed"), 401)
        response = RedirectResponse(safe_next(form.get("next")), 303)
        set_cookie(response, request, SESSION_COOKIE, result.token, int(c.auth.sessions.ttl))
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        user = await user_of(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not user.session.csrf_ok(form.get("csrf_token")):
            raise PageRefused(403, "refused.csrf", user)
        await c.auth.logout(user, client_ip(request))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- reports ----------------------------------------------------------------------------

    def paged(words: Words, answer: Any) -> dict[str, Any]:
        return {"pages": views.pages(answer["page"], answer["pages"])}

    async def log_page(request: Request, kind: str) -> Response:
        """The error log or the delivery log: the search, its results, its CSV link."""

        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.search(kind, user.caller, params)

        user = await user_of(request)
        words = words_for(request, user)
        params = views.with_defaults(request.query_params, user.account.timezone, 1)
        statuses = (
            views.error_status_choices(words)
            if kind == "errors"
            else views.delivery_status_choices(words)
        )
        csv_url = f"/api/v1/{kind}.csv" + views_query(params, user) if _csv(c, user, params) else ""
        return await report(
            request, kind, views.DEFAULT_DAYS["log"], run, paged,
            api=f"/api/v1/{kind}", statuses=statuses, csv_url=csv_url,
        )  # fmt: skip

    @router.get("/errors")
    async def errors(request: Request) -> Response:
        return await log_page(request, "errors")

    @router.get("/deliveries")
    async def deliveries(request: Request) -> Response:
        return await log_page(request, "deliveries")

    @router.get("/errors/{event_id}")
    async def error_detail(request: Request, event_id: str) -> Response:
        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.error(user.caller, event_id, params)

        return await report(
            request, "error_detail", 1, run, api=f"/api/v1/errors/{quote(event_id, safe='')}"
        )

    @router.get("/deliveries/{delivery_id}")
    async def delivery(request: Request, delivery_id: str) -> Response:
        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.history(user.caller, delivery_id, params)

        return await report(
            request, "delivery", 1, run, api=f"/api/v1/deliveries/{quote(delivery_id, safe='')}"
        )

    @router.get("/graphs/{name}")
    async def graph(request: Request, name: str) -> Response:
        found = views.GRAPHS.get(name)
        if found is None:
            raise PageRefused(404, "refused.not_found", await user_of(request))
        statistic, draw = found

        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.stats(statistic, user.caller, params)

        return await report(
            request, f"graph_{name}", views.DEFAULT_DAYS["graph"], run,
            lambda w, a: {"chart": draw(w, a)}, api=f"/api/v1/stats/{statistic}",
        )  # fmt: skip

    @router.get("/stats")
    async def stats_home() -> Response:
        return RedirectResponse("/stats/daily", 303)

    @router.get("/stats/{name}")
    async def statistic(request: Request, name: str) -> Response:
        kind = views.STAT_PAGES.get(name)
        if kind is None:
            raise PageRefused(404, "refused.not_found", await user_of(request))

        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.stats(name, user.caller, params)

        days = views.DEFAULT_DAYS["monthly" if name == "monthly" else "stats"]
        return await report(
            request, "stats", days, run,
            lambda w, a: {"chart": views.stats_chart(w, a, kind)},
            api=f"/api/v1/stats/{name}", stat=name, stat_pages=list(views.STAT_PAGES),
        )  # fmt: skip

    @router.get("/live")
    async def live(request: Request) -> Response:
        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.queries.live(user.caller, params)

        return await report(request, "live", 1, run, api="/api/v1/deliveries/live")

    @router.get("/settings")
    async def settings(request: Request) -> Response:
        async def run(user: User, params: dict[str, str]) -> Any:
            return c.queries.settings(user.caller, params)

        return await report(request, "settings", 1, run, api="/api/v1/settings")

    # --- suppressions -----------------------------------------------------------------------

    @router.get("/suppressions")
    async def suppressions(request: Request) -> Response:
        async def run(user: User, params: dict[str, str]) -> Any:
            if c.suppressions is None:
                raise Unavailable("no bounce service is configured")
            return await c.suppressions.list(user.caller, params)

        return await report(request, "suppressions", 1, run, paged, api="/api/v1/suppressions")

    async def suppression_change(request: Request, add: bool) -> Response:
        user = await user_of(request)
        form = await changing_form(request, user)
        words = words_for(request, user)
        if c.suppressions is None:
            raise PageRefused(503, "refused.unavailable", user)
        ip = client_ip(request)
        try:
            if add:
                added = await c.suppressions.add(user.caller, form, user.account.timezone)
                await c.oplog.record(
                    user.account.email, ip, "suppression_added", added["address"],
                    f"server {added['server']}",
                )  # fmt: skip
                done = "suppression_added"
            else:
                address, server = form.get("address", ""), form.get("server") or None
                removed = await c.suppressions.remove(user.caller, address, server)
                if removed:
                    await c.oplog.record(
                        user.account.email, ip, "suppression_removed", address.lower(),
                        f"server {server or ''}".strip(),
                    )  # fmt: skip
                done = "suppression_removed" if removed else "suppression_absent"
        except SearchError as exc:
            context = base(request, user, words, answer=None, pages=[], api_url="")
            context["error"] = views.form_error(words, exc)
            return render(request, "suppressions", words, context, 400)
        except ReportsError as exc:
            raise PageRefused(exc.status, f"refused.{exc.code}", user) from None
        return RedirectResponse("/suppressions?" + urlencode({"done": done}), 303)

    @router.post("/suppressions")
    async def add_suppression(request: Request) -> Response:
        return await suppression_change(request, add=True)

    @router.post("/suppressions/remove")
    async def remove_suppression(request: Request) -> Response:
        return await suppression_change(request, add=False)

    # --- accounts ---------------------------------------------------------------------------

    async def admin_of(request: Request) -> User:
        user = await user_of(request)
        if not user.account.is_admin:
            raise PageRefused(403, "refused.admin_only", user)
        return user

    def accounts_page(
        request: Request, user: User, accounts: Any, error: str = "", status: int = 200
    ) -> Response:
        words = words_for(request, user)
        context = base(
            request, user, words,
            accounts=accounts, error=error, roles=ROLES, languages=LANGUAGES,
            timezones=views.timezones(), api_url="/api/v1/accounts",
        )  # fmt: skip
        return render(request, "accounts", words, context, status)

    @router.get("/accounts")
    async def accounts(request: Request) -> Response:
        user = await admin_of(request)
        return accounts_page(request, user, await c.accounts.all())

    @router.post("/accounts")
    async def create_account(request: Request) -> Response:
        user = await admin_of(request)
        form = await changing_form(request, user, admin=True)
        words = words_for(request, user)
        email = form.get("email", "").strip().lower()
        problem = _account_problem(form, email)
        if not problem and await c.accounts.get(email) is not None:
            problem = "problem.account_exists"
        if problem:
            return accounts_page(
                request, user, await c.accounts.all(), words(problem, n=MIN_PASSWORD), 400
            )
        await c.accounts.create(
            email, form["password"], form["role"], form["language"], form["timezone"],
            user.account.email,
        )  # fmt: skip
        await c.oplog.record(
            user.account.email, client_ip(request), "account_created", email, f"role {form['role']}"
        )
        return RedirectResponse("/accounts?done=account_created", 303)

    @router.post("/accounts/{email}/{action}")
    async def change_account(request: Request, email: str, action: str) -> Response:
        user = await admin_of(request)
        await changing_form(request, user, admin=True)
        words = words_for(request, user)
        target = await c.accounts.get(email)
        if target is None or action not in ("disable", "enable", "reset-2fa"):
            raise PageRefused(404, "refused.not_found", user)
        if action == "disable" and target.email == user.account.email:
            return accounts_page(
                request, user, await c.accounts.all(), words("problem.disable_self"), 400
            )
        ip = client_ip(request)
        if action == "reset-2fa":
            await c.accounts.reset_totp(target, user.account.email)
            await c.oplog.record(user.account.email, ip, "totp_reset", target.email)
        else:
            disabled = action == "disable"
            await c.accounts.save(replace(target, disabled=disabled), user.account.email)
            if disabled:
                await c.auth.sessions.revoke_all(target.email)
            name = "account_disabled" if disabled else "account_enabled"
            await c.oplog.record(user.account.email, ip, name, target.email)
        done = {"disable": "account_disabled", "enable": "account_enabled"}.get(
            action, "totp_reset"
        )
        return RedirectResponse(f"/accounts?done={done}", 303)

    # --- my account -------------------------------------------------------------------------

    def my_page(
        request: Request, user: User, error: str = "", status: int = 200, **extra: Any
    ) -> Response:
        words = words_for(request, user)
        secret = extra.pop("secret", None) or new_totp_secret()
        qr = segno.make(totp_uri(secret, user.account.email), error="m")
        context = base(
            request, user, words,
            error=error, languages=LANGUAGES, timezones=views.timezones(),
            totp_secret=secret, totp_qr=qr.svg_inline(scale=4, dark="#111827", light="#ffffff"),
            api_url="", **extra,
        )  # fmt: skip
        return render(request, "my_account", words, context, status)

    @router.get("/account")
    async def my_account(request: Request) -> Response:
        return my_page(request, await user_of(request))

    async def own_form(request: Request, user: User) -> dict[str, str]:
        """A form about one's own account: CSRF checked; viewers may change their own."""
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not user.session.csrf_ok(form.get("csrf_token")):
            raise PageRefused(403, "refused.csrf", user)
        return form

    @router.post("/account/password")
    async def change_password(request: Request) -> Response:
        user = await user_of(request)
        form = await own_form(request, user)
        words = words_for(request, user)
        new = form.get("new_password", "")
        if not await _verify(user, form.get("current_password", "")):
            return my_page(request, user, words("problem.current_password"), 400)
        if len(new) < MIN_PASSWORD or len(new) > 1000:
            return my_page(request, user, words("problem.password_length", n=MIN_PASSWORD), 400)
        if new != form.get("confirm_password", ""):
            return my_page(request, user, words("problem.password_confirm"), 400)
        await c.accounts.set_password(user.account, new, user.account.email)
        await c.oplog.record(user.account.email, client_ip(request), "password_changed")
        return RedirectResponse("/account?done=password_changed", 303)

    @router.post("/account/preferences")
    async def preferences(request: Request) -> Response:
        user = await user_of(request)
        form = await own_form(request, user)
        words = words_for(request, user)
        language, timezone = form.get("language", ""), form.get("timezone", "")
        if language not in LANGUAGES or timezone not in views.timezones():
            return my_page(request, user, words("problem.preferences"), 400)
        await c.accounts.save(
            replace(user.account, language=language, timezone=timezone), user.account.email
        )
        await c.oplog.record(
            user.account.email, client_ip(request), "preferences_changed", "",
            f"language {language}, time zone {timezone}",
        )  # fmt: skip
        return RedirectResponse("/account?done=preferences_changed", 303)

    @router.post("/account/totp")
    async def set_up_totp(request: Request) -> Response:
        user = await user_of(request)
        form = await own_form(request, user)
        words = words_for(request, user)
        secret = form.get("secret", "")
        if not (16 <= len(secret) <= 64 and secret.isalnum()) or not c.accounts.check_code(
            user.account, form.get("code", ""), secret
        ):
            return my_page(request, user, words("problem.totp_code"), 400, secret=secret)
        await c.accounts.set_totp(user.account, secret, user.account.email)
        await c.oplog.record(user.account.email, client_ip(request), "totp_enabled")
        return RedirectResponse("/account?done=totp_enabled", 303)

    # --- operation log ----------------------------------------------------------------------

    @router.get("/operations")
    async def operations(request: Request) -> Response:
        await admin_of(request)

        async def run(user: User, params: dict[str, str]) -> Any:
            return await c.oplog.search(params)

        return await report(
            request, "operations", 7, run, paged, api="/api/v1/operations", actions=ACTIONS
        )

    # --- static files -----------------------------------------------------------------------

    @router.get("/static/vendor/{name}")
    async def vendor(name: str) -> Response:
        path = vendor_file(c.assets, name)
        if path is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="text/javascript", headers=_CACHE)

    return router


_CACHE = {"Cache-Control": "public, max-age=3600"}


async def _verify(user: User, password: str) -> bool:
    import asyncio

    return await asyncio.to_thread(user.account.verify, password)


def _account_problem(form: Mapping[str, str], email: str) -> str:
    if "@" not in email or len(email) > 320 or email.startswith("@"):
        return "problem.email"
    try:
        parse_domain(email.rpartition("@")[2])
    except ValueError:
        return "problem.email"
    if form.get("role") not in ROLES or form.get("language") not in LANGUAGES:
        return "problem.preferences"
    if form.get("timezone") not in views.timezones():
        return "problem.preferences"
    if not MIN_PASSWORD <= len(form.get("password", "")) <= 1000:
        return "problem.password_length"
    return ""


def _csv(c: Console, user: User, params: Mapping[str, str]) -> bool:
    try:
        return c.queries.csv_allowed(user.caller, params)
    except (SearchError, ReportsError):
        return False


def views_query(params: Mapping[str, str], user: User) -> str:
    kept = {k: v for k, v in params.items() if k not in ("page", "done") and v}
    return "?" + urlencode({**kept, "tz": user.account.timezone})
