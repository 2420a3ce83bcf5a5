"""The HTTP service: results equal the library's, the token guards everything but /health and the
page, /files serves only indexed files by id (with ranges), limits answer 413/422, and every error
is one JSON line with no traceback or server path."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from search_support import TOKEN

GUARDED = [("get", "/info", {}), ("get", "/search?q=dog", {}), ("get", "/similar/1", {}), ("get", "/files/1", {}),
           ("post", "/embed/text", {"json": {"texts": ["dog"]}}),
           ("post", "/search/audio", {"files": {"file": ("a.wav", b"x")}}),
           ("post", "/embed/audio", {"files": {"file": ("a.wav", b"x")}}),
           ("post", "/classify", {"files": {"file": ("a.wav", b"x")}, "data": {"labels": "dog"}})]


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_health_and_the_page_are_open_everything_else_needs_the_token(client, collection):
    bare = {"Authorization": ""}
    health = client.get("/health", headers=bare)
    assert health.status_code == 200 and health.json() == {"status": "ok", "files": 8, "model": "tiny-search"}
    page = client.get("/", headers=bare)
    assert page.status_code == 200 and "<form id=\"search-form\"" in page.text and "http" not in page.text.split("<body>")[1]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js", headers=bare).status_code == 200
    for method, path, kwargs in GUARDED:
        for headers in (bare, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = getattr(client, method)(path, headers=headers, **kwargs)
            assert "token" in one_line_error(response, 401), (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/files/1", headers=bare, params={"token": "wrong"}).status_code == 401


def test_text_search_returns_the_librarys_hits_without_server_paths(client, searcher):
    response = client.get("/search", params={"q": "a high whistle", "top": 5})
    assert response.status_code == 200
    hits = response.json()["hits"]
    expected = searcher.text("a high whistle", 5)
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert all("path" not in h and h["name"].endswith(".wav") and h["duration"] == pytest.approx(2.0) for h in hits)
    assert all(len(h["tags"]) == 4 for h in hits)
    tagged = client.get("/search", params={"q": "x", "tag": "clicks", "top": 20}).json()["hits"]
    assert tagged and all("clicks" in [t["label"] for t in h["tags"]] for h in tagged)
    by_tag = client.get("/search", params={"tag": "clicks", "top": 3}).json()["hits"]
    assert [h["score"] for h in by_tag] == [h.score for h in searcher.tagged("clicks", 3)]


def test_more_like_this_and_audio_search_find_the_same_sound(client, collection, searcher, wav):
    target = collection["files"][0]
    target_id = searcher.file_id(str(target))
    similar = client.get(f"/similar/{target_id}", params={"top": 3}).json()["hits"]
    assert len(similar) == 3 and target_id not in [h["id"] for h in similar]
    upload = client.post("/search/audio", params={"top": 1}, files={"file": ("q.wav", target.read_bytes(), "audio/wav")})
    assert upload.status_code == 200, upload.text
    best = upload.json()["hits"][0]
    assert best["id"] == target_id and best["score"] == pytest.approx(1.0, abs=1e-5)
    assert "not in the index" in one_line_error(client.get("/similar/99999"), 404)


def test_embeddings_and_classification_equal_the_pipelines(client, collection, searcher):
    pipeline = searcher.pipeline
    texts = ["a dog barks", "rain on a roof"]
    body = client.post("/embed/text", json={"texts": texts}).json()
    np.testing.assert_allclose(body["embeddings"], pipeline.embed_text(texts).numpy(), atol=1e-5)
    target = collection["files"][3]
    body = client.post("/embed/audio", files={"file": ("a.wav", target.read_bytes())}).json()
    np.testing.assert_allclose(body["embedding"], pipeline.embed_audio([str(target)]).numpy()[0], atol=1e-6)
    response = client.post("/classify", files={"file": ("a.wav", target.read_bytes())}, data={"labels": "hum, whistle,clicks"})
    labels = response.json()["labels"]
    expected = pipeline.classify([str(target)], ["hum", "whistle", "clicks"]).top(3)[0]
    assert [(x["label"], x["prob"]) for x in labels] == [(label, pytest.approx(p, abs=1e-5)) for label, p in expected]


def test_files_serves_indexed_audio_by_id_with_ranges(client, collection, searcher):
    target = collection["files"][1]
    data = target.read_bytes()
    file_id = searcher.file_id(str(target))
    whole = client.get(f"/files/{file_id}")
    assert whole.status_code == 200 and whole.content == data and whole.headers["content-type"].startswith("audio/")
    assert whole.headers["accept-ranges"] == "bytes"
    part = client.get(f"/files/{file_id}", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == data[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    by_query = client.get(f"/files/{file_id}", params={"token": TOKEN}, headers={"Authorization": ""})
    assert by_query.status_code == 200 and by_query.content == data


@pytest.mark.parametrize("path", ["/files/..%2F..%2Fetc%2Fpasswd", "/files/../../etc/passwd", "/files/%2e%2e%2fsounds.db",
                                  "/files/-1", "/files/0", "/files/99999", "/files/1.0", "/files/1%00",
                                  "/files//etc/passwd", "/static/..%2F..%2Fapp.py", "/static/../app.py",
                                  "/files/9" * 3])
def test_traversal_and_unknown_ids_are_404_without_detail(client, path):
    response = client.get(path)
    error = one_line_error(response, 404)
    assert "/" not in error.replace("re-run", "") and "passwd" not in error


def test_an_indexed_file_that_failed_is_not_served(client, searcher):
    failed = searcher.db.conn.execute("SELECT id FROM files WHERE status = 'error'").fetchone()
    assert failed is None or client.get(f"/files/{failed[0]}").status_code == 404


def test_oversized_requests_are_413_declared_or_streamed(client, wav):
    big = wav(9.5)  # > 300 kB
    assert "limit" in one_line_error(client.post("/search/audio", files={"file": ("big.wav", big)}), 413)

    def chunks():  # no Content-Length: counted as it arrives
        for start in range(0, 600_000, 60_000):
            yield b"\0" * 60_000

    response = client.post("/embed/text", content=chunks(), headers={"Content-Type": "application/json"})
    assert "limit" in one_line_error(response, 413)


@pytest.mark.parametrize("method, path, kwargs, cause", [
    ("get", "/search", {"params": {"q": "x" * 51}}, "q:"),
    ("get", "/search", {"params": {"q": "   "}}, "empty"),
    ("get", "/search", {}, "q:"),
    ("get", "/search", {"params": {"q": "dog", "top": 0}}, "top:"),
    ("get", "/search", {"params": {"q": "dog", "top": 101}}, "top:"),
    ("get", "/search", {"params": {"q": "dog", "top": "many"}}, "top:"),
    ("get", "/search", {"params": {"q": "dog", "min_score": 3}}, "min_score:"),
    ("post", "/embed/text", {"json": {"texts": "dog"}}, "texts:"),
    ("post", "/embed/text", {"json": {"texts": []}}, "texts:"),
    ("post", "/embed/text", {"json": {"texts": ["x" * 51]}}, "texts[0]"),
    ("post", "/embed/text", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "JSON"),
    ("post", "/classify", {"data": {"labels": "a,b,c,d,e,f"}, "wav": 0.5}, "labels: 6 given; the limit is 5"),
    ("post", "/classify", {"data": {"labels": " , "}, "wav": 0.5}, "labels:"),
    ("post", "/classify", {"data": {"labels": "a", "template": "no field"}, "wav": 0.5}, "template"),
    ("post", "/search/audio", {"wav": 4.0}, "the limit is 3 s"),
    ("post", "/embed/audio", {"files": {"file": ("x.wav", b"RIFF garbage, not audio")}}, "upload"),
    ("post", "/embed/audio", {"files": {"file": ("x.wav", b"")}}, "empty"),
    ("post", "/embed/audio", {}, "file:"),
])
def test_malformed_requests_are_422_in_one_line(client, wav, method, path, kwargs, cause, collection):
    kwargs = dict(kwargs)
    if "wav" in kwargs:
        kwargs["files"] = {"file": ("clip.wav", wav(kwargs.pop("wav")))}
    error = one_line_error(getattr(client, method)(path, **kwargs), 422)
    assert cause in error and str(collection["root"]) not in error


def test_internal_errors_say_nothing_about_the_server(make_app, searcher, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setattr(searcher, "stats", lambda: (_ for _ in ()).throw(RuntimeError("/secret/path/db leaked")))
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        assert one_line_error(c.get("/info"), 500) == "internal error"


def test_concurrent_text_queries_are_micro_batched_and_equal_unbatched(make_app, searcher):
    import httpx

    app = make_app(batch_window_s=0.05)
    queries = [f"sound number {i}" for i in range(16)]

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            responses = await asyncio.gather(*(c.post("/embed/text", json={"texts": [q]}) for q in queries))
            searches = await asyncio.gather(*(c.get("/search", params={"q": q, "top": 3}) for q in queries))
        return responses, searches

    responses, searches = asyncio.run(run())
    batched = np.array([r.json()["embeddings"][0] for r in responses])
    alone = np.concatenate([searcher.pipeline.embed_text([q]).numpy() for q in queries])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    batcher = app.state.batcher
    assert batcher.texts == 32 and batcher.calls <= 8  # 32 queries in a few model calls
    for q, response in zip(queries, searches):
        assert [h["id"] for h in response.json()["hits"]] == [h.id for h in searcher.text(q, 3)]


def test_serve_command_refuses_a_missing_database_in_one_line(tmp_path, capsys):
    from clapkit.cli import main

    assert main(["serve", "--db", str(tmp_path / "none.db")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_openapi_lists_the_endpoints(open_client):
    paths = json.loads(open_client.get("/openapi.json").text)["paths"]
    for path in ("/health", "/search", "/search/audio", "/embed/text", "/embed/audio", "/classify", "/files/{file_id}",
                 "/similar/{file_id}"):
        assert path in paths
    assert open_client.get("/docs").status_code == 200


def test_files_with_undecodable_names_are_served(tmp_path, collection, searcher):
    import os

    import soundfile as sf
    from fastapi.testclient import TestClient
    from search_support import RATE, clip

    import clapkit
    from clapkit.cli import main
    from clapkit.index.search import Searcher
    from clapkit.serve.app import create_app

    folder = tmp_path / "odd"
    folder.mkdir()
    name = os.path.join(os.fsencode(folder), b"caf\xe9.wav").decode("utf-8", "surrogateescape")
    with open(name, "wb") as f:
        sf.write(f, clip(1, 0), RATE, format="WAV")
    db = tmp_path / "odd.db"
    assert main(["index", str(folder), "--db", str(db), "--model", collection["model"],
                 "--tokenizer", collection["tokenizer"]]) == 0
    odd = Searcher(db, clapkit.load(collection["model"], tokenizer=collection["tokenizer"]))
    with TestClient(create_app(odd), raise_server_exceptions=False) as c:
        hit = c.get("/search", params={"q": "x"}).json()["hits"][0]
        assert hit["name"] == "caf\\xe9.wav"
        response = c.get(f"/files/{hit['id']}")
        assert response.status_code == 200 and response.content == open(name, "rb").read()
    odd.close()


def test_the_serve_command_binds_localhost_and_takes_the_token_from_the_environment(collection):
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    import clapkit

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CLAPKIT_SERVE_TOKEN": "from-env",
           "PYTHONPATH": str(Path(clapkit.__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen([sys.executable, "-m", "clapkit.cli", "serve", "--db", str(collection["db"]),
                               "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = httpx.get(url + "/health")
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.time() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.json()["files"] == 8
        assert httpx.get(url + "/info").status_code == 401
        info = httpx.get(url + "/info", headers={"Authorization": "Bearer from-env"})
        assert info.status_code == 200 and info.json()["model"] == "tiny-search"  # the database's model, by default
        assert "server" not in health.headers
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"at http://127.0.0.1:{port}/" in err and "with a token" in err and "Traceback" not in err


@pytest.mark.parametrize("host, status", [("127.0.0.1:8000", 200), ("localhost", 200), ("[::1]:8000", 200),
                                          ("evil.example", 400), ("evil.example:8000", 400), ("127.0.0.1.evil.example", 400)])
def test_a_local_service_answers_only_local_host_names(make_app, host, status):
    from fastapi.testclient import TestClient

    from clapkit.serve.app import LOCAL_HOSTS

    with TestClient(make_app(hosts=LOCAL_HOSTS), raise_server_exceptions=False) as c:
        response = c.get("/health", headers={"Host": host})
    assert response.status_code == status
    if status == 400:
        assert "Host header" in one_line_error(response, 400)


@pytest.mark.parametrize("path", ["/static/..%2Ffiles%2F1", "/static/%2e%2e/files/1", "/static/..%2F..%2Fserve%2Fapp.py"])
def test_the_open_static_folder_does_not_open_anything_else(client, path):
    response = client.get(path, headers={"Authorization": ""})
    assert response.status_code in (401, 404) and b"RIFF" not in response.content


def test_the_api_description_needs_the_token_too(client):
    bare = {"Authorization": ""}
    for path in ("/docs", "/openapi.json"):
        assert client.get(path, headers=bare).status_code == 401
        assert client.get(path).status_code == 200


def test_ids_beyond_sqlite_integers_are_refused_not_a_server_error(client):
    for path in ("/files/99999999999999999999", "/similar/99999999999999999999"):
        response = client.get(path)
        assert response.status_code in (404, 422) and "\n" not in response.text


def test_a_file_changed_since_indexing_is_not_served(client, searcher, tmp_path):
    import os
    import shutil

    file_id = searcher.file_id(str(sorted(searcher.db.conn.execute("SELECT path FROM files WHERE status = 'ok'"))[0][0].decode()))
    path, meta = searcher.file(file_id)
    backup = tmp_path / "backup"
    shutil.copy2(path, backup)
    try:
        with open(path, "ab") as f:
            f.write(b"appended")  # another size: as if a link had been swapped to another file
        response = client.get(f"/files/{file_id}")
        assert response.status_code == 404 and "changed since it was indexed" in response.text
    finally:
        shutil.copy2(backup, path)
        os.utime(path, ns=(meta["mtime_ns"], meta["mtime_ns"]))
    assert client.get(f"/files/{file_id}").status_code == 200
