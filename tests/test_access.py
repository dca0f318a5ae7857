"""Who may call the HTTP API (`media_assets/apps/access.py`): every route × {no token, a bad one, a viewer's,
an editor's}, the Host check (DNS rebinding), the Origin checks (cross-site writes), the login cookie, CORS,
the token file and variable, `serve`'s refusal to run open on a network, and the page's login in Chromium."""

from __future__ import annotations

import json
import logging
import stat
import threading
import time

import cv2
import pytest
import test_web
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mediagen import photo
from test_server import build_small_warehouse

from media_assets.apps import access as access_module
from media_assets.apps import server
from media_assets.apps.access import (
    EDITOR,
    PUBLIC,
    ROUTE_ROLES,
    TOKENS_ENV,
    VIEWER,
    Access,
    AccessError,
    Token,
    TokenSource,
    add_token,
    hash_token,
    install,
    is_loopback,
    load_tokens,
    parse_tokens_env,
    read_tokens_file,
    remove_token,
    serving_access,
)
from media_assets.apps.cli import main
from media_assets.apps.server import create_app
from media_assets.store import catalog
from media_assets.warehouse import Warehouse

browser = test_web.browser  # the module's own headless Chromium (test_web's fixture)

VIEWER_TOKEN = "viewer-token-0123456789-abcdefghij"
EDITOR_TOKEN = "editor-token-0123456789-abcdefghij"
TOKENS = [Token("vic", VIEWER, hash_token(VIEWER_TOKEN)), Token("ana", EDITOR, hash_token(EDITOR_TOKEN))]
CALLERS = {
    "no token": {},
    "bad token": {"Authorization": "Bearer not-a-token-of-this-server-at-all"},
    "viewer": {"Authorization": f"Bearer {VIEWER_TOKEN}"},
    "editor": {"Authorization": f"Bearer {EDITOR_TOKEN}"},
}


def guarded(warehouse: Warehouse, **options) -> TestClient:
    """The app with tokens, as `serve` on loopback builds it, letting in TestClient's Host (`testserver`)."""
    options = {"tokens": TOKENS, "allow_hosts": ["testserver"]} | options
    return TestClient(create_app(warehouse, access=Access.for_server("127.0.0.1", **options)))


@pytest.fixture(scope="module")
def small(tmp_path_factory, tiny_clip) -> Warehouse:
    return build_small_warehouse(tmp_path_factory.mktemp("access") / "warehouse", tiny_clip)


@pytest.fixture(scope="module")
def http(small):
    with guarded(small) as client:
        yield client


def _ids(warehouse: Warehouse) -> dict:
    def one(sql: str):
        return catalog.query(warehouse, sql).to_pylist()[0]

    frames = catalog.query(
        warehouse, "SELECT frame_id FROM frames WHERE NOT is_duplicate ORDER BY frame_id"
    ).to_pylist()
    return {
        "media_id": one("SELECT media_id FROM media WHERE kind = 'video' ORDER BY partition_key")["media_id"],
        "frame_id": frames[0]["frame_id"],
        "other_frame_id": frames[-1]["frame_id"],
        "face_id": one("SELECT face_id FROM faces ORDER BY face_id")["face_id"],
        "shot_id": one("SELECT shot_id FROM shots ORDER BY shot_id")["shot_id"],
        "cluster_id": one("SELECT cluster_id FROM clusters ORDER BY cluster_id")["cluster_id"],
    }


def examples(ids: dict) -> dict[tuple[str, str], tuple[str, dict]]:
    """A request for every route of ROUTE_ROLES: (url, keyword arguments of TestClient.request)."""
    png = cv2.imencode(".png", photo("chelsea", (200, 150)))[1].tobytes()
    m, f = ids["media_id"], ids["frame_id"]
    return {
        ("GET", "/"): ("/", {}),
        ("GET", "/static/{name}"): ("/static/app.js", {}),
        ("GET", "/openapi.json"): ("/openapi.json", {}),
        ("GET", "/docs"): ("/docs", {}),
        ("GET", "/docs/oauth2-redirect"): ("/docs/oauth2-redirect", {}),
        ("GET", "/redoc"): ("/redoc", {}),
        ("POST", "/login"): ("/login", {"json": {"token": EDITOR_TOKEN}}),
        ("POST", "/logout"): ("/logout", {}),
        ("GET", "/session"): ("/session", {}),
        ("GET", "/health"): ("/health", {}),
        ("GET", "/search"): ("/search?q=a+cat&k=2", {}),
        ("POST", "/search/image"): ("/search/image?k=2", {"files": {"file": ("cat.png", png, "image/png")}}),
        ("GET", "/moments"): ("/moments?q=a+cat&k=2", {}),
        ("GET", "/timeline/{media_id}"): (f"/timeline/{m}?q=a+cat&buckets=4", {}),
        ("GET", "/transcript/{media_id}"): (f"/transcript/{m}", {}),
        ("GET", "/chapters/{media_id}"): (f"/chapters/{m}", {}),
        ("GET", "/summaries"): ("/summaries?q=a+cat", {}),
        ("GET", "/similar/frame/{frame_id}"): (f"/similar/frame/{f}?k=2", {}),
        ("GET", "/similar/video/{media_id}"): (f"/similar/video/{m}?k=2", {}),
        ("GET", "/frame/{frame_id}"): (f"/frame/{f}", {}),
        ("GET", "/face/{face_id}"): (f"/face/{ids['face_id']}", {}),
        ("GET", "/video/{media_id}"): (f"/video/{m}?original=true", {}),
        ("GET", "/clusters"): ("/clusters", {}),
        ("GET", "/clusters/{cluster_id}"): (f"/clusters/{ids['cluster_id']}", {}),
        ("GET", "/feedback"): ("/feedback", {}),
        ("POST", "/feedback/move"): (
            "/feedback/move",
            {"json": {"member_kind": "shot", "member_id": ids["shot_id"], "cluster_id": None}},
        ),
        ("POST", "/feedback/merge"): (
            "/feedback/merge",
            {"json": {"into_cluster_id": 999999, "from_cluster_id": 999998}},
        ),
        ("POST", "/feedback/split"): (
            "/feedback/split",
            {"json": {"cluster_id": 999999, "member_kind": "shot", "member_ids": [ids["shot_id"]]}},
        ),
        ("POST", "/feedback/pair"): (
            "/feedback/pair",
            {"json": {"member_kind": "frame", "member_id": f, "other_member_id": ids["other_frame_id"], "same": True}},
        ),
        ("POST", "/feedback/relevance"): (
            "/feedback/relevance",
            {"json": {"query": "the matrix", "frame_id": f, "relevant": True}},
        ),
    }


@pytest.fixture(scope="module")
def requests_by_route(small):
    return examples(_ids(small))


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, route.path) for route in app.routes for method in route.methods if method != "HEAD"}


# -- the role table ---------------------------------------------------------------------------------------


def test_every_route_of_the_app_has_a_role_and_a_request_here(http, requests_by_route):
    assert route_keys(http.app) == set(ROUTE_ROLES)
    assert set(requests_by_route) == set(ROUTE_ROLES)
    assert set(ROUTE_ROLES.values()) == {PUBLIC, VIEWER, EDITOR}
    # every write is an editor's but the image search, the login and the logout
    writes = {key for key in ROUTE_ROLES if key[0] != "GET"}
    assert {key for key in writes if ROUTE_ROLES[key] != EDITOR} == {
        ("POST", "/search/image"),
        ("POST", "/login"),
        ("POST", "/logout"),
    }
    assert all(ROUTE_ROLES[key] == EDITOR for key in writes if key[1].startswith("/feedback/"))


def test_an_app_with_a_route_missing_from_the_table_is_refused():
    app = FastAPI()

    @app.get("/secret")
    def secret():
        return {}

    with pytest.raises(RuntimeError, match="GET /secret"):
        install(app, Access.in_process())


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("route", sorted(ROUTE_ROLES), ids=[f"{m} {p}" for m, p in sorted(ROUTE_ROLES)])
def test_every_route_for_every_caller(http, requests_by_route, route, caller):
    url, kwargs = requests_by_route[route]
    needed = ROUTE_ROLES[route]
    http.cookies.clear()  # the login route sets one
    response = http.request(route[0], url, headers=CALLERS[caller], **kwargs)
    http.cookies.clear()
    if needed != PUBLIC and caller in ("no token", "bad token"):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
    elif needed == EDITOR and caller == "viewer":
        assert response.status_code == 403, response.text
        assert "needs an editor" in response.json()["detail"]
    else:  # let in: the endpoint's own answer (unknown ids are 404, bad bodies 422)
        assert response.status_code in (200, 201, 404, 422), (response.status_code, response.text)
        if needed != PUBLIC:
            assert response.status_code != 422 or route[1].startswith("/feedback/"), response.text


def test_a_path_no_route_serves_needs_a_token_too(http):
    assert http.get("/nothing/here").status_code == 401
    assert http.get("/nothing/here", headers=CALLERS["viewer"]).status_code == 404
    assert http.post("/nothing/here", headers=CALLERS["viewer"]).status_code == 403


def test_a_malformed_authorization_header_is_401(http):
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", EDITOR_TOKEN):
        response = http.get("/health", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert 'error="invalid_request"' in response.headers["www-authenticate"]


# -- Host: DNS rebinding ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example:8000", "localhost.evil.example", "", "a b"]
)
def test_a_rebinding_host_is_refused_even_with_a_token(http, host):
    response = http.get("/health", headers={"Host": host, **CALLERS["editor"]})
    assert response.status_code == 403 and "not a name of this server" in response.json()["detail"]
    assert http.get("/", headers={"Host": host}).status_code == 403  # the page too


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "testserver"])
def test_the_servers_own_names_pass(http, host):
    assert http.get("/health", headers={"Host": host, **CALLERS["viewer"]}).status_code == 200


def test_the_names_a_server_answers_to():
    local = Access.for_server("127.0.0.1", allow_hosts=["media.example.org", "[fd00::5]"])
    assert all(local.host_allowed(h) for h in ("localhost:1", "127.0.0.1", "[::1]", "media.example.org:443"))
    assert local.host_allowed("[fd00:0:0:0:0:0:0:5]:8000")
    assert not any(local.host_allowed(h) for h in ("192.168.1.5:8000", "evil.example", "media.example.org.evil"))
    lan = Access.for_server("192.168.1.5")
    assert lan.host_allowed("192.168.1.5:8000") and not lan.host_allowed("192.168.1.6:8000")
    everywhere = Access.for_server("0.0.0.0")
    assert everywhere.host_allowed("192.168.1.5:8000") and everywhere.host_allowed("[fe80::1]:8000")
    assert not everywhere.host_allowed("evil.example:8000")
    assert Access.in_process().host_allowed("anything")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "media.example.org"))


# -- Origin: cross-site writes ----------------------------------------------------------------------------


def _relevance(frame_id: int, query: str) -> dict:
    return {"query": query, "frame_id": frame_id, "relevant": True}


@pytest.fixture
def logged_in(small):
    """A client holding the editor's login cookie (and no Authorization header)."""
    with guarded(small) as client:
        assert client.post("/login", json={"token": EDITOR_TOKEN}).status_code == 200
        yield client


def test_a_cross_site_post_with_the_cookie_is_refused(logged_in, requests_by_route):
    body = requests_by_route[("POST", "/feedback/relevance")][1]["json"]
    url = "/feedback/relevance"
    evil = logged_in.post(url, json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["detail"]
    for origin in ("null", "http://testserver:8080", "https://testserver.evil.example", "http://localhost"):
        assert logged_in.post(url, json=body, headers={"Origin": origin}).status_code == 403, origin
    same_site = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-site"}
    assert logged_in.post(url, json=body, headers=same_site).status_code == 403
    # no Origin and only the cookie: not the page (a browser sends Origin with every POST)
    bare = logged_in.post(url, json=body)
    assert bare.status_code == 403 and "Bearer" in bare.json()["detail"]
    ok = logged_in.post(url, json=body, headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201 and ok.json()["source"] == "api:ana"
    assert logged_in.post(url, json=body, headers={"Origin": "http://testserver:80"}).status_code == 201
    # reads with the cookie need no Origin
    assert logged_in.get("/session").json() == {"open": False, "name": "ana", "role": "editor", "via": "cookie"}


def test_sec_fetch_site_cross_site_writes_are_refused(http, requests_by_route):
    body = requests_by_route[("POST", "/feedback/relevance")][1]["json"]
    for site in ("cross-site", "same-site"):
        response = http.post("/feedback/relevance", json=body, headers={"Sec-Fetch-Site": site, **CALLERS["editor"]})
        assert response.status_code == 403 and site in response.json()["detail"]
    # the login form cannot be posted from another site either (login CSRF)
    evil = http.post("/login", json={"token": EDITOR_TOKEN}, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "set-cookie" not in evil.headers
    http.cookies.clear()


def test_scripts_write_with_a_bearer_token_and_no_origin(http, small):
    frame_id = _ids(small)["frame_id"]
    response = http.post("/feedback/relevance", json=_relevance(frame_id, "ana's query"), headers=CALLERS["editor"])
    assert response.status_code == 201 and response.json()["source"] == "api:ana"
    rows = catalog.query(small, "SELECT source FROM feedback WHERE query = ?", ["ana's query"]).to_pylist()
    assert rows == [{"source": "api:ana"}]


def test_every_feedback_write_records_the_tokens_name(http, small, requests_by_route):
    for route in ("/feedback/move", "/feedback/pair", "/feedback/relevance"):
        response = http.post(route, headers=CALLERS["editor"], **requests_by_route[("POST", route)][1])
        assert response.status_code == 201 and response.json()["source"] == "api:ana", response.text
    assert catalog.query(small, "SELECT count(*) AS n FROM feedback WHERE source = 'api'").to_pylist()[0]["n"] == 0


def test_open_on_loopback_still_checks_host_and_origin(small):
    with TestClient(create_app(small, access=Access.for_server("127.0.0.1", allow_hosts=["testserver"]))) as open_api:
        frame_id = _ids(small)["frame_id"]
        assert open_api.get("/session").json() == {"open": True, "name": None, "role": "editor", "via": "open"}
        curl = open_api.post("/feedback/relevance", json=_relevance(frame_id, "open query"))
        assert curl.status_code == 201 and curl.json()["source"] == "api"  # as before tokens
        evil = open_api.post(
            "/feedback/relevance", json=_relevance(frame_id, "evil"), headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        assert open_api.get("/health", headers={"Host": "evil.example:8000"}).status_code == 403
        assert open_api.post("/login", json={"token": EDITOR_TOKEN}).status_code == 400  # nothing to log in to


# -- login, logout ----------------------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_login_sets_an_httponly_strict_cookie_that_works_and_logout_clears_it(small):
    with guarded(small) as client:
        response = client.post("/login", json={"token": VIEWER_TOKEN})
        assert response.status_code == 200 and response.json() == {"name": "vic", "role": "viewer"}
        assert VIEWER_TOKEN not in response.text
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"media_assets_token={VIEWER_TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http
        assert client.get("/session").json()["via"] == "cookie"
        assert client.get("/health").status_code == 200
        gone = client.post("/logout")
        assert gone.status_code == 200 and "Max-Age=0" in gone.headers["set-cookie"]
        assert client.get("/health").status_code == 401
        form = client.post("/login", data={"token": EDITOR_TOKEN})  # a plain HTML form works too
        assert form.status_code == 200 and form.json()["name"] == "ana"
    with TestClient(client.app, base_url="https://testserver") as tls:
        assert "Secure" in tls.post("/login", json={"token": EDITOR_TOKEN}).headers["set-cookie"]


def test_failed_logins_are_logged_without_the_token_and_throttled(small):
    records = _Records()
    logger = logging.getLogger(access_module.__name__)
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        with guarded(small) as client:
            wrong = "wrong-token-that-should-never-be-logged"
            for _ in range(access_module.LOGIN_FAILURES):
                response = client.post("/login", json={"token": wrong})
                assert response.status_code == 401 and "set-cookie" not in response.headers
            throttled = client.post("/login", json={"token": EDITOR_TOKEN})  # even the right one, for a while
            assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
            assert client.post("/login", content=b"x" * 5000).status_code == 429
    finally:
        logger.removeHandler(records)
    assert any("failed login from" in m for m in records.messages)
    assert not any(wrong in m or EDITOR_TOKEN in m for m in records.messages)


# -- CORS -------------------------------------------------------------------------------------------------


def test_cors_is_off_unless_configured(http, small):
    plain = http.get("/health", headers={"Origin": "https://app.example", **CALLERS["viewer"]})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    with guarded(small, cors_origins=["https://App.example:443/"]) as cors:
        allowed = cors.get("/health", headers={"Origin": "https://app.example", **CALLERS["viewer"]})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = cors.get("/health", headers={"Origin": "https://evil.example", **CALLERS["viewer"]})
        assert "access-control-allow-origin" not in other.headers
        preflight = cors.options(
            "/feedback/relevance",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert (
            preflight.status_code == 200
            and "authorization" in preflight.headers["access-control-allow-headers"].lower()
        )
        # a configured origin may write (with a token), another may not
        body = _relevance(_ids(small)["frame_id"], "from the app")
        headers = {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site", **CALLERS["editor"]}
        assert cors.post("/feedback/relevance", json=body, headers=headers).status_code == 201
        headers["Origin"] = "https://evil.example"
        assert cors.post("/feedback/relevance", json=body, headers=headers).status_code == 403
    with pytest.raises(AccessError, match="not an origin"):
        Access.for_server("127.0.0.1", cors_origins=["app.example"])


# -- the token file and variable --------------------------------------------------------------------------


def test_the_token_file_keeps_hashes_only_and_changes_reach_a_running_server(tmp_path, monkeypatch):
    path = tmp_path / "tokens.json"
    token = add_token(path, "ana", "editor")
    assert len(token) >= 43 and token not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_tokens_file(path)[0].sha256 == hash_token(token)
    with pytest.raises(AccessError, match="already a token named 'ana'"):
        add_token(path, "ana", "viewer")
    monkeypatch.setattr(access_module, "RELOAD_EVERY_S", 0.0)
    source = TokenSource(path)
    assert source.current().check(token).name == "ana"
    second = add_token(path, "bob", "viewer")
    assert source.current().check(second).role == "viewer"
    remove_token(path, "ana")
    assert source.current().check(token) is None  # revoked without a restart
    path.write_text("{not json")
    assert source.current().check(second) is None  # a broken file lets nobody in
    with pytest.raises(AccessError, match="no token named 'zed'"):
        remove_token(tmp_path / "other.json", "zed")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "invalid JSON"),
        ("[]", "not a token file"),
        ('{"tokens": [{"name": "a", "role": "admin", "sha256": "' + "0" * 64 + '"}]}', "role must be viewer or editor"),
        ('{"tokens": [{"name": "a b", "role": "viewer", "sha256": "' + "0" * 64 + '"}]}', "name"),
        ('{"tokens": [{"name": "a", "role": "viewer", "sha256": "abc"}]}', "sha256"),
        (
            '{"tokens": [{"name": "a", "role": "viewer", "sha256": "' + "0" * 64 + '"}, '
            '{"name": "a", "role": "editor", "sha256": "' + "1" * 64 + '"}]}',
            "given twice",
        ),
    ],
)
def test_a_bad_token_file_is_an_error_naming_it(tmp_path, text, message):
    path = tmp_path / "tokens.json"
    path.write_text(text)
    with pytest.raises(AccessError, match=message) as error:
        read_tokens_file(path)
    assert str(path) in str(error.value)


def test_the_token_variable():
    tokens = parse_tokens_env(f" ana:editor:{EDITOR_TOKEN} , vic:viewer:{VIEWER_TOKEN},")
    assert [(t.name, t.role, t.origin) for t in tokens] == [
        ("ana", "editor", TOKENS_ENV),
        ("vic", "viewer", TOKENS_ENV),
    ]
    assert tokens[0].sha256 == hash_token(EDITOR_TOKEN)
    assert parse_tokens_env("") == []
    for value, message in [
        ("ana:editor", "name:role:token"),
        (f"ana:admin:{EDITOR_TOKEN}", "role must be"),
        ("ana:editor:short", "characters"),
        (f"ana:editor:{EDITOR_TOKEN},ana:viewer:{VIEWER_TOKEN}", "given twice"),
    ]:
        with pytest.raises(AccessError, match=message) as error:
            parse_tokens_env(value)
        assert not any(secret in str(error.value) for secret in (EDITOR_TOKEN, VIEWER_TOKEN, "short"))


def test_load_tokens_from_the_file_and_the_variable(tmp_path):
    warehouse = Warehouse.at(tmp_path / "w")
    warehouse.root.mkdir()
    assert load_tokens(warehouse, environ={}) is None
    add_token(warehouse.root / "tokens.json", "ana", "editor")
    source = load_tokens(warehouse, environ={TOKENS_ENV: f"vic:viewer:{VIEWER_TOKEN}"})
    assert sorted(t.name for t in source.current().tokens) == ["ana", "vic"]
    with pytest.raises(AccessError, match="given twice"):
        load_tokens(warehouse, environ={TOKENS_ENV: f"ana:viewer:{VIEWER_TOKEN}"})
    with pytest.raises(AccessError, match="no such token file"):
        load_tokens(warehouse, tmp_path / "missing.json", environ={})


# -- serve ------------------------------------------------------------------------------------------------


def cli(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


@pytest.fixture
def no_server(monkeypatch):
    """`serve` up to the point where uvicorn would start: the calls it would make."""
    started = []
    monkeypatch.setattr(server, "create_app", lambda warehouse, **kwargs: kwargs)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append((app, kwargs)))
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    return started


@pytest.fixture
def empty_warehouse(tmp_path) -> Warehouse:
    return Warehouse.at(tmp_path / "warehouse").ensure()


def test_serve_on_a_network_address_without_tokens_refuses(empty_warehouse, no_server):
    result = cli("serve", "--warehouse", empty_warehouse.root, "--host", "0.0.0.0")
    assert result.exit_code == 1 and not no_server
    assert (
        "error: refusing to serve on 0.0.0.0 without tokens (create one: media-assets tokens add NAME --role viewer; "
        "or --no-auth to serve open, which anyone on the network can read and write)"
    ) in result.output
    with pytest.raises(AccessError, match="refusing to serve on 192.168.1.5"):
        serving_access(empty_warehouse, "192.168.1.5", environ={})


def test_serve_with_no_auth_warns_and_serves_open(empty_warehouse, no_server):
    result = cli("serve", "--warehouse", empty_warehouse.root, "--host", "0.0.0.0", "--no-auth")
    assert result.exit_code == 0, result.output
    assert "WARNING: --no-auth" in result.output and "anyone who can reach it" in result.output
    [(app, options)] = no_server
    assert options["host"] == "0.0.0.0" and app["access"].open and app["access"].any_ip_host


def test_serve_on_loopback_runs_open_and_with_tokens_needs_them(empty_warehouse, no_server, monkeypatch):
    assert cli("serve", "--warehouse", empty_warehouse.root).exit_code == 0
    assert no_server[-1][0]["access"].open and not no_server[-1][0]["access"].any_ip_host
    monkeypatch.setenv(TOKENS_ENV, f"ci:viewer:{VIEWER_TOKEN}")
    result = cli("serve", "--warehouse", empty_warehouse.root, "--host", "0.0.0.0", "--allow-host", "media.lan")
    assert result.exit_code == 0, result.output
    access = no_server[-1][0]["access"]
    assert not access.open and access.host_allowed("media.lan:8000") and "1 viewer" in result.output


def test_serve_with_a_bad_token_file_or_variable_does_not_start(empty_warehouse, no_server, monkeypatch, tmp_path):
    (empty_warehouse.root / "tokens.json").write_text("{broken")
    result = cli("serve", "--warehouse", empty_warehouse.root)
    assert result.exit_code == 1 and "tokens.json: not a token file" in result.output
    result = cli("serve", "--warehouse", empty_warehouse.root, "--tokens", tmp_path / "nope.json")
    assert result.exit_code == 1 and "no such token file" in result.output
    (empty_warehouse.root / "tokens.json").unlink()
    monkeypatch.setenv(TOKENS_ENV, "ana:owner:whatever-it-is-long-enough")
    result = cli("serve", "--warehouse", empty_warehouse.root)
    assert result.exit_code == 1 and "role must be viewer or editor" in result.output
    assert "whatever-it-is" not in result.output
    assert not no_server


def test_the_tokens_commands(empty_warehouse, monkeypatch):
    monkeypatch.delenv(TOKENS_ENV, raising=False)
    root = empty_warehouse.root
    assert "no tokens" in cli("tokens", "list", "--warehouse", root).output
    added = CliRunner().invoke(main, ["tokens", "add", "ana", "--role", "editor", "--warehouse", str(root)])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert len(token) >= 43 and "\n" not in token and "shown this once" in added.stderr
    assert read_tokens_file(root / "tokens.json")[0].sha256 == hash_token(token)
    assert cli("tokens", "add", "vic", "--warehouse", root).exit_code == 0  # viewer by default
    again = cli("tokens", "add", "ana", "--warehouse", root)
    assert again.exit_code == 1 and "already a token named 'ana'" in again.output
    assert cli("tokens", "add", "a b", "--warehouse", root).exit_code == 1
    monkeypatch.setenv(TOKENS_ENV, f"ci:viewer:{VIEWER_TOKEN}")
    listed = cli("tokens", "list", "--warehouse", root).output.splitlines()
    assert [line.split()[:2] for line in listed] == [["ana", "editor"], ["vic", "viewer"], ["ci", "viewer"]]
    assert token not in "".join(listed) and f"${TOKENS_ENV}" in listed[2]
    removed = cli("tokens", "remove", "ana", "--warehouse", root)
    assert removed.exit_code == 0 and "removed token 'ana'" in removed.output
    assert cli("tokens", "remove", "ana", "--warehouse", root).exit_code == 1
    assert [t.name for t in read_tokens_file(root / "tokens.json")] == ["vic"]
    other = root / "elsewhere.json"
    assert cli("tokens", "add", "x", "--tokens", other).exit_code == 0 and other.is_file()
    assert cli("tokens", "list", "--warehouse", root / "missing").exit_code == 1  # no warehouse there


# -- the page ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_site(small):
    port = test_web.free_port()
    access = Access.for_server("127.0.0.1", tokens=TOKENS)
    config = uvicorn.Config(create_app(small, access=access), host="127.0.0.1", port=port, log_level="warning")
    site = uvicorn.Server(config)
    thread = threading.Thread(target=site.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not site.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    site.should_exit = True
    thread.join(timeout=10)


def test_the_page_asks_for_a_token_logs_in_and_shows_results(guarded_site, browser, small):
    page, errors = test_web.open_page(browser, guarded_site)
    page.wait_for_selector("#login:not([hidden])")
    assert page.locator("#view-search").is_hidden()
    page.fill("#login-token", "not-the-token-at-all-0123456789")
    page.press("#login-token", "Enter")
    page.wait_for_function("document.querySelector('#login-error').textContent.includes('not valid')")
    page.fill("#login-token", EDITOR_TOKEN)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#health:has-text('files')")
    assert page.locator("#login").is_hidden() and page.inner_text("#who") == "ana (editor)"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's scripts never see the token
    page.fill("#query", "a cat")
    page.press("#query", "Enter")
    page.wait_for_selector(".card.result")
    # the thumbnails came with the cookie too
    page.wait_for_function("document.querySelector('.card.result img[src]').naturalWidth > 0")
    # an editor judges results, recorded under the token's name
    page.locator(".card.result .relevant").first.click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('noted:')")
    page.reload()  # the cookie keeps the login
    page.wait_for_selector("#health:has-text('files')")
    assert page.locator("#login").is_hidden()
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    assert not errors, errors
    page.close()
    rows = catalog.query(small, "SELECT source FROM feedback WHERE query = 'a cat'").to_pylist()
    assert rows and {r["source"] for r in rows} == {"api:ana"}


def test_a_viewer_on_the_page_cannot_judge(guarded_site, browser):
    page, errors = test_web.open_page(browser, guarded_site)
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#login-token", VIEWER_TOKEN)
    page.press("#login-token", "Enter")
    page.wait_for_selector("#health:has-text('files')")
    page.fill("#query", "a cat")
    page.press("#query", "Enter")
    page.wait_for_selector(".card.result")
    assert page.locator(".card.result .judge:not([hidden])").count() == 0
    assert not errors, errors
    page.close()


def test_the_page_and_its_files_are_public_and_hold_no_data(guarded_site):
    import httpx

    page = httpx.get(guarded_site + "/")
    assert page.status_code == 200 and 'id="login"' in page.text
    assert httpx.get(guarded_site + "/health").status_code == 401
    assert json.loads(httpx.get(guarded_site + "/session").text)["detail"].startswith("this server needs a token")
