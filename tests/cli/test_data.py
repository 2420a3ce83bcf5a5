"""``clapkit data manifest`` and ``clapkit data shards``: a dataset folder to a manifest to verified
WebDataset shards, with skipped clips listed and a non-zero exit."""
import numpy as np
import soundfile as sf

from clapkit.cli import main
from clapkit.data.manifest import read_manifest

HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def fake_esc50(root, names, missing=()):
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = [f"{name},1,0,dog,True,1,A\n" for name in names]
    (root / "meta" / "esc50.csv").write_text(HEADER + "".join(rows))
    for i, name in enumerate(names):
        if name not in missing:
            sf.write(root / "audio" / name, np.random.default_rng(i).standard_normal(800).astype(np.float32) * 0.1, 8000)


def test_manifest_then_shards(tmp_path, capsys):
    fake_esc50(tmp_path / "ESC-50", ["1-1-A-0.wav", "1-2-A-0.wav"])
    out = tmp_path / "esc50.jsonl"
    assert main(["data", "manifest", "esc50", str(tmp_path / "ESC-50"), "--out", str(out)]) == 0
    assert [c.labels for c in read_manifest(out)] == [["dog"], ["dog"]]
    assert main(["data", "shards", str(out), "--out", str(tmp_path / "shards" / "s-%06d.tar")]) == 0
    assert "verified 2 clips" in capsys.readouterr().out


def test_missing_clip_is_listed_and_exit_is_non_zero(tmp_path, capsys):
    fake_esc50(tmp_path / "ESC-50", ["1-1-A-0.wav", "1-2-A-0.wav"], missing={"1-2-A-0.wav"})
    out = tmp_path / "esc50.jsonl"
    assert main(["data", "manifest", "esc50", str(tmp_path / "ESC-50"), "--out", str(out)]) == 1
    assert "1-2-A-0.wav" in capsys.readouterr().err
    assert len(read_manifest(out)) == 1


def test_malformed_metadata_is_one_line_error(tmp_path, capsys):
    (tmp_path / "ESC-50" / "meta").mkdir(parents=True)
    (tmp_path / "ESC-50" / "meta" / "esc50.csv").write_text("filename,target\nx.wav,0\n")
    assert main(["data", "manifest", "esc50", str(tmp_path / "ESC-50"), "--out", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "esc50.csv" in err and err.count("\n") == 1
