"""Who may use the server: the trusted-host check (DNS rebinding), the same-origin check
(cross-site form posts), CORS origins, model names (no filesystem probing), error messages
without server paths, and the API key (which endpoints it guards)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SENTENCES, wer
from server_util import Server, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server("--model", "tiny.en", "--idle-unload", "0") as srv:
        yield srv


def _post(
    srv: Server, audio: bytes, headers: dict[str, str] | None = None, model: str = "whisper-1"
) -> httpx.Response:
    return httpx.post(
        srv.url + "/v1/audio/transcriptions",
        files={"file": ("clip.wav", audio, "audio/wav")},
        data={"model": model},
        headers=headers,
        timeout=120,
    )


def _port(srv: Server) -> str:
    return srv.url.rsplit(":", 1)[1]


def test_foreign_host_and_origin_are_refused(server: Server, window_wav: Path) -> None:
    audio = window_wav.read_bytes()
    # DNS rebinding: the browser sends the attacker's name as Host.
    resp = _post(server, audio, {"Host": f"attacker.example:{_port(server)}"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_host"
    assert httpx.get(server.url + "/v1/models", headers={"Host": "evil.example"}).status_code == 400
    # A trusted name followed by anything but a port (read as "localhost" before).
    for host in ("localhost:8791.evil.com", "localhost:evil", "127.0.0.1:x@evil.com",
                 "127.0.0.1:99999", "[::1]evil", "[::1"):  # fmt: skip
        resp = httpx.get(server.url + "/v1/models", headers={"Host": host})
        assert resp.status_code == 400, host
        assert resp.json()["error"]["code"] == "invalid_host"
    # A page on another origin posting a form ("simple" request, no preflight).
    resp = _post(server, audio, {"Origin": "http://evil.example"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "origin_not_allowed"
    resp = _post(server, audio, {"Origin": "null"})
    assert resp.status_code == 403
    # Same host and port but not a web page's scheme (was taken for the server's own page)
    resp = _post(server, audio, {"Origin": f"ftp://127.0.0.1:{_port(server)}"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "origin_not_allowed"
    assert server.metrics()["malsori_audio_seconds_total"] == 0  # nothing was transcribed
    # The server's own page (same origin), by any local name, and clients without Origin.
    for host in ("127.0.0.1", "localhost"):
        own = f"{host}:{_port(server)}"
        resp = _post(server, audio, {"Host": own, "Origin": f"http://{own}"})
        assert resp.status_code == 200, resp.text
        assert wer(SENTENCES["window"], resp.json()["text"]) <= 0.25
    assert _post(server, audio).status_code == 200


def test_allowed_proxy_name_and_cors_origin(window_wav: Path) -> None:
    audio = window_wav.read_bytes()
    args = ("--allowed-host", "stt.example.org", "--cors-origin", "https://app.example.org")
    with running_server("--model", "tiny.en", *args) as srv:
        resp = _post(srv, audio, {"Host": "stt.example.org"})
        assert resp.status_code == 200, resp.text
        # The proxy terminates TLS: the page's origin is https://, the proxied request http.
        resp = _post(srv, audio, {"Origin": "https://stt.example.org", "Host": "stt.example.org"})
        assert resp.status_code == 200, resp.text
        resp = _post(srv, audio, {"Origin": "https://app.example.org"})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "https://app.example.org"
        resp = _post(srv, audio, {"Origin": "https://other.example.org"})
        assert resp.status_code == 403
        assert _post(srv, audio, {"Host": "other.example.org"}).status_code == 400


def test_model_names_do_not_probe_the_filesystem(tmp_path: Path, window_wav: Path) -> None:
    audio = window_wav.read_bytes()
    # Directories named like models in the server's working directory: never used.
    for name in ("small", "tiny.en", "tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.bin").write_bytes(b"not a model")
        (tmp_path / name / "config.json").write_text("{}")
    home = os.path.expanduser("~")
    with running_server("--model", "tiny.en", cwd=tmp_path) as srv:
        messages = {}
        for name in ("~", "tmp", "small", "no-such-dir", "/etc", "../tiny.en", "usr"):
            resp = _post(srv, audio, model=name)
            assert resp.status_code == 404, (name, resp.text)
            message = resp.json()["error"]["message"]
            assert home not in message and str(tmp_path) not in message, message
            messages[name] = message.replace(repr(name), "NAME")
        # An existing directory and a missing one get the same answer: no oracle.
        assert messages["tmp"] == messages["no-such-dir"] == messages["usr"]
        ids = [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]]
        assert "small" not in ids and "tmp" not in ids
        # tiny.en is the bundled model, not the directory of the same name here.
        resp = _post(srv, audio, model="tiny.en")
        assert resp.status_code == 200 and wer(SENTENCES["window"], resp.json()["text"]) <= 0.25


def test_admin_may_allow_model_paths(window_wav: Path) -> None:
    from malsori.models import list_models

    tiny = next(r for r in list_models() if r.name == "tiny.en")
    assert tiny.path is not None
    env = {"MALSORI_ALLOW_MODEL_PATHS": "true"}
    with running_server("--model", "tiny.en", "--no-preload", env=env) as srv:
        resp = _post(srv, window_wav.read_bytes(), model=str(tiny.path))
        assert resp.status_code == 200, resp.text
        assert wer(SENTENCES["window"], resp.json()["text"]) <= 0.25


def test_errors_never_contain_server_paths(server: Server) -> None:
    random = os.urandom(300_000)
    resp = _post(server, random)
    assert resp.status_code == 400, resp.text
    message = resp.json()["error"]["message"]
    assert "clip.wav" in message  # the client's own name for the file
    assert "malsori-upload" not in message and str(server.tmpdir) not in message, message
    assert "/" not in message, message
    assert not list(server.tmpdir.glob("malsori-upload-*"))


def test_api_key_guards_the_api_but_not_the_probes(window_wav: Path) -> None:
    env = {"MALSORI_API_KEY": "s3cret"}
    with running_server(
        "--model", "tiny.en", "--cors-origin", "https://app.example", env=env
    ) as srv:
        for path in ("/v1/models", "/v1/models/whisper-1", "/metrics", "/openapi.json"):
            resp = httpx.get(srv.url + path)
            assert resp.status_code == 401, path
            assert resp.headers["www-authenticate"].startswith("Bearer"), path
            assert resp.json()["error"]["code"] == "invalid_api_key"
            ok = httpx.get(srv.url + path, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200, path
        resp = _post(srv, window_wav.read_bytes())
        assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
        # An upload without the key is refused from its headers, before its body (it was
        # read and parsed first: 25 MB, or a slow body held for its whole timeout).
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: 20000000\r\n\r\n"
            )
            answer = b""
            while chunk := sock.recv(65536):  # no body sent: answered and closed anyway
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 401"), answer
        assert b"invalid_api_key" in answer and b"www-authenticate: bearer" in answer.lower()
        # A page on an allowed origin can read that 401 (CORS headers on it), not a
        # network error.
        resp = _post(srv, window_wav.read_bytes(), {"Origin": "https://app.example"})
        assert resp.status_code == 401, resp.text
        assert resp.headers["access-control-allow-origin"] == "https://app.example"
        for path in ("/health", "/ready", "/", "/static/app.js", "/docs"):
            assert httpx.get(srv.url + path).status_code == 200, path


def test_damaged_user_model_is_503_not_404(tmp_path: Path, window_wav: Path) -> None:
    models = tmp_path / "models"
    (models / "mine").mkdir(parents=True)
    (models / "mine" / "model.bin").write_bytes(b"\0" * 4096)  # registered, but damaged
    (models / "mine" / "config.json").write_text("{}")
    (models / "mine" / "tokenizer.json").write_text("{}")  # a model's three files are there
    env = {"MALSORI_MODELS_DIR": str(models)}
    with running_server("--model", "tiny.en", env=env) as srv:
        ids = [m["id"] for m in httpx.get(srv.url + "/v1/models").json()["data"]]
        assert "mine" in ids  # malsori models lists it as a user model
        resp = _post(srv, window_wav.read_bytes(), model="mine")
        assert resp.status_code == 503, resp.text
        err = resp.json()["error"]
        assert err["code"] == "model_damaged" and str(models) not in err["message"], err
        assert _post(srv, window_wav.read_bytes()).status_code == 200
