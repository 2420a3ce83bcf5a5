"""The HTTP service: FastAPI over a :class:`~clapkit.index.search.Searcher`.

Security model: the service binds 127.0.0.1 unless told otherwise; with a token set, every
endpoint but ``/health``, the page and its static files needs ``Authorization: Bearer <token>``
(compared in constant time; ``GET /files/{id}`` also takes ``?token=`` because an ``<audio>``
element cannot send headers). Every error is a JSON body ``{"error": "<one line>"}``: no traceback,
no server path. Request bodies are cut off at ``max_upload_bytes`` (413) whether or not they
declare their length; audio duration, label count, query length and ``top`` are bounded (422).
``/files/{id}`` takes an integer id and serves only the file of that id in the index, with HTTP
range requests; it never takes a path.

Model calls run on one worker thread. Concurrent text queries are micro-batched: queries arriving
within ``batch_window_s`` of each other are embedded in one call (the pipeline's results do not
depend on the batch's company, up to float rounding).
"""

import asyncio
import hmac
import logging
import mimetypes
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError, ClapkitError, UsageError, one_line

STATIC = Path(__file__).with_name("static")
log = logging.getLogger("clapkit.serve")


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_audio_seconds: float = 60.0
    max_labels: int = 100
    max_query_chars: int = 500
    max_top: int = 100
    max_texts: int = 64


class TextBatcher:
    """Collects text queries for ``window_s`` after the first one arrives (up to ``max_batch``) and
    embeds them in one model call on ``executor``."""

    def __init__(self, embed, executor, window_s: float = 0.003, max_batch: int = 64) -> None:
        self.embed, self.executor, self.window_s, self.max_batch = embed, executor, window_s, max_batch
        self.calls = self.texts = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, text: str) -> np.ndarray:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:
            self._queue, self._loop = asyncio.Queue(), loop
            self._worker = loop.create_task(self._run())
        future = loop.create_future()
        await self._queue.put((text, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            batch = [(text, future) for text, future in batch if not future.cancelled()]
            if not batch:
                continue
            try:
                vectors = await loop.run_in_executor(self.executor, self.embed, [text for text, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            self.calls += 1
            self.texts += len(batch)
            for (_, future), vector in zip(batch, vectors):
                if not future.done():
                    future.set_result(vector)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


OPEN_PATHS = ("/health", "/")


class TokenGuard:
    """ASGI middleware: with a token, every path but ``OPEN_PATHS`` and ``/static/`` needs
    ``Authorization: Bearer <token>`` (``/files/`` also ``?token=``), compared in constant time.
    It runs before routing and before any body is read, so unauthenticated uploads cost nothing."""

    def __init__(self, app, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in OPEN_PATHS or path.startswith("/static/"):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        given = header[7:].strip() if header[:7].lower() == b"bearer " else b""
        if not given and path.startswith("/files/"):
            from urllib.parse import parse_qs

            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0].encode("latin-1")
        if given and hmac.compare_digest(given, self.token):
            return await self.app(scope, receive, send)
        await _send_error(send, 401, "missing or wrong token: send Authorization: Bearer <token>",
                          [(b"www-authenticate", b"Bearer")])


class HostGuard:
    """ASGI middleware: only requests whose Host header names one of ``hosts`` (any port) are
    served. A service on 127.0.0.1 thus refuses pages of other sites that re-point their own name
    at 127.0.0.1 (DNS rebinding) to read it from the user's browser."""

    def __init__(self, app, hosts: list[str]) -> None:
        self.app, self.hosts = app, {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") and "]:" in host else host
        if name.strip("[]") not in self.hosts:
            return await _send_error(send, 400, "Host header: not a name this service answers to")
        return await self.app(scope, receive, send)


LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1"]


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413, declared or not."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                return await _send_error(send, 400, "Content-Length: not a number")
            if too_big:
                return await _send_error(send, 413, f"request body over the {_size(self.limit)} limit")
            return await self.app(scope, receive, send)
        # No length declared (chunked): read the body here, up to the limit, then hand it on.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if size > self.limit:
                return await _send_error(send, 413, f"request body over the {_size(self.limit)} limit")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_error(send, status: int, message: str, extra: list | None = None) -> None:
    import json

    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def create_app(searcher, *, token: str | None = None, limits: Limits = Limits(), show_paths: bool = False,
               batch_window_s: float = 0.003, refresh_every_s: float = 5.0, hosts: list[str] | None = None):
    """The FastAPI application serving ``searcher`` (whose pipeline embeds the queries); ``hosts``,
    when given, are the only Host header names answered (see :class:`HostGuard`)."""
    from fastapi import FastAPI, File, Form, Query, Request, UploadFile
    from fastapi import Path as PathParam
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException

    pipeline = searcher.pipeline
    model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clapkit-model")
    batcher = TextBatcher(lambda texts: pipeline.embed_text(texts).numpy(), model_thread, batch_window_s)
    state = {"refresher": None}

    async def refresher():
        while True:
            await asyncio.sleep(refresh_every_s)
            try:
                await asyncio.to_thread(searcher.refresh)
            except Exception:  # noqa: BLE001 - a re-index in progress; tried again later
                log.exception("refreshing the index failed")

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        state["refresher"] = asyncio.get_running_loop().create_task(refresher())
        yield
        state["refresher"].cancel()
        await batcher.close()
        model_thread.shutdown(wait=False)

    app = FastAPI(title="clapkit sound search", version="1", lifespan=lifespan,
                  description="Search a clapkit index by text or example audio. Scores are cosine similarities.")
    app.state.batcher = batcher
    app.state.searcher = searcher

    # ---- errors: one JSON line, never a traceback or a path --------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        detail = {"Not Found": "not found", "Method Not Allowed": "method not allowed"}.get(detail, detail)
        return JSONResponse({"error": one_line(detail)}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return JSONResponse({"error": one_line(f"{where or 'request'}: {first.get('msg', 'invalid')}")}, 422)

    @app.exception_handler(ClapkitError)
    async def clapkit_error(request: Request, exc: ClapkitError):
        return JSONResponse({"error": one_line(exc)}, 422)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception):
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error"}, 500)

    def hits_json(hits) -> dict:
        return {"hits": [hit.to_dict(segments=searcher.segments, paths=show_paths) for hit in hits]}

    async def upload_bytes(file: UploadFile) -> bytes:
        data = await file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise HTTPException(413, f"upload over the {_size(limits.max_upload_bytes)} limit")
        if not data:
            raise HTTPException(422, "file: empty upload")
        return data

    def decode_upload(data: bytes) -> tuple[np.ndarray, int]:
        """Decode at most just past the duration limit, whatever the header claims (a header that
        understates the length must not buy hours of decoding), and refuse what goes beyond it."""
        from ..audio import read_audio

        frames, rate = read_audio(data, max_seconds=limits.max_audio_seconds + 1, name="upload")
        seconds = len(frames) / rate
        if seconds > limits.max_audio_seconds:
            raise UsageError(f"upload: more than {limits.max_audio_seconds:g} s of audio; the limit is "
                             f"{limits.max_audio_seconds:g} s")
        if not len(frames):
            raise AudioError("upload: no audio")
        return frames.T, rate

    def embed_upload(data: bytes) -> np.ndarray:
        wave, rate = decode_upload(data)
        for _, result in pipeline.iter_audio_embeddings([wave], sample_rate=rate):
            if isinstance(result, AudioError):
                raise AudioError(str(result).replace("<ndarray> #0", "upload").replace("<bytes>", "upload"))
            return result.numpy()
        raise AudioError("upload: no audio")

    async def on_model(function, *args):
        return await asyncio.get_running_loop().run_in_executor(model_thread, function, *args)

    Top = Query(10, ge=1, le=limits.max_top, description="hits returned")

    # ---- open ----------------------------------------------------------------------------------
    @app.get("/health", summary="liveness and collection size (no token needed)")
    async def health():
        stats = await asyncio.to_thread(searcher.stats)
        if searcher.stale_reason:  # the database was re-indexed with another model than this service's
            return {"status": "stale", "files": stats["files"], "model": stats["model"], "reason": searcher.stale_reason}
        return {"status": "ok", "files": stats["files"], "model": stats["model"]}

    @app.get("/", include_in_schema=False)
    async def page():
        # The page loads nothing from elsewhere and runs no inline script: say so to the browser.
        return FileResponse(STATIC / "index.html", media_type="text/html", headers={
            "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                                       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ---- behind the token (checked by TokenGuard, before any body is read) -----------------------
    @app.get("/info", summary="the index: model, counts, tag vocabulary, limits")
    async def info():
        return {**(await asyncio.to_thread(searcher.stats)), "limits": asdict(limits),
                "text_batches": {"model_calls": batcher.calls, "queries": batcher.texts}}

    @app.get("/search", summary="text query (tag= filters; tag= alone lists that tag's files)")
    async def search(q: str | None = Query(None, max_length=limits.max_query_chars), top: int = Top,
                     tag: str | None = Query(None, max_length=200), min_score: float | None = Query(None, ge=-1, le=1)):
        if q is None and tag is not None:  # the files with this tag, by the tag's cosine
            return {"query": None, **hits_json(await asyncio.to_thread(searcher.tagged, tag, top, min_score=min_score))}
        if q is None:
            raise HTTPException(422, "q: Field required (or give tag= alone)")
        if not q.strip():
            raise HTTPException(422, "q: empty query")
        vector = await batcher(q)
        hits = await asyncio.to_thread(searcher.vector, vector, top, tag=tag, min_score=min_score)
        return {"query": q, **hits_json(hits)}

    @app.get("/similar/{file_id:int}", summary="more like this indexed file")
    async def similar(file_id: int = PathParam(..., ge=0, le=2**63 - 1), top: int = Top, tag: str | None = Query(None, max_length=200),
                      min_score: float | None = Query(None, ge=-1, le=1)):
        vector = await asyncio.to_thread(searcher.db_vector, file_id)
        if vector is None:
            raise HTTPException(404, f"file {file_id}: not in the index")
        hits = await asyncio.to_thread(searcher.vector, vector, top, tag=tag, min_score=min_score, exclude=file_id)
        return hits_json(hits)

    @app.post("/search/audio", summary="query by an uploaded clip")
    async def search_audio(file: UploadFile = File(...), top: int = Top):
        vector = await on_model(embed_upload, await upload_bytes(file))
        return hits_json(await asyncio.to_thread(searcher.vector, vector, top))

    class Texts(BaseModel):
        texts: list[str] = Field(..., min_length=1, max_length=limits.max_texts)

    @app.post("/embed/text", summary="text embeddings (normalised)")
    async def embed_text(body: Texts):
        for i, text in enumerate(body.texts):
            if len(text) > limits.max_query_chars:
                raise HTTPException(422, f"texts[{i}]: longer than {limits.max_query_chars} characters")
        vectors = await asyncio.gather(*(batcher(text) for text in body.texts))
        return {"dim": int(searcher.model.dim), "embeddings": [v.tolist() for v in vectors]}

    @app.post("/embed/audio", summary="audio embedding of an uploaded clip (normalised)")
    async def embed_audio(file: UploadFile = File(...)):
        vector = await on_model(embed_upload, await upload_bytes(file))
        return {"dim": int(vector.shape[0]), "embedding": vector.tolist()}

    @app.post("/classify", summary="zero-shot classification of an uploaded clip")
    async def classify(file: UploadFile = File(...), labels: str = Form(..., description="comma-separated labels"),
                       template: str = Form("this is the sound of {}", max_length=500), multilabel: bool = Form(False)):
        from .. import options

        names = [label.strip() for label in labels.split(",") if label.strip()]
        if not names:
            raise HTTPException(422, "labels: needs at least one label, comma-separated")
        if len(names) > limits.max_labels:
            raise HTTPException(422, f"labels: {len(names)} given; the limit is {limits.max_labels}")
        if any(len(name) > limits.max_query_chars for name in names):
            raise HTTPException(422, f"labels: a label is longer than {limits.max_query_chars} characters")
        options.template(template)
        data = await upload_bytes(file)

        def run() -> list[tuple[str, float]]:
            import torch

            audio = torch.from_numpy(embed_upload(data))[None]
            text = pipeline.embed_text([template.format(name) for name in names])
            scores = pipeline.similarity(audio, text)[0]
            probs = scores.sigmoid() if multilabel else scores.softmax(-1)
            return sorted(zip(names, probs.tolist()), key=lambda lp: -lp[1])

        ranked = await on_model(run)
        return {"labels": [{"label": label, "prob": round(p, 6)} for label, p in ranked]}

    @app.get("/files/{file_id:int}", summary="the audio of an indexed file (HTTP ranges)")
    async def files(file_id: int = PathParam(..., ge=0, le=2**63 - 1)):
        found = await asyncio.to_thread(searcher.file, file_id)
        if found is None:
            raise HTTPException(404, f"file {file_id}: not in the index")
        path, meta = found
        try:
            st = os.stat(path)
        except OSError:
            raise HTTPException(404, f"file {file_id}: no longer on disk; re-run clapkit index") from None
        # Serve only the file that was indexed: one replaced since (or a link swapped to another
        # file) has another size or time, and waits for the next index run.
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (meta["size"], meta["mtime_ns"]):
            raise HTTPException(404, f"file {file_id}: changed since it was indexed; re-run clapkit index")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        name = os.path.basename(path).encode("utf-8", "replace").decode("utf-8")  # undecodable bytes: '?'
        return FileResponse(path, media_type=media, filename=name, content_disposition_type="inline")

    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes)
    if token:
        app.add_middleware(TokenGuard, token=token)
    if hosts:
        app.add_middleware(HostGuard, hosts=hosts)  # added last: runs first
    return app
