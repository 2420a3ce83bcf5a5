"""The ``clapkit`` command: classify/embed over files and folders, failures listed at the end with a
non-zero exit, JSON lines, and one-line errors for set-up mistakes."""
import json
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from clapkit.cli import main


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir()
    sf.write(folder / "a.wav", rng.standard_normal(44100).astype(np.float32) * 0.1, 44100)
    sf.write(folder / "sub" / "b.flac", rng.standard_normal((32000, 2)).astype(np.float32) * 0.1, 32000)
    (folder / "notes.txt").write_text("not audio, and not picked up from a folder")
    return folder


@pytest.fixture(scope="module")
def model_args(msclap_checkpoint, shared_dir):
    return ["--model", str(msclap_checkpoint("2023")), "--tokenizer", str(shared_dir / "tokenizers" / "gpt2")]


def test_classify_folder_prints_one_json_line_per_file(audio_dir, model_args, capsys):
    assert main(["classify", str(audio_dir), "--labels", "dog,rain,bell", "--top", "2", "--json", *model_args]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(audio_dir / "a.wav"), str(audio_dir / "sub" / "b.flac")]
    for line in lines:
        assert len(line["top"]) == 2 and line["top"][0]["prob"] >= line["top"][1]["prob"]


def test_classify_goes_on_past_bad_files_and_exits_non_zero(audio_dir, model_args, tmp_path, capsys):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    code = main(["classify", str(tmp_path / "missing.wav"), str(empty), str(audio_dir / "a.wav"), "--labels", "dog,rain", *model_args])
    out, err = capsys.readouterr()
    assert code == 1
    assert str(audio_dir / "a.wav") in out
    assert "missing.wav" in err and "empty.wav" in err and "2 input(s) failed" in err
    assert "Traceback" not in err


def test_embed_writes_audio_and_text_embeddings(audio_dir, model_args, tmp_path):
    out = tmp_path / "emb.npz"
    assert main(["embed", str(audio_dir), "--text", "a dog barks", "--text", "rain", "--out", str(out), *model_args]) == 0
    data = np.load(out)
    assert data["audio"].shape == (2, 1024) and data["text"].shape == (2, 1024)
    assert np.allclose(np.linalg.norm(data["audio"], axis=1), 1, atol=1e-5)
    assert list(data["texts"]) == ["a dog barks", "rain"]


def test_unknown_model_is_one_line_error(audio_dir, capsys):
    assert main(["classify", str(audio_dir), "--labels", "dog", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-model" in err


def test_models_lists_the_registry(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("CLAPKIT_HOME", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("msclap-2023", "msclap-2022", "msclap-clapcap"):
        assert name in out
    assert "CLAP_weights_2023.pth" in out


@pytest.mark.slow
def test_caption_prints_one_caption_per_file(audio_dir, msclap_checkpoint, shared_dir, capsys):
    args = ["--model", str(msclap_checkpoint("clapcap")), "--tokenizer", str(shared_dir / "tokenizers" / "gpt2")]
    assert main(["caption", str(audio_dir / "a.wav"), "--json", *args]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["file"] == str(audio_dir / "a.wav") and line["caption"]


# ---- traps: every user error is one line, a non-zero exit and no traceback ---------------------

def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clapkit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("option,value,cause", [
    ("--top", "0", "at least 1"), ("--top", "-1", "at least 1"), ("--batch-size", "0", "at least 1"),
    ("--batch-size", "-4", "at least 1"), ("--hop", "-1", "above 0"), ("--hop", "0", "above 0"),
    ("--hop", "1e-9", "at least 0.1"), ("--hop", "nan", "finite"), ("--hop", "inf", "finite"),
    ("--template", "{} and {}", "exactly one"), ("--template", "{label}", "plain '{}'"),
    ("--template", "{", "not a valid template"), ("--template", "{1}", "plain '{}'"),
    ("--template", "no field", "exactly one"),
])
def test_bad_option_values_are_refused_before_any_work(audio_dir, option, value, cause, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classify", str(audio_dir), "--labels", "dog", f"{option}={value}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"argument {option}:" in err and cause in err and "Traceback" not in err


@pytest.mark.parametrize("extra,cause", [
    (["--device", "bogus"], "device: unknown device 'bogus'"),
    (["--device", "cuda:7"], "device: cuda:7 requested"),
    (["--variant", "bogus"], "variant: unknown 'bogus'; known: clapkit-small, clapkit-small-pretrain, laion-htsat-base"),
])
def test_bad_set_up_is_one_line(audio_dir, model_args, extra, cause, capsys):
    assert main(["classify", str(audio_dir), "--labels", "dog", *model_args, *extra]) == 2
    err = capsys.readouterr().err
    assert err == f"clapkit: error: {err.split('clapkit: error: ', 1)[1]}" and err.count("\n") == 1
    assert cause in err


def test_caption_with_a_model_that_cannot_caption_is_one_line(audio_dir, model_args, capsys):
    assert main(["caption", str(audio_dir / "a.wav"), *model_args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot caption" in err


@pytest.mark.parametrize("out,cause", [("", "empty path"), ("/proc/clapkit.npz", "cannot write"),
                                       ("{file}/x.npz", "is a file"), ("{folder}", "is a folder")])
def test_embed_checks_its_output_before_the_work(audio_dir, model_args, tmp_path, out, cause, capsys, monkeypatch):
    import clapkit.cli.infer as infer

    monkeypatch.setattr(infer, "load_model", lambda args: pytest.fail("the model was loaded before --out was checked"))
    (tmp_path / "file").write_text("x")
    out = out.format(file=tmp_path / "file", folder=tmp_path)
    assert main(["embed", str(audio_dir), f"--out={out}", *model_args]) == 2
    assert cause in capsys.readouterr().err


def test_classify_into_a_closed_pipe_ends_quietly(audio_dir, model_args):
    command = [sys.executable, "-m", "clapkit.cli", "classify", str(audio_dir), str(audio_dir), "--labels", "dog,rain",
               *model_args]
    shell = " ".join(shlex.quote(part) for part in command) + " | head -c 1"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert len(done.stdout) == 1  # the first byte of the first result went through
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_folder_expansion_reports_what_it_cannot_read(tmp_path, model_args, capsys):
    folder = tmp_path / "sounds"
    folder.mkdir()
    rng = np.random.default_rng(5)
    sf.write(folder / ".wav", rng.standard_normal(8000).astype(np.float32) * 0.1, 16000, format="WAV")  # named .wav
    (folder / "broken.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(folder / "fifo.wav")
    (folder / "loop").symlink_to(folder)
    code = main(["classify", str(folder), "--labels", "dog,rain", "--json", *model_args])
    out, err = capsys.readouterr()
    assert code == 1
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(folder / ".wav")]
    assert "broken.wav" in err and "fifo.wav" in err and "loop" in err and "Traceback" not in err


def test_help_answers_without_importing_torch():
    code = "import sys, clapkit.cli as c; c.build_parser(); print('torch' in sys.modules or 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"
    for command in ([], ["classify"], ["embed"], ["caption"], ["models"], ["data"], ["data", "build", "offline"],
                    ["train"]):
        started = time.perf_counter()
        done = run_cli(*command, "--help")
        assert done.returncode == 0 and "usage: clapkit" in done.stdout
        assert time.perf_counter() - started < 5  # generous for a loaded CI machine; typically ~0.2 s


def test_models_reports_every_place_load_looks(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLAPKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = tmp_path / "hf" / "hub" / "models--microsoft--msclap" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "CLAP_weights_2022.pth").write_bytes(b"x")
    refs = snapshot.parents[1] / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    blocks = {block.split("\t", 1)[0]: block for block in re.split(r"\n(?=\S)", out)}
    assert f"ready: {snapshot / 'CLAP_weights_2022.pth'}" in blocks["msclap-2022"]
    assert str(tmp_path / "home" / "CLAP_weights_2022.pth") in blocks["msclap-2022"] and "then the Hub" in blocks["msclap-2022"]
    assert "not present" in blocks["msclap-2023"] and "licence: MIT" in blocks["msclap-2023"]
    fused = blocks["laion/clap-htsat-fused"]  # a Hugging Face folder: looked for as a folder
    assert str(tmp_path / "home" / "clap-htsat-fused") in fused and "licence: Apache-2.0" in fused
    assert "architecture: laion-htsat-tiny-fusion" in blocks["laion-630k-fusion"]
    assert len(blocks) == 16
    shipped = blocks["clapkit-small"]  # inside the package: no other place is looked at
    assert "ready: shipped inside the package" in shipped and "GPL-3.0-or-later" in shipped
    assert "then the Hub" not in shipped


def patched_wav(path, offset: int, value: int, size: int = 2) -> None:
    """A valid 16-bit WAV whose header field at ``offset`` is overwritten (a lying header)."""
    sf.write(path, np.random.default_rng(9).standard_normal(16000).astype(np.float32) * 0.1, 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = value.to_bytes(size, "little")
    path.write_bytes(bytes(data))


def test_one_bad_file_never_loses_the_good_results(tmp_path, model_args, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    patched_wav(folder / "codec.wav", 20, 0x1234)                 # unknown codec tag
    patched_wav(folder / "one-hertz.wav", 24, 1, size=4)          # header says 1 Hz
    sf.write(folder / "loud.wav", np.full(16000, 1e20, np.float32), 16000, subtype="FLOAT")
    odd_name = os.path.join(os.fsencode(folder), b"caf\xe9.wav")  # not valid UTF-8
    sf.write(odd_name, np.zeros(16000, np.float32) + 0.01, 16000, format="WAV")
    sf.write(folder / "good.wav", np.random.default_rng(10).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    code = main(["classify", str(folder), "--labels", "dog,rain", "--json", *model_args])
    out, err = capsys.readouterr()
    results = {json.loads(line)["file"]: line for line in out.splitlines()}
    assert code == 1
    assert set(results) == {str(folder / "good.wav"), str(folder / "caf\\xe9.wav")}
    assert "NaN" not in out and "Traceback" not in err
    for name in ("codec.wav", "one-hertz.wav", "loud.wav"):
        assert name in err
    assert "3 input(s) failed" in err


def test_embed_into_a_folder_writes_shards_and_resumes_where_a_killed_run_stopped(audio_dir, model_args, tmp_path, capsys):
    import json

    from clapkit.cli.embed import read_shards

    out = tmp_path / "embeddings"
    files = sorted(str(p) for p in audio_dir.rglob("*") if p.suffix in (".wav", ".flac", ".ogg", ".mp3"))
    assert main(["embed", files[0], "--out", str(out), "--shard-size", "1", *model_args]) in (0, 1)
    first_paths, first = read_shards(out)
    capsys.readouterr()
    # A second run over everything (as after a kill) embeds only what is not in a shard yet.
    code = main(["embed", str(audio_dir), "--out", str(out), "--shard-size", "1", *model_args])
    paths, audio = read_shards(out)
    assert first_paths[0] == paths[0] and len(set(paths)) == len(paths) and (audio[0] == first[0]).all()
    err = capsys.readouterr().err
    assert f"{len(first_paths)} already there" in err
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert code == (1 if failures else 0) and len(paths) + len(failures) >= len(files)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["embed_dim"] == audio.shape[1]


def test_embed_refuses_a_folder_of_other_files_and_another_model(audio_dir, model_args, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["embed", str(audio_dir), "--out", str(tmp_path / "other"), *model_args]) == 2
    assert "not an embedding folder" in capsys.readouterr().err
    out = tmp_path / "embeddings"
    out.mkdir()
    (out / "meta.json").write_text('{"model": "some-other-model"}')
    assert main(["embed", str(audio_dir), "--out", str(out), *model_args]) == 2
    assert "some-other-model" in capsys.readouterr().err


def test_a_sigkilled_folder_embed_resumes_to_the_same_embeddings(model_args, tmp_path):
    import signal
    import subprocess
    import time

    from clapkit.cli.embed import read_shards

    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(5)
    for i in range(16):
        sf.write(clips / f"c{i:02d}.wav", rng.standard_normal(22050).astype(np.float32) * 0.1, 44100)
    command = [sys.executable, "-m", "clapkit.cli", "embed", str(clips), "--shard-size", "2", "--batch-size", "1",
               *model_args]
    killed = tmp_path / "killed"
    run = subprocess.Popen([*command, "--out", str(killed)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "shard-00001.npz").exists() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    partial = len(read_shards(killed)[0])
    assert subprocess.run([*command, "--out", str(killed)], stderr=subprocess.DEVNULL).returncode == 0
    assert subprocess.run([*command, "--out", str(tmp_path / "whole")], stderr=subprocess.DEVNULL).returncode == 0
    resumed, whole = dict(zip(*read_shards(killed))), dict(zip(*read_shards(tmp_path / "whole")))
    assert 0 < partial < 16 and sorted(resumed) == sorted(whole) and len(read_shards(killed)[0]) == 16
    assert all(np.array_equal(resumed[p], whole[p]) for p in whole)
