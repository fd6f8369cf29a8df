"""CTranslate2 whisper -> openai-whisper checkpoints (``models.ctranslate2_whisper``).

Two tiers. With no real weights: the tiny random whisper goes to CTranslate2's format through CTranslate2's own
converter (its ``WhisperLoader``, fed a transformers model with the same weights) and back through ours, and must
come back unchanged. With the starter set's real tiny.en in CTranslate2's format (``$BWC_STARTER_CT2`` or
``~/.cache/bwc/models/whisper/tiny.en-ct2``; skipped when absent): the converted checkpoint must decode a real
utterance to exactly CTranslate2's greedy tokens, and keep config.json's alignment heads.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from models.ctranslate2_whisper import (
    MODEL_BIN,
    convert_ctranslate2_to_whisper,
    load_whisper,
    read_ctranslate2_model,
)
from models.tiny import make_tiny_whisper

STARTER_ENV = "BWC_STARTER_CT2"
STARTER_DIR = Path("~/.cache/bwc/models/whisper/tiny.en-ct2")  # where `bwc models starter` installs it
SHARED = Path(__file__).resolve().parents[2] / "shared"  # the team's development data (absent from CI's clone)
UTTERANCE = SHARED / "data" / "speech" / "utterances" / "librispeech_1272-128104-0000.wav"  # 5.9 s, one speaker
TINY_EN = ModelDimensions(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4)  # openai's tiny.en
# Encoder output, openai-whisper fp32 vs CTranslate2 float32, ||a - b|| / ||b|| over a window: measured at most 1.3e-3
# (median 2.6e-4) on the 56 development utterances, about half of it the float16 rounding of the stored sinusoids
# that CTranslate2 adds where whisper adds exact ones. Element-wise it reaches 0.8 (of values up to 12) in one
# channel that amplifies rounding, so the norm is what is asserted.
ENCODER_RELATIVE_ERROR = 5e-3
# The random tiny model, same comparison: both run the same float32 sinusoids there, so only kernels differ
# (measured 2e-7).
TINY_ENCODER_RELATIVE_ERROR = 1e-5


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def _heads(model: Whisper) -> torch.Tensor:
    return model.alignment_heads.to_dense()


@pytest.fixture(scope="module")
def tiny_en_heads() -> dict[str, torch.Tensor]:
    """tiny.en's alignment heads as whisper sets them: its default (last half of the layers) and its published ones."""
    model = Whisper(TINY_EN)
    default = _heads(model)
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    return {"default": default, "published": _heads(model)}


# -- real weights: the starter set's tiny.en in CTranslate2's format --


@pytest.fixture(scope="module")
def ct2_dir() -> Path:
    """The starter set's CTranslate2 whisper directory, or a skip."""
    directory = Path(os.environ.get(STARTER_ENV) or STARTER_DIR).expanduser()
    if not (directory / MODEL_BIN).is_file():
        pytest.skip(
            f"real-weights tier: no CTranslate2 whisper in {directory} (run `bwc models starter` or set ${STARTER_ENV})"
        )
    return directory


@pytest.fixture(scope="module")
def converted(ct2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ctranslate2_to_whisper(ct2_dir, tmp_path_factory.mktemp("converted") / "tiny.en-ct2.pt")


def test_reader_gives_the_stored_variables_and_resolves_aliases(ct2_dir: Path) -> None:
    variables = read_ctranslate2_model(ct2_dir / MODEL_BIN)
    assert variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]  # the one alias
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert variables["decoder/embeddings/weight"].dtype == np.float16
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)  # q, k, v fused
    assert int(variables["encoder/num_heads"]) == int(variables["decoder/num_heads"]) == 6


def test_converted_checkpoint_loads_with_whisper_and_keeps_its_alignment_heads(
    converted: Path, tiny_en_heads: dict[str, torch.Tensor]
) -> None:
    plain = whisper.load_model(str(converted), device="cpu")
    assert plain.dims == TINY_EN
    assert plain.decoder.token_embedding.weight.dtype == torch.float32
    assert plain.encoder.blocks[0].attn.key.bias is None
    # load_model on a path keeps whisper's default heads (last half of the layers): the reason load_whisper exists.
    assert torch.equal(_heads(plain), tiny_en_heads["default"])

    model = load_whisper(converted)
    assert model.dims == TINY_EN
    heads = model.alignment_heads
    assert heads.is_sparse and "alignment_heads" not in model.state_dict()  # as Whisper.set_alignment_heads leaves it
    assert heads.to_dense().sum() == 8
    assert torch.equal(heads.to_dense(), tiny_en_heads["published"])  # config.json's are openai's own
    for name, value in plain.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name


def test_load_whisper_gives_a_named_official_file_its_published_heads(
    converted: Path, tiny_en_heads: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    checkpoint = torch.load(converted, weights_only=True)
    del checkpoint["alignment_heads"]  # as in whisper's own downloads
    torch.save(checkpoint, tmp_path / "tiny.en.pt")
    assert torch.equal(_heads(load_whisper(tmp_path / "tiny.en.pt")), tiny_en_heads["published"])
    os.link(tmp_path / "tiny.en.pt", tmp_path / "base.pt")  # named base, sized tiny: not base, so whisper's default
    assert torch.equal(_heads(load_whisper(tmp_path / "base.pt")), tiny_en_heads["default"])


def test_greedy_tokens_and_encoder_equal_ctranslate2s(converted: Path, ct2_dir: Path) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed")
    if not UTTERANCE.is_file():
        pytest.skip(f"needs the team's development speech {UTTERANCE} (../shared is absent here)")
    model = load_whisper(converted)
    mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(whisper.load_audio(str(UTTERANCE))))  # one 30 s window
    options = whisper.DecodingOptions(language="en", without_timestamps=False, fp16=False)
    # Each side encodes once and decodes from its own encoder output (both accept encoded features).
    with torch.no_grad():
        encoded = model.embed_audio(mel[None])
        ours = whisper.decode(model, encoded[0], options)

    reference = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    their_encoded = reference.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy())))
    tokenizer = whisper.tokenizer.get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    theirs = reference.generate(their_encoded, [list(tokenizer.sot_sequence)], beam_size=1)[0]  # same prompt: <|sot|>

    assert ours.tokens == theirs.sequences_ids[0]
    assert "apostle of the middle classes" in ours.text.lower()
    assert _relative_error(encoded.numpy(), np.array(their_encoded)) < ENCODER_RELATIVE_ERROR


# -- no real weights: the tiny random whisper through CTranslate2's own converter and back --


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the tiny random whisper checkpoint, the same model as CTranslate2's converter writes it, float32)."""
    return _ctranslate2_tiny(tmp_path_factory.mktemp("tiny-ct2"))


def _ctranslate2_tiny(tmp_path: Path, quantization: str | None = None) -> tuple[Path, Path]:
    """(the tiny random whisper checkpoint, the same model as CTranslate2's converter writes it)."""
    pytest.importorskip("ctranslate2", reason="CTranslate2 is not installed")
    transformers = pytest.importorskip("transformers", reason="CTranslate2's whisper converter reads transformers'")
    from ctranslate2.converters.transformers import WhisperLoader

    source = make_tiny_whisper(tmp_path / "tiny-random.pt")
    checkpoint = torch.load(source, weights_only=True)
    dims = ModelDimensions(**checkpoint["dims"])
    config = transformers.WhisperConfig(
        vocab_size=dims.n_vocab,
        num_mel_bins=dims.n_mels,
        d_model=dims.n_audio_state,
        encoder_layers=dims.n_audio_layer,
        encoder_attention_heads=dims.n_audio_head,
        encoder_ffn_dim=4 * dims.n_audio_state,
        decoder_layers=dims.n_text_layer,
        decoder_attention_heads=dims.n_text_head,
        decoder_ffn_dim=4 * dims.n_text_state,
        max_source_positions=dims.n_audio_ctx,
        max_target_positions=dims.n_text_ctx,
    )
    hf_model = transformers.WhisperForConditionalGeneration(config)
    state = {_transformers_name(name): value for name, value in checkpoint["model_state_dict"].items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    assert missing == ["proj_out.weight"] and not unexpected  # proj_out is tied to the token embedding

    spec = WhisperLoader().get_model_spec(hf_model)
    tokenizer = whisper.tokenizer.get_tokenizer(multilingual=True, num_languages=99)
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], [tokenizer.eot]
    spec.config.lang_ids = list(tokenizer.all_language_tokens)
    spec.config.alignment_heads = [[1, 0], [1, 1]]
    # CTranslate2 finds <|startoftranscript|> and the rest by name; the text tokens only need to be distinct.
    names = {token: name for name, token in tokenizer.special_tokens.items()}
    spec.register_vocabulary([names.get(token, f"<text {token}>") for token in range(dims.n_vocab)])
    spec.validate()
    spec.optimize(quantization=quantization)
    output = tmp_path / "tiny-random-ct2"
    output.mkdir()
    spec.save(str(output))
    return source, output


def _transformers_name(name: str) -> str:
    """openai-whisper's parameter name as transformers' WhisperForConditionalGeneration names it."""
    for old, new in (
        ("encoder.positional_embedding", "encoder.embed_positions.weight"),
        ("decoder.positional_embedding", "decoder.embed_positions.weight"),
        ("decoder.token_embedding", "decoder.embed_tokens"),
        ("encoder.ln_post.", "encoder.layer_norm."),
        ("decoder.ln.", "decoder.layer_norm."),
        (".blocks.", ".layers."),
        (".cross_attn_ln.", ".encoder_attn_layer_norm."),
        (".cross_attn.", ".encoder_attn."),
        (".attn_ln.", ".self_attn_layer_norm."),
        (".attn.", ".self_attn."),
        (".query.", ".q_proj."),
        (".key.", ".k_proj."),
        (".value.", ".v_proj."),
        (".out.", ".out_proj."),
        (".mlp_ln.", ".final_layer_norm."),
        (".mlp.0.", ".fc1."),
        (".mlp.2.", ".fc2."),
    ):
        name = name.replace(old, new)
    return f"model.{name}"


def test_round_trip_through_ctranslate2s_converter_gives_the_same_weights(
    tiny_ct2: tuple[Path, Path], tmp_path: Path
) -> None:
    source, ct2_model = tiny_ct2
    back = torch.load(convert_ctranslate2_to_whisper(ct2_model, tmp_path / "back.pt"), weights_only=True)
    original = torch.load(source, weights_only=True)
    assert back["dims"] == original["dims"]
    assert back["model_state_dict"].keys() == original["model_state_dict"].keys()
    for name, value in original["model_state_dict"].items():
        assert torch.equal(back["model_state_dict"][name], value), name
    assert back["alignment_heads"] == [[1, 0], [1, 1]]
    model = load_whisper(tmp_path / "back.pt")
    assert _heads(model).nonzero().tolist() == [[1, 0], [1, 1]]

    # CTranslate2's runtime reads the same weights as whisper does: guards the renaming above, not only ours.
    import ctranslate2

    mel = whisper.log_mel_spectrogram(torch.sin(torch.arange(whisper.audio.N_SAMPLES) * 0.05) * 0.3)
    with torch.no_grad():
        encoded = model.embed_audio(mel[None]).numpy()
    runtime = ctranslate2.models.Whisper(str(ct2_model), device="cpu", compute_type="float32")
    theirs = np.array(runtime.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None].numpy()))))
    assert _relative_error(encoded, theirs) < TINY_ENCODER_RELATIVE_ERROR


def test_int8_ctranslate2_weights_are_dequantized(tmp_path: Path) -> None:
    source, ct2_model = _ctranslate2_tiny(tmp_path, quantization="int8")
    assert read_ctranslate2_model(ct2_model / MODEL_BIN)["encoder/conv2/weight"].dtype == np.int8
    back = torch.load(convert_ctranslate2_to_whisper(ct2_model, tmp_path / "back.pt"), weights_only=True)
    for name, value in torch.load(source, weights_only=True)["model_state_dict"].items():
        # int8 rounds each row to 255 levels of its largest magnitude: at most half a level off.
        rows = value.reshape(value.shape[0], -1) if value.ndim > 1 else value[None]
        step = rows.abs().amax(dim=1, keepdim=True) / 127
        error = (back["model_state_dict"][name].reshape(rows.shape) - rows).abs()
        assert (error <= step / 2 + 1e-6).all(), name


def test_load_whisper_keeps_whispers_default_heads_without_stored_or_published_ones(tmp_path: Path) -> None:
    source = make_tiny_whisper(tmp_path / "tiny-random.pt")
    model = load_whisper(source)
    assert torch.equal(_heads(model), _heads(Whisper(model.dims)))
    os.link(source, tmp_path / "small.pt")  # whisper's file name for small, but not small's dimensions
    assert torch.equal(_heads(load_whisper(tmp_path / "small.pt")), _heads(model))


# -- errors --


def test_a_file_that_is_not_a_ctranslate2_model_is_refused_in_one_line(tmp_path: Path) -> None:
    cases = {
        "text": (b"This is not a CTranslate2 model.\n" * 10, "is not a CTranslate2 model"),
        "empty": (b"", "is not a CTranslate2 model"),
        "future": (struct.pack("<I", 7) + b"\0" * 64, "unsupported CTranslate2 binary version 7"),
        "pickle": (b"\x80\x04\x95" + b"\0" * 64, "is not a CTranslate2 model"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / MODEL_BIN).write_bytes(content)
        with pytest.raises(ValueError, match=message) as error:
            read_ctranslate2_model(tmp_path / name / MODEL_BIN)
        assert "\n" not in str(error.value), name
        with pytest.raises(ValueError, match=message):
            convert_ctranslate2_to_whisper(tmp_path / name, tmp_path / f"{name}.pt")
    with pytest.raises(FileNotFoundError, match="no CTranslate2 model file"):
        convert_ctranslate2_to_whisper(tmp_path / "nowhere", tmp_path / "nowhere.pt")


def test_a_truncated_or_extended_model_bin_is_refused(tiny_ct2: tuple[Path, Path], tmp_path: Path) -> None:
    _, ct2_model = tiny_ct2
    content = (ct2_model / MODEL_BIN).read_bytes()
    for name, damaged in (("truncated", content[: len(content) // 2]), ("extended", content + b"\0" * 8)):
        (tmp_path / name).write_bytes(damaged)
        with pytest.raises(ValueError, match="is not a CTranslate2 model"):
            read_ctranslate2_model(tmp_path / name)
