"""Who may call the HTTP API: tokens with a role, the Host allowlist, the Origin checks, the login cookie.

Tokens. `<warehouse>/tokens.json` (written by `media-assets tokens add/remove`; `serve --tokens FILE` reads
another) holds each token's name, role and SHA-256, never the token itself, which `tokens add` prints once.
`MEDIA_ASSETS_TOKENS=name:role:token,…` adds tokens for containers. Roles: `viewer` reads (search,
thumbnails, video, chapters, transcripts, clusters, feedback rows); `editor` also writes (feedback: moves
and pins, merges, splits, pairs, relevance), which trains the adapter and re-clusters the library.
`ROUTE_ROLES` classifies every route of the app in this one place, and `install` refuses an app with a
route it does not list. A request carries its token as `Authorization: Bearer <token>` or in the
`media_assets_token` cookie `POST /login` sets (HttpOnly, SameSite=Strict, Secure over https). No token or
an unknown one: 401 with `WWW-Authenticate: Bearer`; a viewer's token on a write: 403. Feedback written
through the API records `source = "api:<token name>"`. The token file is re-read when it changes (checked
at most once a second), so `tokens remove` takes effect without a restart; a file that turns bad lets none
of its tokens in (closed, never open).

Open. Without tokens every caller is an editor and feedback records `source = "api"`; `serving_access`
allows that on a loopback address only, unless told `no_auth`.

Pages in a browser. Every request's `Host` must name this server: the bound address, localhost, 127.0.0.1,
[::1] and the `allow_hosts`; bound to every interface (0.0.0.0, ::), also this machine's name and any IP
address (an address is no DNS name, so it cannot be rebound). Another name is a DNS-rebinding page: 403.
A write (POST, PUT, PATCH, DELETE) is refused (403) when it comes from another origin's page: an `Origin`
that is neither this server's own (the same host and port as `Host`) nor a configured CORS origin,
`Sec-Fetch-Site: cross-site` or `same-site`, or a write carried by the cookie alone with no `Origin` (a
browser sends one with every POST; scripts, which do not, send `Authorization: Bearer`). With no tokens,
writes without `Origin` (curl, Python) pass. CORS is off unless `cors_origins` names origins.
"""

import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.routing import Match

from media_assets.warehouse import Warehouse

log = logging.getLogger(__name__)

PUBLIC, VIEWER, EDITOR = "public", "viewer", "editor"
ROLES = (VIEWER, EDITOR)
RANK = {PUBLIC: 0, VIEWER: 1, EDITOR: 2}
TOKENS_ENV = "MEDIA_ASSETS_TOKENS"
TOKENS_FILE = "tokens.json"
COOKIE = "media_assets_token"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # a browser is asked for its token once a month
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
MIN_TOKEN_CHARS = 16  # shorter is a password someone chose, not a secret (token_urlsafe(32) gives 43)
MAX_TOKEN_CHARS = 512
MAX_LOGIN_BYTES = 4096
LOGIN_FAILURES, LOGIN_WINDOW_S = 10, 60.0  # per client address; tokens are 256-bit, this only slows noise
RELOAD_EVERY_S = 1.0

# Every route of the app and who may call it. A route missing here makes `install` fail, so a new endpoint
# cannot be served unclassified; tests/test_access.py calls every one with every role.
ROUTE_ROLES: dict[tuple[str, str], str] = {
    # the page and the API's description: no data in them
    ("GET", "/"): PUBLIC,
    ("GET", "/static/{name}"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    # reads
    ("GET", "/session"): VIEWER,
    ("GET", "/health"): VIEWER,  # the warehouse's path, counts, model
    ("GET", "/search"): VIEWER,
    ("POST", "/search/image"): VIEWER,  # an image to search with; nothing is stored
    ("GET", "/moments"): VIEWER,
    ("GET", "/timeline/{media_id}"): VIEWER,
    ("GET", "/transcript/{media_id}"): VIEWER,
    ("GET", "/chapters/{media_id}"): VIEWER,
    ("GET", "/summaries"): VIEWER,
    ("GET", "/similar/frame/{frame_id}"): VIEWER,
    ("GET", "/similar/video/{media_id}"): VIEWER,
    ("GET", "/frame/{frame_id}"): VIEWER,
    ("GET", "/face/{face_id}"): VIEWER,
    ("GET", "/video/{media_id}"): VIEWER,
    ("GET", "/clusters"): VIEWER,
    ("GET", "/clusters/{cluster_id}"): VIEWER,
    ("GET", "/feedback"): VIEWER,
    # writes: feedback trains the adapter, pins re-cluster the library
    ("POST", "/feedback/move"): EDITOR,
    ("POST", "/feedback/merge"): EDITOR,
    ("POST", "/feedback/split"): EDITOR,
    ("POST", "/feedback/pair"): EDITOR,
    ("POST", "/feedback/relevance"): EDITOR,
}


class AccessError(ValueError):
    """A token file, token variable or serving option that cannot be used as given."""


# -- tokens ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One accepted token: its name (recorded in feedback rows), role and SHA-256 (hex)."""

    name: str
    role: str
    sha256: str
    created_at: str | None = None
    origin: str = "file"  # "file" or the environment variable's name

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "sha256": self.sha256, "created_at": self.created_at}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_path(warehouse: Warehouse) -> Path:
    return warehouse.root / TOKENS_FILE


def _check_name(name, where: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise AccessError(
            f"{where}: a token's name is 1-64 letters, digits or _.@- starting with a letter or digit, got {name!r}"
        )
    return name


def _check_role(role, where: str) -> str:
    if role not in ROLES:
        raise AccessError(f"{where}: role must be viewer or editor, got {role!r}")
    return role


def _no_duplicates(tokens: list[Token], where: str) -> list[Token]:
    seen: dict[str, Token] = {}
    for token in tokens:
        if token.name in seen:
            raise AccessError(
                f"{where}: the name {token.name!r} is given twice ({seen[token.name].origin}, {token.origin})"
            )
        seen[token.name] = token
    return tokens


def read_tokens_file(path: Path) -> list[Token]:
    """The tokens of a token file; a missing file has none. A file that is not what `tokens add` writes is an
    `AccessError` naming the file and the reason."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AccessError(f"{path}: cannot read the token file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AccessError(f"{path}: not a token file: invalid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
        raise AccessError(f'{path}: not a token file: expected {{"version": 1, "tokens": [...]}}')
    tokens = []
    for number, entry in enumerate(data["tokens"], 1):
        where = f"{path}: token {number}"
        if not isinstance(entry, dict):
            raise AccessError(f"{where}: expected an object with name, role and sha256")
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise AccessError(f"{where}: sha256 must be 64 lower-case hex digits")
        tokens.append(
            Token(
                _check_name(entry.get("name"), where),
                _check_role(entry.get("role"), where),
                digest,
                entry.get("created_at"),
            )
        )
    return _no_duplicates(tokens, str(path))


def parse_tokens_env(value: str, variable: str = TOKENS_ENV) -> list[Token]:
    """`name:role:token,name2:role2:token2` (tokens are URL-safe: no `,`); errors never show a token."""
    tokens = []
    for number, item in enumerate((part.strip() for part in value.split(",")), 1):
        if not item:
            continue
        where = f"{variable} entry {number}"
        parts = item.split(":", 2)
        if len(parts) != 3:
            raise AccessError(f"{where}: expected name:role:token")
        name, role, secret = (p.strip() for p in parts)
        where = f"{variable} entry {number} ({name!r})"
        _check_name(name, where)
        _check_role(role, where)
        if not MIN_TOKEN_CHARS <= len(secret) <= MAX_TOKEN_CHARS:
            raise AccessError(
                f"{where}: a token has {MIN_TOKEN_CHARS}-{MAX_TOKEN_CHARS} characters "
                '(make one: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        tokens.append(Token(name, role, hash_token(secret), origin=variable))
    return _no_duplicates(tokens, variable)


@contextmanager
def _locked(path: Path):
    """One writer of the token file at a time (a lock file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_tokens_file(path: Path, tokens: list[Token]) -> None:
    """Replace the file at once (temp file + rename), readable by its owner only."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"version": 1, "tokens": [t.to_dict() for t in tokens]}, file, indent=2)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path)


def add_token(path: Path, name: str, role: str) -> str:
    """A new random token named `name` with `role`, stored as its hash; returns the token (shown once)."""
    _check_name(name, "tokens add")
    _check_role(role, "tokens add")
    path = Path(path)
    token = new_token()
    with _locked(path):
        tokens = read_tokens_file(path)
        if any(t.name == name for t in tokens):
            raise AccessError(f"{path}: there is already a token named {name!r} (remove it first)")
        created = datetime.now(UTC).isoformat(timespec="seconds")
        _write_tokens_file(path, [*tokens, Token(name, role, hash_token(token), created)])
    return token


def remove_token(path: Path, name: str) -> Token:
    """Take the token named `name` out of the file; returns it."""
    path = Path(path)
    with _locked(path):
        tokens = read_tokens_file(path)
        gone = next((t for t in tokens if t.name == name), None)
        if gone is None:
            raise AccessError(f"{path}: there is no token named {name!r} (see: media-assets tokens list)")
        _write_tokens_file(path, [t for t in tokens if t.name != name])
    return gone


class TokenSet:
    """Tokens to check a presented token against."""

    def __init__(self, tokens: Iterable[Token]):
        self.tokens = tuple(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def check(self, token: str | None) -> Token | None:
        """The entry of `token`, or None. Its hash is compared with every entry's (hmac.compare_digest, no
        early exit), so the time says nothing about which entry nearly matched."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = hash_token(token)
        found = None
        for entry in self.tokens:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found


def _stamp(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class TokenSource:
    """The tokens a server accepts: a token file's, re-read when it changes, plus fixed ones (the
    environment's). The first read raises on a bad file; later a bad file counts as having no tokens."""

    def __init__(self, path: Path | None = None, fixed: Iterable[Token] = ()):
        self.path = Path(path) if path is not None else None
        self.fixed = tuple(fixed)
        self._lock = threading.Lock()
        self._stamp = _stamp(self.path) if self.path else None
        self._checked = time.monotonic()
        from_file = read_tokens_file(self.path) if self.path else []
        self._set = TokenSet(_no_duplicates([*self.fixed, *from_file], "tokens"))

    def current(self) -> TokenSet:
        if self.path is None or time.monotonic() - self._checked < RELOAD_EVERY_S:
            return self._set
        with self._lock:
            self._checked = time.monotonic()
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    from_file = read_tokens_file(self.path)
                except AccessError as exc:
                    log.error("%s; none of its tokens is accepted until it is fixed", exc)
                    from_file = []
                fixed = {t.name for t in self.fixed}
                clashing = [t.name for t in from_file if t.name in fixed]
                if clashing:
                    log.error("%s: %s also named in %s; the file's are not accepted", self.path, clashing, TOKENS_ENV)
                self._set = TokenSet([*self.fixed, *(t for t in from_file if t.name not in fixed)])
                log.info("token file %s changed: %d tokens", self.path, len(self._set))
        return self._set

    def __len__(self) -> int:
        return len(self.current())


def load_tokens(
    warehouse: Warehouse, tokens_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> TokenSource | None:
    """The tokens of `tokens_file` (default `<warehouse>/tokens.json`; a file named explicitly must exist)
    and of $MEDIA_ASSETS_TOKENS; None when there are none."""
    environ = os.environ if environ is None else environ
    path = Path(tokens_file) if tokens_file is not None else tokens_path(warehouse)
    if tokens_file is not None and not path.is_file():
        raise AccessError(f"{path}: no such token file (make one: media-assets tokens add NAME --tokens {path})")
    source = TokenSource(path, parse_tokens_env(environ.get(TOKENS_ENV, "")))
    return source if len(source) else None


# -- hosts and origins ----------------------------------------------------------------------------------


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(host name, port) of a Host header or an address (`[::1]:8000`, `Example.org.`); None if malformed."""
    value = value.strip()
    if not value or any(c in value for c in "/?#@\\ "):
        return None
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    name = (parts.hostname or "").rstrip(".")
    return (name, port) if name else None


def _host_name(value: str) -> str:
    """The host name of a bound address or an `--allow-host` value, as `host_allowed` compares them."""
    value = value.strip()
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if _is_ip(bare):
        return str(ipaddress.ip_address(bare))
    split = _split_host(value)
    if split is None:
        raise AccessError(f"{value!r} is not a host name or address")
    return split[0].lower()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server to this machine (127.0.0.0/8, ::1, localhost)."""
    name = _host_name(host) if host not in WILDCARD_HOSTS else ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def origin_key(url: str) -> str:
    """`scheme://host[:port]` as a browser sends it in `Origin` (lower case, no default port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise AccessError(f"{url!r} is not an origin ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise AccessError(f"{url!r} is not an origin: give scheme://host[:port], e.g. https://app.example:3000")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


# -- the policy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who made a request: a token's name and role, or nobody (the API is open, or the route is public)."""

    name: str | None
    role: str
    via: str  # "bearer", "cookie", "open" (no tokens) or "none" (a public route)

    @property
    def source(self) -> str:
        """What the feedback rows it writes record."""
        return "api" if self.name is None else f"api:{self.name}"


OPEN_CALLER = Caller(None, EDITOR, "open")
NOBODY = Caller(None, PUBLIC, "none")


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str
    headers: tuple[tuple[str, str], ...] = ()


def _bearer(error: str | None = None) -> tuple[tuple[str, str], ...]:
    value = 'Bearer realm="media_assets"' + (f', error="{error}"' if error else "")
    return (("WWW-Authenticate", value),)


@dataclass(frozen=True)
class Access:
    """What a served app lets in. `tokens` None: open. `hosts` None: no Host check (an app used in process,
    as by FastAPI's TestClient, whose Host is `testserver`); `any_ip_host`: also every IP address."""

    tokens: TokenSource | None = None
    hosts: frozenset[str] | None = LOOPBACK_HOSTS
    any_ip_host: bool = False
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def in_process(cls) -> "Access":
        """Open and without the Host check: `create_app`'s default, for an app called in process."""
        return cls(hosts=None)

    @classmethod
    def for_server(
        cls,
        host: str,
        tokens: TokenSource | Iterable[Token] | None = None,
        allow_hosts: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
    ) -> "Access":
        """The policy of a server bound to `host` (see the module's docstring for the names it answers to)."""
        names = set(LOOPBACK_HOSTS) | {_host_name(h) for h in allow_hosts}
        wildcard = host in WILDCARD_HOSTS
        if wildcard:
            names.add(socket.gethostname().lower())
        else:
            names.add(_host_name(host))
        if tokens is not None and not isinstance(tokens, TokenSource):
            tokens = TokenSource(fixed=tokens)
        return cls(
            tokens=tokens,
            hosts=frozenset(names),
            any_ip_host=wildcard,
            cors_origins=tuple(dict.fromkeys(origin_key(o) for o in cors_origins)),
        )

    @property
    def open(self) -> bool:
        return self.tokens is None

    def host_allowed(self, host: str) -> bool:
        if self.hosts is None:
            return True
        split = _split_host(host)
        if split is None:
            return False
        name = split[0].lower()
        if _is_ip(name):
            name = str(ipaddress.ip_address(name))
            return name in self.hosts or self.any_ip_host
        return name in self.hosts

    def _same_origin(self, origin: str, host: str) -> bool:
        try:
            parts = urlsplit(origin)
            origin_port = parts.port
        except ValueError:
            return False
        split = _split_host(host)
        if parts.scheme not in ("http", "https") or not parts.hostname or split is None:
            return False
        name, port = split
        if parts.hostname.rstrip(".") != name.lower():
            return False
        default = {"http": 80, "https": 443}[parts.scheme]
        return (origin_port or default) == (port or default)

    def _write_refusal(self, headers: Headers, host: str, cookie_only: bool) -> Refusal | None:
        origin = headers.get("origin")
        if origin is not None and origin.strip().lower() in self.cors_origins:
            return None
        if origin is not None and not self._same_origin(origin.strip(), host):
            return Refusal(403, f"a write from a page of {origin!r}, not this server's own, is refused (cross-site)")
        fetch_site = (headers.get("sec-fetch-site") or "").lower()
        if fetch_site in ("cross-site", "same-site"):
            return Refusal(403, f"a write from another site's page is refused (Sec-Fetch-Site: {fetch_site})")
        if origin is None and cookie_only:
            return Refusal(
                403,
                "a write carried by the login cookie must come from this server's page (which sends Origin); "
                "scripts send Authorization: Bearer <token>",
            )
        return None

    def decide(self, scope, role_needed: str) -> Caller | Refusal:
        """Who the request is, or why it is refused: the Host, then for a write its origin, then its token."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.host_allowed(host):
            return Refusal(
                403,
                f"Host {host[:200]!r} is not a name of this server (a DNS-rebinding page?); "
                "if it is, start it with: media-assets serve --allow-host NAME",
            )
        bearer = headers.get("authorization")
        cookie = Request(scope).cookies.get(COOKIE) if self.tokens is not None else None
        if scope["method"] in WRITE_METHODS:
            cookie_only = self.tokens is not None and role_needed != PUBLIC and bearer is None and bool(cookie)
            refusal = self._write_refusal(headers, host, cookie_only)
            if refusal is not None:
                return refusal
        if role_needed == PUBLIC:
            return NOBODY
        if self.tokens is None:
            return OPEN_CALLER
        if bearer is not None:
            scheme, _, token = bearer.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return Refusal(401, "the Authorization header must be: Bearer <token>", _bearer("invalid_request"))
            token, via = token.strip(), "bearer"
        elif cookie:
            token, via = cookie, "cookie"
        else:
            return Refusal(
                401,
                "this server needs a token: send Authorization: Bearer <token>, or log in on the page",
                _bearer(),
            )
        entry = self.tokens.current().check(token)
        if entry is None:
            return Refusal(401, "the token is not valid (unknown, or removed)", _bearer("invalid_token"))
        if RANK[entry.role] < RANK[role_needed]:
            return Refusal(403, f"the token {entry.name!r} is a {entry.role}'s: this needs an {role_needed}'s")
        return Caller(entry.name, entry.role, via)


def required_role(app: FastAPI, scope) -> str:
    """The role a request needs: its route's in `ROUTE_ROLES`; a path no route serves needs a viewer's
    (an editor's to write), so nobody learns which paths exist without a token."""
    method = "GET" if scope["method"] == "HEAD" else scope["method"]
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return ROUTE_ROLES.get((method, route.path), EDITOR)
    return EDITOR if method in WRITE_METHODS else VIEWER


def unclassified_routes(app: FastAPI) -> list[str]:
    """`METHOD path` of every route of `app` that `ROUTE_ROLES` does not list."""
    return sorted(
        f"{method} {route.path}"
        for route in app.router.routes
        for method in getattr(route, "methods", None) or ("GET",)
        if method != "HEAD" and (method, route.path) not in ROUTE_ROLES
    )


def caller_of(request: Request) -> Caller:
    """Who made the request (set by the guard; an app without one is open)."""
    return request.scope.get("media_assets.caller", OPEN_CALLER)


def feedback_source(request: Request) -> str:
    """The `source` of the feedback rows a request writes (a FastAPI dependency)."""
    return caller_of(request).source


class AccessGuard:
    """ASGI middleware: every HTTP request passes `Access.decide` before the app sees it (and before an upload
    is read); the caller it finds is put in the scope for `caller_of`."""

    def __init__(self, app, access: Access, api: FastAPI):
        self.app, self.access, self.api = app, access, api

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        decision = self.access.decide(scope, required_role(self.api, scope))
        if isinstance(decision, Refusal):
            client = (scope.get("client") or ("?",))[0]
            log.log(
                logging.WARNING if decision.status == 403 else logging.INFO,
                "refused %s %s from %s: %s",
                scope["method"],
                scope["path"],
                client,
                decision.detail,
            )
            response = JSONResponse({"detail": decision.detail}, decision.status, headers=dict(decision.headers))
            return await response(scope, receive, send)
        scope["media_assets.caller"] = decision
        return await self.app(scope, receive, send)


class LoginThrottle:
    """At most `failures` failed logins per client address in `window_s` seconds."""

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S):
        self.failures, self.window_s = failures, window_s
        self._failed: dict[str, deque] = {}
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        with self._lock:
            times = self._failed.get(client)
            now = time.monotonic()
            while times and now - times[0] > self.window_s:
                times.popleft()
            if not times:
                self._failed.pop(client, None)
                return 0.0
            return self.window_s - (now - times[0]) if len(times) >= self.failures else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failed) > 10_000:  # many addresses: forget the oldest rather than grow
                self._failed.pop(next(iter(self._failed)))
            self._failed.setdefault(client, deque()).append(time.monotonic())


async def _posted_token(request: Request) -> str | None:
    """The token of a login: JSON `{"token": …}` or a form's `token` field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BYTES:
            return None
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "application/x-www-form-urlencoded":
            values = parse_qs(body.decode("utf-8"), max_num_fields=10).get("token") or [None]
            token = values[0]
        else:
            data = json.loads(body or b"null")
            token = data.get("token") if isinstance(data, dict) else None
    except (ValueError, UnicodeDecodeError):
        return None
    return token.strip() if isinstance(token, str) else None


def install(app: FastAPI, access: Access) -> None:
    """Put `access` in front of `app` (after its routes are declared): the login routes, the guard, CORS
    when configured. Raises RuntimeError when a route of the app is missing from `ROUTE_ROLES`."""
    throttle = LoginThrottle()

    def cookie_options(request: Request) -> dict:
        return {"path": "/", "httponly": True, "samesite": "Strict", "secure": request.url.scheme == "https"}

    @app.post("/login", tags=["access"])
    async def login(request: Request):
        """Check a token (JSON `{"token": …}` or a form field) and keep it in an HttpOnly, SameSite=Strict
        cookie, so the page's requests carry it."""
        if access.tokens is None:
            return JSONResponse({"detail": "this server runs without tokens: there is nothing to log in to"}, 400)
        client = request.client.host if request.client else "?"
        wait = throttle.wait_s(client)
        if wait:
            log.warning("login refused from %s: too many failed logins", client)
            detail = f"too many failed logins: try again in {wait:.0f} s"
            return JSONResponse({"detail": detail}, 429, headers={"Retry-After": str(int(wait) + 1)})
        token = await _posted_token(request)
        entry = access.tokens.current().check(token)
        if entry is None:
            throttle.failed(client)
            log.warning("failed login from %s", client)  # never the token
            return JSONResponse({"detail": "that token is not valid"}, 401, headers=dict(_bearer("invalid_token")))
        log.info("%s (%s) logged in from %s", entry.name, entry.role, client)
        response = JSONResponse({"name": entry.name, "role": entry.role})
        response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, **cookie_options(request))
        return response

    @app.post("/logout", tags=["access"])
    def logout(request: Request):
        """Forget the login cookie."""
        response = JSONResponse({"logged_out": True})
        response.delete_cookie(COOKIE, **cookie_options(request))
        return response

    @app.get("/session", tags=["access"])
    def session(request: Request):
        """Who this request is: the token's name and role (`open`: the server has no tokens)."""
        caller = caller_of(request)
        return {"open": access.open, "name": caller.name, "role": caller.role, "via": caller.via}

    missing = unclassified_routes(app)
    if missing:
        raise RuntimeError(f"routes without a role in media_assets.apps.access.ROUTE_ROLES: {', '.join(missing)}")
    app.add_middleware(AccessGuard, access=access, api=app)
    if access.cors_origins:  # outermost: it answers preflight requests itself
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(access.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )


# -- serving --------------------------------------------------------------------------------------------


def serving_access(
    warehouse: Warehouse,
    host: str,
    *,
    tokens_file: Path | None = None,
    no_auth: bool = False,
    allow_hosts: Iterable[str] = (),
    cors_origins: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[Access, list[str]]:
    """The policy `media-assets serve` starts with, and the lines to tell the person starting it. Refuses
    (AccessError) a non-loopback `host` without tokens unless `no_auth`; a bad token file or variable is an
    error too, never an open server."""
    tokens = None if no_auth else load_tokens(warehouse, tokens_file, environ)
    access = Access.for_server(host, tokens, allow_hosts, cors_origins)
    if no_auth:
        notes = [
            f"WARNING: --no-auth: serving {host or '::'} without tokens; anyone who can reach it reads every frame "
            "and video and writes feedback, pins and names"
        ]
    elif tokens is None:
        if not is_loopback(host):
            raise AccessError(
                f"refusing to serve on {host or '::'} without tokens (create one: media-assets tokens add NAME "
                "--role viewer; or --no-auth to serve open, which anyone on the network can read and write)"
            )
        notes = [
            "no tokens: open to every program and user on this machine "
            "(media-assets tokens add NAME --role editor to require them)"
        ]
    else:
        roles = [t.role for t in tokens.current().tokens]
        notes = [f"tokens required: {roles.count(EDITOR)} editor, {roles.count(VIEWER)} viewer"]
    return access, notes
