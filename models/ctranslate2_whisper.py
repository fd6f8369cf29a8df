"""CTranslate2 whisper models (as faster-whisper loads them) converted to openai-whisper checkpoints.

The only real speech weights this project can install offline are whisper tiny.en in CTranslate2's format
(``model.bin``, ``config.json``, ...). bwc transcribes with openai-whisper, so this module reads ``model.bin``
directly (no ctranslate2 import needed) and writes the ``{"dims", "model_state_dict"}`` checkpoint that
``whisper.load_model(path)`` reads, plus the ``alignment_heads`` from ``config.json``, which :func:`load_whisper`
restores (``whisper.load_model`` does that only for its named downloads, never for a file path).

``model.bin`` layout, from CTranslate2's writer (``python/ctranslate2/specs/model_spec.py``,
``ModelSpec._serialize``) and reader (``src/models/model.cc``, ``Model::load``); little-endian, no padding::

    uint32 binary_version                        # 1..6; 6 is current
    string spec_name, uint32 spec_revision       # version >= 2, e.g. "WhisperSpec", 3
    uint32 num_variables
    num_variables x:
        string name, uint8 rank, uint32 shape[rank]
        version >= 4: uint8 dtype_id, uint32 num_bytes      # dtype ids: see DTYPES
        version <  4: uint8 item_size, uint32 num_items     # 4 float32, 2 int16, 1 int8
        bytes data[num_bytes]                               # C order
    version >= 3: uint32 num_aliases, num_aliases x (string alias, string variable_name)

    string = uint16 length (including the trailing NUL), then length bytes

Example
-------
>>> checkpoint = convert_ctranslate2_to_whisper(Path("tiny.en-ct2"), Path("tiny.en.pt"))    # doctest: +SKIP
>>> model = load_whisper(checkpoint)                                                       # doctest: +SKIP
>>> int(model.alignment_heads.to_dense().sum())                                            # doctest: +SKIP
8
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import whisper
from whisper.model import ModelDimensions, Whisper, sinusoids

MODEL_BIN = "model.bin"
CONFIG_JSON = "config.json"
SUPPORTED_BINARY_VERSIONS = range(1, 7)  # CTranslate2's CURRENT_BINARY_VERSION is 6 (4.x)
# A first uint32 this large is no version CTranslate2 ever wrote: more likely text or another format entirely.
MAX_PLAUSIBLE_VERSION = 255
WHISPER_SPEC = "WhisperSpec"
MAX_WHISPER_SPEC_REVISION = 3  # ctranslate2 4.x writes revision 3; later ones may rename variables
# CTranslate2's DataType enum (include/ctranslate2/types.h) by id. bfloat16 has no numpy dtype: read as uint16 bits.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}
BFLOAT16_ID = 5
LEGACY_DTYPES = {4: np.float32, 2: np.int16, 1: np.int8}  # binary versions < 4 stored only the item size
GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU, whisper's (exact, not tanh) GELU
WHISPER_HEAD_WIDTH = 64  # every openai whisper size has n_state / n_head == 64
# The stored encoder positional embedding is whisper's sinusoids rounded to float16 (|values| <= 1, half an ulp
# below 1 is 2**-12 = 2.4e-4); a learned or shuffled embedding misses by far more.
SINUSOID_ATOL = 1e-3


def read_ctranslate2_model(model_bin: Path) -> dict[str, np.ndarray]:
    """Read every variable of a CTranslate2 ``model.bin``, aliases resolved to the same array.

    Parameters
    ----------
    model_bin : Path
        A CTranslate2 ``model.bin`` (any model type; binary versions 1 to 6).

    Returns
    -------
    dict[str, np.ndarray]
        Variable name (e.g. ``"encoder/conv1/weight"``) to array in its stored dtype; scalars (``num_heads``, flags)
        as 0-d arrays, bfloat16 upcast to float32. An alias maps to the very array of the variable it names.

    Raises
    ------
    ValueError
        When the file is not a CTranslate2 model, is truncated, or has an unsupported binary version.

    Example
    -------
    >>> variables = read_ctranslate2_model(Path("tiny.en-ct2/model.bin"))      # doctest: +SKIP
    >>> variables["encoder/conv1/weight"].shape                                # doctest: +SKIP
    (384, 80, 3)
    """
    return _read_model(Path(model_bin))[2]


def convert_ctranslate2_to_whisper(model_dir: Path, out_file: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write an openai-whisper checkpoint of a CTranslate2 whisper model directory.

    Parameters
    ----------
    model_dir : Path
        A CTranslate2 whisper directory (``model.bin``; ``config.json`` for the alignment heads, if present).
    out_file : Path
        Where to write the checkpoint (parent directories are created).
    dtype : torch.dtype
        Floating-point dtype of the stored weights. float32 by default: the float16 originals upcast exactly.

    Returns
    -------
    Path
        ``out_file``: ``{"dims": ModelDimensions.__dict__, "model_state_dict": ..., "alignment_heads": [[layer,
        head], ...]}``, readable by ``whisper.load_model(path)`` and, alignment heads included, by
        :func:`load_whisper`.

    Raises
    ------
    ValueError
        When ``model.bin`` is not a CTranslate2 whisper model, or holds something whisper cannot represent (a key
        bias, an untied output projection, a non-sinusoidal encoder position embedding).

    Example
    -------
    >>> convert_ctranslate2_to_whisper(Path("tiny.en-ct2"), Path("whisper/tiny.en-ct2.pt"))   # doctest: +SKIP
    PosixPath('whisper/tiny.en-ct2.pt')
    """
    model_dir, out_file = Path(model_dir), Path(out_file)
    spec, revision, variables = _read_model(model_dir / MODEL_BIN)
    if spec != WHISPER_SPEC:
        raise ValueError(f"{model_dir / MODEL_BIN} is a CTranslate2 {spec or 'unnamed'} model, not {WHISPER_SPEC}")
    if revision > MAX_WHISPER_SPEC_REVISION:
        raise ValueError(f"{model_dir / MODEL_BIN}: {WHISPER_SPEC} revision {revision} is newer than this reader")
    dims, state_dict = _whisper_state_dict(variables, dtype)
    checkpoint: dict = {"dims": dims.__dict__, "model_state_dict": state_dict}
    config_path = model_dir / CONFIG_JSON
    if config_path.is_file():
        heads = json.loads(config_path.read_text(encoding="utf-8")).get("alignment_heads")
        if heads:
            _alignment_mask(heads, dims)  # fail here, not when the checkpoint is loaded
            checkpoint["alignment_heads"] = [[int(layer), int(head)] for layer, head in heads]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out_file)
    return out_file


def load_whisper(checkpoint: Path, device: str = "cpu") -> Whisper:
    """Load an openai-whisper checkpoint file with its alignment heads, which ``whisper.load_model(path)`` drops.

    The heads come from the checkpoint's own ``alignment_heads`` (as :func:`convert_ctranslate2_to_whisper` writes
    them); else, for a file named as whisper's downloader names an official model (``small.pt``,
    ``large-v3.pt``), whisper's published heads for that model; else whisper's default (the last half of the
    decoder layers), as for the project's random tiny checkpoints.

    Parameters
    ----------
    checkpoint : Path
        A ``{"dims", "model_state_dict"[, "alignment_heads"]}`` file.
    device : str
        Torch device for the model.

    Returns
    -------
    whisper.Whisper
        The model, on ``device``, in evaluation mode as ``whisper.load_model`` leaves it.

    Example
    -------
    >>> model = load_whisper(Path("/opt/bwc-models/whisper/small.pt"))       # doctest: +SKIP
    >>> model.alignment_heads.to_dense().nonzero().tolist()[:2]              # doctest: +SKIP
    [[5, 3], [5, 9]]
    """
    stored = torch.load(checkpoint, map_location=device, weights_only=True)
    dims = ModelDimensions(**stored["dims"])
    model = Whisper(dims)
    model.load_state_dict(stored["model_state_dict"])
    heads = stored.get("alignment_heads")
    mask = _alignment_mask(heads, dims) if heads else _official_alignment_mask(Path(checkpoint).name, dims)
    if mask is not None:
        # As Whisper.set_alignment_heads registers it: sparse, and not part of the state dict.
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device)


# -- model.bin --


def _read_model(model_bin: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """(spec name, spec revision, variables) of a ``model.bin``; see the module docstring for the layout."""
    if not model_bin.is_file():
        raise FileNotFoundError(f"no CTranslate2 model file at {model_bin}")
    size = model_bin.stat().st_size
    with open(model_bin, "rb") as file:
        try:
            version = _read(file, "<I")
            if version not in SUPPORTED_BINARY_VERSIONS:
                if 0 < version <= MAX_PLAUSIBLE_VERSION:
                    raise ValueError(
                        f"{model_bin}: unsupported CTranslate2 binary version {version} (this reader supports "
                        f"{SUPPORTED_BINARY_VERSIONS.start}-{SUPPORTED_BINARY_VERSIONS.stop - 1})"
                    )
                raise ValueError(f"{model_bin} is not a CTranslate2 model (no binary version in its first bytes)")
            spec, revision = (_read_string(file), _read(file, "<I")) if version >= 2 else ("", 1)
            variables: dict[str, np.ndarray] = {}
            for _ in range(_read(file, "<I")):
                name = _read_string(file)
                shape = tuple(_read(file, "<I") for _ in range(_read(file, "<B")))
                type_id = _read(file, "<B")
                count = _read(file, "<I")
                dtype = DTYPES.get(type_id) if version >= 4 else LEGACY_DTYPES.get(type_id)
                if dtype is None:
                    raise ValueError(f"{model_bin}: variable {name!r} has an unknown dtype id {type_id}")
                num_bytes = count if version >= 4 else count * type_id
                # Checked before allocating: garbage would otherwise ask for any amount of memory.
                if math.prod(shape) * np.dtype(dtype).itemsize != num_bytes or file.tell() + num_bytes > size:
                    raise ValueError(f"{model_bin} is not a CTranslate2 model (variable {name!r} does not fit)")
                array = np.empty(shape, dtype=dtype)
                file.readinto(memoryview(array).cast("B"))  # straight into the array: no second copy
                if version >= 4 and type_id == BFLOAT16_ID:
                    array = (array.astype(np.uint32) << 16).view(np.float32)  # bfloat16 is float32's top half
                variables[name] = array
            if version >= 3:
                for _ in range(_read(file, "<I")):
                    alias, target = _read_string(file), _read_string(file)
                    # As Model::load does: an alias to a missing variable is skipped, and the quantization scale
                    # of the target, if any, is aliased too.
                    for suffix in ("", "_scale"):
                        if target + suffix in variables:
                            variables[alias + suffix] = variables[target + suffix]
        except (struct.error, UnicodeDecodeError) as error:
            raise ValueError(f"{model_bin} is not a CTranslate2 model (truncated or garbled: {error})") from None
        if file.tell() != size:
            raise ValueError(f"{model_bin} is not a CTranslate2 model ({size - file.tell()} bytes after its end)")
    return spec, revision, variables


def _read(file: BinaryIO, fmt: str) -> int:
    """One little-endian integer; a short read raises struct.error, which the caller turns into ValueError."""
    return struct.unpack(fmt, file.read(struct.calcsize(fmt)))[0]


def _read_string(file: BinaryIO) -> str:
    """A uint16-length-prefixed, NUL-terminated UTF-8 string (the length counts the NUL)."""
    length = _read(file, "<H")
    raw = file.read(length)
    if len(raw) != length or not raw.endswith(b"\0"):
        raise struct.error(f"bad string of length {length}")
    return raw[:-1].decode("utf-8")


# -- CTranslate2 whisper variables -> openai-whisper state dict --


def _whisper_state_dict(
    variables: dict[str, np.ndarray], dtype: torch.dtype
) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """ModelDimensions inferred from the shapes, and the state dict in whisper's names."""

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise ValueError(f"CTranslate2 whisper model has no variable {name!r} (not a standard whisper?)")
        value = variables[name]
        if value.dtype in (np.int8, np.int16) and value.ndim > 0:
            # Quantized weight: CTranslate2's writer stores round(w * scale), int8 with scale = 127 / amax per output
            # row (a conv's (in, tap) flattened into the row), int16 with one scale for the whole tensor.
            scale = variables[name + "_scale"].astype(np.float32)
            return value.astype(np.float32) / scale.reshape(scale.shape + (1,) * (value.ndim - scale.ndim))
        return value.astype(np.float32)

    for flag, expected in (("decoder/activation", GELU), ("decoder/pre_norm", 1), ("decoder/scale_embeddings", 0)):
        if flag in variables and int(variables[flag]) != expected:
            raise ValueError(f"CTranslate2 model has {flag}={int(variables[flag])}: not whisper's ({expected})")

    def count_layers(stack: str) -> int:
        prefix, suffix = f"{stack}/layer_", "/ffn/linear_0/weight"
        return sum(1 for name in variables if name.startswith(prefix) and name.endswith(suffix))

    def heads(stack: str, width: int) -> int:
        # WhisperSpec stores num_heads (int16) per stack; whisper's own rule otherwise.
        stored = variables.get(f"{stack}/num_heads")
        return int(stored) if stored is not None else width // WHISPER_HEAD_WIDTH

    conv1 = get("encoder/conv1/weight")
    embedding = get("decoder/embeddings/weight")
    audio_ctx, audio_state = variables["encoder/position_encodings/encodings"].shape
    dims = ModelDimensions(
        n_mels=conv1.shape[1],
        n_audio_ctx=audio_ctx,
        n_audio_state=audio_state,
        n_audio_head=heads("encoder", audio_state),
        n_audio_layer=count_layers("encoder"),
        n_vocab=embedding.shape[0],
        n_text_ctx=variables["decoder/position_encodings/encodings"].shape[0],
        n_text_state=embedding.shape[1],
        n_text_head=heads("decoder", embedding.shape[1]),
        n_text_layer=count_layers("decoder"),
    )

    state: dict[str, np.ndarray] = {}

    def linear(target: str, source: str) -> None:
        state[f"{target}.weight"] = get(f"{source}/weight")
        state[f"{target}.bias"] = get(f"{source}/bias")

    def layer_norm(target: str, source: str) -> None:
        state[f"{target}.weight"] = get(f"{source}/gamma")
        state[f"{target}.bias"] = get(f"{source}/beta")

    def split_kv(target: str, source: str, fused: int) -> None:
        """Fused [key; value] (cross-attention) or [query; key; value] rows, split into whisper's linears."""
        weights = np.split(get(f"{source}/weight"), fused)
        biases = np.split(get(f"{source}/bias"), fused)
        names = ("query", "key", "value")[3 - fused :]
        for name, weight, bias in zip(names, weights, biases, strict=True):
            state[f"{target}.{name}.weight"] = weight
            if name == "key":
                # whisper's key projection has no bias; CTranslate2's fuse_linear fills zeros in its place.
                if np.any(bias != 0):
                    raise ValueError(f"CTranslate2 {source} has a non-zero key bias, which whisper cannot hold")
            else:
                state[f"{target}.{name}.bias"] = bias

    def block(target: str, source: str, cross: bool) -> None:
        split_kv(f"{target}.attn", f"{source}/self_attention/linear_0", fused=3)
        linear(f"{target}.attn.out", f"{source}/self_attention/linear_1")
        layer_norm(f"{target}.attn_ln", f"{source}/self_attention/layer_norm")
        if cross:
            linear(f"{target}.cross_attn.query", f"{source}/attention/linear_0")
            split_kv(f"{target}.cross_attn", f"{source}/attention/linear_1", fused=2)
            linear(f"{target}.cross_attn.out", f"{source}/attention/linear_2")
            layer_norm(f"{target}.cross_attn_ln", f"{source}/attention/layer_norm")
        linear(f"{target}.mlp.0", f"{source}/ffn/linear_0")
        linear(f"{target}.mlp.2", f"{source}/ffn/linear_1")
        layer_norm(f"{target}.mlp_ln", f"{source}/ffn/layer_norm")

    # The encoder's position embedding is fixed sinusoids in whisper (a buffer it computes itself), stored by
    # CTranslate2 as a tensor: check it is that, and keep whisper's exact values rather than the float16 copy.
    encodings = get("encoder/position_encodings/encodings")
    positional = sinusoids(dims.n_audio_ctx, dims.n_audio_state).numpy()
    if not np.allclose(encodings, positional, rtol=0.0, atol=SINUSOID_ATOL):
        error = float(np.abs(encodings - positional).max())
        raise ValueError(f"CTranslate2 encoder position encodings are not whisper's sinusoids (max error {error:.3g})")
    state["encoder.positional_embedding"] = positional
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    for index in range(dims.n_audio_layer):
        block(f"encoder.blocks.{index}", f"encoder/layer_{index}", cross=False)
    layer_norm("encoder.ln_post", "encoder/layer_norm")

    state["decoder.token_embedding.weight"] = embedding
    state["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for index in range(dims.n_text_layer):
        block(f"decoder.blocks.{index}", f"decoder/layer_{index}", cross=True)
    layer_norm("decoder.ln", "decoder/layer_norm")
    # whisper's logits are x @ token_embedding.weight.T: there is no projection to store, only to check.
    projection = variables.get("decoder/projection/weight")
    untied = projection is not None and projection is not variables["decoder/embeddings/weight"]
    if (untied and not np.array_equal(get("decoder/projection/weight"), embedding)) or np.any(
        variables.get("decoder/projection/bias", 0) != 0
    ):
        raise ValueError("CTranslate2 decoder output projection is not the token embedding, which whisper requires")

    return dims, {name: torch.from_numpy(value).to(dtype) for name, value in state.items()}


# -- alignment heads --


def _alignment_mask(heads: list[list[int]], dims: ModelDimensions) -> torch.Tensor:
    """The boolean (n_text_layer, n_text_head) mask of [layer, head] pairs."""
    mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
    for layer, head in heads:
        if not (0 <= layer < dims.n_text_layer and 0 <= head < dims.n_text_head):
            raise ValueError(
                f"alignment head [{layer}, {head}] outside the decoder's {dims.n_text_layer} x {dims.n_text_head}"
            )
        mask[layer, head] = True
    return mask


def _official_alignment_mask(file_name: str, dims: ModelDimensions) -> torch.Tensor | None:
    """whisper's published heads when ``file_name`` is how its downloader names a model (``large-v3.pt``).

    None for any other file, or when the dimensions do not fit the named model (so it is not that model).
    Aliases ("large", "turbo") share a file with a full name and have the same heads.
    """
    names = {os.path.basename(url): name for name, url in whisper._MODELS.items()}
    if file_name not in names:
        return None
    dump = whisper._ALIGNMENT_HEADS[names[file_name]]
    array = np.frombuffer(gzip.decompress(base64.b85decode(dump)), dtype=bool)  # as Whisper.set_alignment_heads
    if array.size != dims.n_text_layer * dims.n_text_head:
        return None
    return torch.from_numpy(array.copy()).reshape(dims.n_text_layer, dims.n_text_head)
