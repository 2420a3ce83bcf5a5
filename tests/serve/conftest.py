from __future__ import annotations

import pytest
from search_support import TOKEN, save_tiny_model, write_clips
from shared_data import require

pytest.importorskip("fastapi")
pytest.importorskip("faiss")


@pytest.fixture(scope="session")
def collection(tmp_path_factory) -> dict:
    """A tiny model, eight 2-second clips and their index (with tags), built once."""
    from clapkit.cli import main

    root = tmp_path_factory.mktemp("serve")
    model = save_tiny_model(root / "model")
    tokenizer = str(require("tokenizers", "gpt2"))
    clips = root / "clips"
    files = write_clips(clips, seconds=2.0)
    labels = root / "labels.txt"
    labels.write_text("hum\nwhistle\nnoise\nclicks\n")
    db = root / "sounds.db"
    assert main(["index", str(clips), "--db", str(db), "--model", model, "--tokenizer", tokenizer,
                 "--tags", str(labels)]) == 0
    return {"root": root, "model": model, "tokenizer": tokenizer, "clips": clips, "files": files, "db": db}


@pytest.fixture(scope="session")
def searcher(collection):
    import clapkit
    from clapkit.index.search import Searcher

    pipeline = clapkit.load(collection["model"], tokenizer=collection["tokenizer"])
    return Searcher(collection["db"], pipeline)


def _make_app(searcher, **options):
    from clapkit.serve.app import Limits, create_app

    limits = options.pop("limits", Limits(max_upload_bytes=300_000, max_audio_seconds=3.0, max_labels=5,
                                          max_query_chars=50))
    return create_app(searcher, limits=limits, **options)





@pytest.fixture(scope="session")
def client(searcher):
    from fastapi.testclient import TestClient

    with TestClient(_make_app(searcher, token=TOKEN), raise_server_exceptions=False) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


@pytest.fixture(scope="session")
def open_client(searcher):
    from fastapi.testclient import TestClient

    with TestClient(_make_app(searcher), raise_server_exceptions=False) as c:
        yield c


def wav_bytes(seconds: float, kind: int = 0, variant: int = 0) -> bytes:
    import io

    import soundfile as sf
    from search_support import RATE, clip

    buffer = io.BytesIO()
    sf.write(buffer, clip(kind, variant, seconds), RATE, format="WAV")
    return buffer.getvalue()


@pytest.fixture
def wav():
    return wav_bytes


@pytest.fixture
def make_app(searcher):
    """``make_app(**create_app options)`` over the session's searcher, with small test limits."""
    return lambda **options: _make_app(searcher, **options)
