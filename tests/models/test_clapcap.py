"""clapcap captioner: msclap parity of the prefix, the decoder log-probs and the beam search (incl. its stop logic)."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
from parity import msclap_raw_state, parity_atol, parity_golden, parity_inputs

from clapkit.models.clapcap import (
    EOS_TOKEN_ID,
    MSCLAP_STOP_TOKEN_ID,
    Beams,
    batch_beam_search,
    beam_search,
)
from clapkit.models.factory import create_model
from clapkit.text import load_tokenizer
from clapkit.weights.formats.msclap import convert_msclap_state_dict
from clapkit.weights.loading import load_state_dict_strict

GOLDEN = parity_golden("clapcap")                    # fp64 reference values
GOLDEN_INT = parity_golden("clapcap", fp64=False)    # ids, lengths, steps and strings live only here
CLIPS = range(5)
PROBES = {"caption": MSCLAP_STOP_TOKEN_ID, "probe_stopEVE": 32356, "probe_stopBrent": 23357}
EVE, BOB_CLIP = 32356, 4  # in the ' EVE' probe, clip fm_5s stops after 7 steps with beams of 5 different lengths


def _atol(name: str) -> float:
    return parity_atol("clapcap", name)


def _max_err(ours: torch.Tensor, name: str) -> float:
    return float(np.abs(ours.double().numpy() - GOLDEN[name]).max())


@pytest.fixture(scope="module")
def model():
    model = create_model("msclap-clapcap")
    load_state_dict_strict(model, convert_msclap_state_dict(msclap_raw_state("clapcap"), "msclap-clapcap"), "msclap")
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer(gpt2_tokenizer_dir):
    return load_tokenizer(gpt2_tokenizer_dir, "msclap-gpt2")


@pytest.fixture(scope="module")
def waveform():
    return torch.from_numpy(parity_inputs("clapcap")["tiled"])


@pytest.fixture(scope="module")
def audio_embedding(model, waveform):
    with torch.no_grad():
        return model.audio_embedding(waveform)


@pytest.fixture(scope="module")
def prefix_embed(model, audio_embedding):
    with torch.no_grad():
        return model.mapper(audio_embedding)


def _padded_ids(beams: Beams, width: int = 67) -> np.ndarray:
    """The goldens' layout: each beam's ids up to its length, then -1."""
    out = np.full((beams.tokens.shape[0], width), -1)
    for i in range(out.shape[0]):
        ids = beams.ids(i)
        out[i, :len(ids)] = ids
    return out


@contextmanager
def _relabelled(model, token_a: int, token_b: int):
    """Swap two vocabulary entries of the (tied) GPT-2 embedding: the same model under renamed token ids."""
    weight = model.decoder.transformer.wte.weight
    with torch.no_grad():
        weight[[token_a, token_b]] = weight[[token_b, token_a]]
    try:
        yield
    finally:
        with torch.no_grad():
            weight[[token_a, token_b]] = weight[[token_b, token_a]]


def test_stop_token_ids_match_msclap(tokenizer):
    assert MSCLAP_STOP_TOKEN_ID == int(GOLDEN_INT["stop_token_index"]) == tokenizer.encode(" <|endoftext|>")[0]
    assert EOS_TOKEN_ID == tokenizer.eos_token_id
    for probe, text in (("probe_stopEVE", " EVE"), ("probe_stopBrent", " Brent")):
        assert tokenizer.encode(text)[0] == int(GOLDEN_INT[f"{probe}_stop_token_index"]) == PROBES[probe]


def test_prefix_normalized(audio_embedding):
    assert _max_err(audio_embedding, "prefix_normalized") <= _atol("prefix_normalized")


def test_prefix_embed(model, waveform, prefix_embed):
    assert prefix_embed.shape == (5, 40, 768)
    assert _max_err(prefix_embed, "prefix_embed") <= _atol("prefix_embed")
    with torch.no_grad():
        assert torch.equal(model.prefix(waveform[:2]), model.mapper(model.audio_embedding(waveform[:2])))


def test_first_step_logprobs(model, prefix_embed):
    with torch.no_grad():
        logprobs = model.decoder(inputs_embeds=prefix_embed)[:, -1].softmax(-1).log()
    assert _max_err(logprobs, "caption_first_step_logprobs") <= _atol("caption_first_step_logprobs")


def test_teacher_forced_logprobs(model, waveform):
    ids = torch.from_numpy(GOLDEN_INT["caption_best_ids"])  # every best caption is 67 tokens long
    assert (GOLDEN_INT["caption_best_len"] == ids.shape[1]).all()
    with torch.no_grad():
        logits = model(waveform, ids)
    logprobs = logits[:, 39:-1].softmax(-1).log().gather(-1, ids[..., None])[..., 0]
    assert _max_err(logprobs, "caption_teacher_forced_logprobs") <= _atol("caption_teacher_forced_logprobs")


@pytest.fixture(scope="module")
def batch_beams(model, prefix_embed):
    """``batch_beams(probe)``: the beams of all 5 clips searched together, one search per probe."""
    cache = {}

    def search(probe: str) -> list[Beams]:
        if probe not in cache:
            cache[probe] = batch_beam_search(model.decoder, prefix_embed, beam_size=5, max_length=67,
                                             stop_token_id=PROBES[probe])
        return cache[probe]

    return search


def _assert_msclap_beams(beams: Beams, tokenizer, probe: str, clip: int) -> None:
    """Final state of msclap's ``_generate_beam`` for ``clip`` under the stop token of ``probe``."""
    assert (_padded_ids(beams) == GOLDEN_INT[f"{probe}_beam_ids"][clip]).all()
    assert (beams.lengths.numpy() == GOLDEN_INT[f"{probe}_beam_len"][clip]).all()
    assert float(np.abs(beams.scores.double().numpy() - GOLDEN[f"{probe}_beam_scores"][clip]).max()) \
        <= _atol(f"{probe}_beam_scores")
    if probe == "caption":  # the default stop token is never generated: every clip runs all 67 steps
        assert beams.steps == 67
        assert beams.ids(0) == GOLDEN_INT["caption_best_ids"][clip, :GOLDEN_INT["caption_best_len"][clip]].tolist()
        assert tokenizer.decode(beams.ids(0)) == GOLDEN_INT["caption_decoded"][clip]
    else:
        assert beams.steps == GOLDEN_INT[f"{probe}_steps_run"][clip]
        assert tokenizer.decode(beams.ids(0)) == GOLDEN_INT[f"{probe}_decoded"][clip]


def _assert_same_beams(ours: Beams, other: Beams) -> None:
    assert ours.steps == other.steps
    assert torch.equal(ours.tokens, other.tokens) and torch.equal(ours.lengths, other.lengths)
    assert float((ours.scores - other.scores).abs().max()) <= 1e-5


@pytest.mark.parametrize("probe", PROBES)
def test_batch_beam_search_matches_msclap(batch_beams, tokenizer, probe):
    """All clips searched together keep msclap's per-clip search, incl. ' EVE' clips stopping at 2 and 7 steps."""
    beams = batch_beams(probe)
    assert len(beams) == len(CLIPS)
    for clip in CLIPS:
        _assert_msclap_beams(beams[clip], tokenizer, probe, clip)


# A 67-step search of one clip takes ~5 s, so by default only the short ' EVE' searches and the clip with the
# tightest margin between the 5th and 6th candidate (' Brent', clip 1: 1.8e-5) run alone.
DEFAULT_CLIPS = {"caption": (), "probe_stopEVE": tuple(CLIPS), "probe_stopBrent": (1,)}
SEARCHES = [pytest.param(probe, clip, marks=() if clip in DEFAULT_CLIPS[probe] else pytest.mark.slow)
            for probe in PROBES for clip in CLIPS]


@pytest.mark.parametrize("probe, clip", SEARCHES)
def test_beam_search_alone_matches_msclap_and_batch(model, tokenizer, prefix_embed, batch_beams, probe, clip):
    beams = beam_search(model.decoder, prefix_embed[clip:clip + 1], beam_size=5, max_length=67,
                        stop_token_id=PROBES[probe])
    _assert_msclap_beams(beams, tokenizer, probe, clip)
    _assert_same_beams(beams, batch_beams(probe)[clip])


def test_batch_beam_search_independent_of_batch_composition(model, prefix_embed, batch_beams):
    """The clip that runs longest (fm_5s, 7 steps under ' EVE') in a smaller batch, in another position."""
    beams = batch_beam_search(model.decoder, prefix_embed[[BOB_CLIP, 1]], beam_size=5, max_length=67,
                              stop_token_id=EVE)
    _assert_same_beams(beams[0], batch_beams("probe_stopEVE")[BOB_CLIP])
    _assert_same_beams(beams[1], batch_beams("probe_stopEVE")[1])


@pytest.mark.slow
def test_generate_reproduces_msclap_captions_batch(model, tokenizer, waveform):
    assert model.generate(waveform, tokenizer) == GOLDEN_INT["captions"].tolist()


@pytest.mark.parametrize("stop, stop_token_id", [("msclap", MSCLAP_STOP_TOKEN_ID), ("eos", EOS_TOKEN_ID)])
def test_generate_stops_and_strips_stop_token(model, tokenizer, waveform, stop, stop_token_id):
    """With ' EVE' and the stop token swapped in the vocabulary, every clip stops where the ' EVE' probe did.

    Clip 3 decodes to ' tract EVE': msclap's capitalize() of a leading space lower-cases the whole caption.
    """
    probe_texts = [str(text) for text in GOLDEN_INT["probe_stopEVE_decoded"]]
    assert all(text.endswith(" EVE") for text in probe_texts)
    captions = [text.removesuffix(" EVE") for text in probe_texts]
    expected = [caption.capitalize() if stop == "msclap" else caption.strip() for caption in captions]
    with _relabelled(model, EVE, stop_token_id):
        assert model.generate(waveform, tokenizer, stop=stop) == expected


def test_beam_search_respects_max_length(model, prefix_embed):
    beams = beam_search(model.decoder, prefix_embed[:1], beam_size=3, max_length=4)
    assert beams.steps == 4 and beams.tokens.shape == (3, 4)
    assert (beams.lengths == 4).all()
    assert (beams.scores[:-1] >= beams.scores[1:]).all()


def test_bad_arguments_raise(model, tokenizer, waveform, prefix_embed):
    with pytest.raises(ValueError, match="stop rule"):
        model.generate(waveform[:1], tokenizer, stop="never")
    with pytest.raises(ValueError, match="prefix_embed"):
        beam_search(model.decoder, prefix_embed[:2])
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model.decoder, prefix_embed[:1], beam_size=0)
    with pytest.raises(ValueError, match="prefix_embeds"):
        batch_beam_search(model.decoder, prefix_embed[0])
    with pytest.raises(ValueError, match="max_length"):
        batch_beam_search(model.decoder, prefix_embed[:2], max_length=0)
