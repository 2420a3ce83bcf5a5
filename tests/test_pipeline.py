"""The public API reproduces msclap end to end: a checkpoint saved in the released .pth layout,
loaded by ``clapkit.load``, gives msclap's golden outputs from the raw clips."""
import numpy as np
import pytest
import soundfile as sf
import torch
from parity import parity_atol, parity_golden, parity_inputs

import clapkit
from clapkit.audio import AudioError
from clapkit.errors import UsageError


@pytest.fixture(scope="module", params=["2023", "2022"])
def loaded(request, msclap_checkpoint, shared_dir):
    version = request.param
    path = msclap_checkpoint(version)
    tokenizer = shared_dir / "tokenizers" / ("gpt2" if version == "2023" else "bert-base-uncased")
    return version, clapkit.load(path, tokenizer=str(tokenizer))


def raw_clips(version):
    inputs = parity_inputs(version)
    return [inputs[f"raw_{name}"] for name in inputs["clip_names"]]


def close(version, name, actual, golden):
    error = np.abs(np.asarray(actual) - golden[name]).max()
    assert error <= parity_atol(version, name), f"{name}: max error {error:.3g}"


def test_audio_embeddings_match_msclap(loaded):
    version, model = loaded
    golden = parity_golden(version)
    close(version, "audio_embedding", model.embed_audio(raw_clips(version), sample_rate=44100, normalize=False), golden)


def test_text_embeddings_match_msclap(loaded):
    version, model = loaded
    golden, inputs = parity_golden(version), parity_inputs(version)
    close(version, "text_embedding", model.embed_text(list(inputs["texts"]), normalize=False), golden)
    close(version, "prompt_embedding", model.embed_text(list(inputs["prompts"]), normalize=False), golden)


def test_similarity_and_zero_shot_match_msclap(loaded):
    version, model = loaded
    golden, inputs = parity_golden(version), parity_inputs(version)
    audio = model.embed_audio(raw_clips(version), sample_rate=44100)
    close(version, "similarity_audio_text", model.similarity(audio, model.embed_text(list(inputs["texts"]))), golden)
    result = model.classify(raw_clips(version), list(inputs["prompt_labels"]), sample_rate=44100)
    close(version, "zeroshot_probs", result.probs, golden)
    assert result.top(1)[0][0][0] == inputs["prompt_labels"][int(golden["zeroshot_probs"][0].argmax())]


def test_same_file_gives_bitwise_identical_embeddings(loaded, tmp_path):
    _, model = loaded
    path = tmp_path / "clip.wav"
    sf.write(path, np.random.default_rng(0).standard_normal((3 * 48000, 2)).astype(np.float32) * 0.1, 48000)
    first = model.embed_audio([path, path])
    assert torch.equal(first, model.embed_audio([path, path]))
    assert torch.equal(model.embed_audio(str(path)), model.embed_audio(str(path)))


def test_embedding_does_not_depend_on_batch_company(loaded):
    version, model = loaded
    clips = raw_clips(version)
    alone = model.embed_audio(clips[:1], sample_rate=44100)
    rng = np.random.default_rng(1)
    long_clip = rng.standard_normal(44100 * 16).astype(np.float32) * 0.1  # several windows
    for batch_size in (1, 2, 7):
        mixed = model.embed_audio([long_clip, clips[0], *clips[1:]], sample_rate=44100, batch_size=batch_size)
        assert torch.allclose(mixed[1], alone[0], rtol=1e-5, atol=1e-6)


def test_long_audio_is_windowed_deterministically(loaded):
    _, model = loaded
    clip = np.random.default_rng(2).standard_normal(44100 * 12).astype(np.float32) * 0.1
    windows = model.embed_audio(clip, sample_rate=44100, windows="all")[0]
    assert windows.shape[0] >= 2
    mean = model.embed_audio(clip, sample_rate=44100)[0]
    assert torch.allclose(mean, torch.nn.functional.normalize(windows.mean(0), dim=-1), atol=1e-6)


def test_bad_input_in_a_batch_is_reported_and_the_rest_go_on(loaded, tmp_path):
    _, model = loaded
    good = tmp_path / "good.wav"
    sf.write(good, np.random.default_rng(3).standard_normal(44100).astype(np.float32) * 0.1, 44100)
    results = dict(model.iter_audio_embeddings([good, tmp_path / "missing.wav", good]))
    assert isinstance(results[1], AudioError) and "missing.wav" in str(results[1])
    assert torch.equal(results[0], results[2])
    with pytest.raises(AudioError, match="missing.wav"):
        model.embed_audio([good, tmp_path / "missing.wav"])


@pytest.fixture(scope="module")
def captioner(msclap_checkpoint, shared_dir):
    return clapkit.load(msclap_checkpoint("clapcap"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"))


def test_captions_match_msclap(captioner):
    golden = parity_golden("clapcap", fp64=False)
    clips = raw_clips("clapcap")[:2]
    assert captioner.caption(clips, sample_rate=44100, stop="msclap") == list(golden["captions"][:2])


def test_bfloat16_runs_the_products_in_bf16_under_autocast_and_stays_within_1e_3_cosine(
        msclap_checkpoint, shared_dir, monkeypatch):
    monkeypatch.setattr("clapkit.pipeline.cpu_has_native_bf16", lambda: True)  # whatever this machine has
    model = clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"), dtype=torch.bfloat16)
    assert model.model.audio.encoder.norm.weight.dtype == torch.float32  # weights and norms stay float32
    assert model.compute_dtype == torch.bfloat16
    clips = raw_clips("2023")[:2]
    golden = parity_golden("2023")["audio_embedding"][:2]
    embedding = model.embed_audio(clips, sample_rate=44100, normalize=False).numpy()
    cosine = (embedding * golden).sum(1) / np.linalg.norm(embedding, axis=1) / np.linalg.norm(golden, axis=1)
    assert embedding.dtype == np.float32 and cosine.min() > 0.999
    assert not np.array_equal(embedding, model_float32_embedding(msclap_checkpoint, shared_dir, clips))


def model_float32_embedding(msclap_checkpoint, shared_dir, clips) -> np.ndarray:
    model = clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"))
    return model.embed_audio(clips, sample_rate=44100, normalize=False).numpy()


def test_bfloat16_on_a_cpu_without_native_bf16_says_so_and_runs_float32(msclap_checkpoint, shared_dir, monkeypatch):
    monkeypatch.setattr("clapkit.pipeline.cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bf16"):
        model = clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"), dtype="bf16")
    assert model.compute_dtype == torch.float32


def test_int8_quantises_the_audio_sides_linear_layers_and_stays_close(msclap_checkpoint, shared_dir, pipeline_2023):
    quantized = clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"), dtype="int8")

    def dynamic(module):
        return [m for m in module.modules() if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")]

    audio_linears = [m for part in (pipeline_2023.model.audio, pipeline_2023.model.audio_projection)
                     for m in part.modules() if isinstance(m, torch.nn.Linear)]
    assert len(dynamic(quantized.model)) == len(audio_linears) > 0 and not dynamic(quantized.model.text)
    assert quantized.model.audio.frontend.mel_basis.dtype == torch.float32
    clips = raw_clips("2023")[:4]
    ours, reference = quantized.embed_audio(clips, sample_rate=44100), pipeline_2023.embed_audio(clips, sample_rate=44100)
    assert torch.nn.functional.cosine_similarity(ours, reference).min() > 0.99
    assert torch.equal(quantized.embed_text(["a dog barks"]), pipeline_2023.embed_text(["a dog barks"]))


def test_an_audio_only_model_gives_the_same_audio_embeddings_without_a_text_tower(msclap_checkpoint, pipeline_2023):
    lean = clapkit.load(msclap_checkpoint("2023"), audio_only=True)
    assert lean.model.text is None and not any(k.startswith("text") for k in lean.model.state_dict())
    clips = raw_clips("2023")[:2]
    assert torch.equal(lean.embed_audio(clips, sample_rate=44100), pipeline_2023.embed_audio(clips, sample_rate=44100))
    with pytest.raises(clapkit.ClapkitError, match="has no text encoder"):
        lean.embed_text(["a dog"])


# ---- input rules and traps --------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipeline_2023(msclap_checkpoint, shared_dir):
    return clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"))


def test_one_shape_rule_for_numpy_and_torch(pipeline_2023):
    rng = np.random.default_rng(7)
    batch = (rng.standard_normal((3, 22050)) * 0.1).astype(np.float32)  # (B, T): three mono clips
    from_numpy = pipeline_2023.embed_audio(batch, sample_rate=44100)
    from_torch = pipeline_2023.embed_audio(torch.from_numpy(batch), sample_rate=44100)
    one_by_one = pipeline_2023.embed_audio(list(batch), sample_rate=44100)
    assert from_numpy.shape == (3, 1024) and torch.equal(from_numpy, from_torch) and torch.equal(from_numpy, one_by_one)
    stereo = np.stack([batch, batch[::-1]], axis=1)  # (B, C, T)
    mixed = pipeline_2023.embed_audio(stereo, sample_rate=44100)
    as_items = pipeline_2023.embed_audio([torch.from_numpy(clip.copy()) for clip in stereo], sample_rate=44100)
    assert mixed.shape == (3, 1024) and torch.allclose(mixed, as_items, atol=1e-6)


def test_an_item_shaped_time_by_channels_is_refused(pipeline_2023):
    frames = np.zeros((22050, 2), np.float32)  # soundfile's (time, channels): must be transposed
    with pytest.raises(AudioError, match="transpose"):
        pipeline_2023.embed_audio([frames], sample_rate=44100)


def test_no_input_gives_empty_results(pipeline_2023):
    assert pipeline_2023.embed_audio([]).shape == (0, 1024)
    assert pipeline_2023.embed_text([]).shape == (0, 1024)
    result = pipeline_2023.classify([], labels=["dog", "rain"])
    assert result.probs.shape == (0, 2) and result.top(1) == []


@pytest.mark.parametrize("labels,cause", [("dog", "single string"), ([None, "dog"], r"labels\[0\]"), ([], "at least one")])
def test_labels_must_be_a_list_of_strings(pipeline_2023, labels, cause):
    with pytest.raises(UsageError, match=cause):
        pipeline_2023.classify([np.zeros(4410, np.float32)], labels=labels, sample_rate=44100)


@pytest.mark.parametrize("kwargs,cause", [({"batch_size": 0}, "batch_size"), ({"batch_size": -2}, "batch_size"),
                                          ({"template": "{} {}"}, "template"), ({"template": "{label}"}, "template")])
def test_bad_arguments_are_refused(pipeline_2023, kwargs, cause):
    with pytest.raises(UsageError, match=cause):
        pipeline_2023.classify([np.zeros(4410, np.float32)], labels=["dog"], sample_rate=44100, **kwargs)


@pytest.mark.parametrize("options,cause", [({"hop_seconds": 0}, "hop_seconds"), ({"hop_seconds": float("nan")}, "finite"),
                                           ({"hop_seconds": 8}, "at most 7"), ({"policy": "random"}, "policy"),
                                           ({"variant": "bogus"}, "variant: unknown 'bogus'"),
                                           ({"device": "bogus"}, "device: unknown"), ({"dtype": "int4"}, "dtype: unknown .int4.; choose float32, bfloat16, float16 or int8")])
def test_bad_load_options_are_one_line(msclap_checkpoint, shared_dir, options, cause):
    with pytest.raises(UsageError, match=cause):
        clapkit.load(msclap_checkpoint("2023"), tokenizer=str(shared_dir / "tokenizers" / "gpt2"), **options)


def test_huge_samples_never_give_nan(pipeline_2023, tmp_path):
    loud = np.random.default_rng(8).standard_normal(22050).astype(np.float32) * 1e20
    with pytest.raises(AudioError, match="samples reach"):
        pipeline_2023.embed_audio(loud, sample_rate=44100)
    path = tmp_path / "loud.wav"
    sf.write(path, loud, 44100, subtype="FLOAT")
    results = dict(pipeline_2023.iter_audio_embeddings([path, np.zeros(4410, np.float32)], sample_rate=44100))
    assert isinstance(results[0], AudioError) and torch.isfinite(results[1]).all()


def test_captioning_needs_a_captioner(pipeline_2023):
    with pytest.raises(UsageError, match="cannot caption"):
        pipeline_2023.caption([np.zeros(4410, np.float32)], sample_rate=44100)


def test_results_stream_before_the_batch_is_full(pipeline_2023):
    clips = [np.full(4410, 0.01 * (i + 1), np.float32) for i in range(5)]
    stream = pipeline_2023.iter_audio_embeddings(iter_with_log(clips, seen := []), sample_rate=44100, batch_size=2)
    first_index, _ = next(stream)
    assert first_index == 0 and len(seen) <= 2  # clip 0 came out after the first batch of 2, not after all 5


def iter_with_log(items, seen):
    for item in items:
        seen.append(item)
        yield item
