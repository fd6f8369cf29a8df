"""pyannote's SincNet front end with its first layer computed once over a batch of overlapping windows.

pyannote slides its segmentation model over audio in 5 s windows every 0.5 or 1 s, so every sample goes 5 to 10 times
through the first layer: 80 sinc band-pass filters of 251 taps at a stride of 10, rectified and max-pooled, the
model's largest convolution (on 2 CPU cores about three quarters of its convolution time and 30% of a forward pass,
measured). That layer is linear and its stride divides the hop, so filtering the span a batch covers once and reading
each window from it gives the same numbers. The per-window waveform normalisation in front of it (an
``InstanceNorm1d``) is an affine map, applied after the filtering:

    conv(γ (x − μ) / σ + β) = (γ / σ) conv(x) + (β − γ μ / σ) Σ taps

with μ and σ each window's own mean and standard deviation, and the max-pooling of the rectified output commutes with
it (see :meth:`SharedFirstConvSincNet._first_block`). Windows reach the model as a strided view of the recording
(pyannote's ``Inference`` cuts them with ``Tensor.unfold``), which is how overlapping windows are recognised without
comparing samples; any other input (a single or zero-padded last window, a copy made on the way to a GPU) takes the
original path. ``tests/test_sincnet.py`` checks that both give the same output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asteroid_filterbanks.enc_dec import Encoder, Filterbank
from pyannote.audio.models.blocks.sincnet import SincNet
from torch import nn


class SharedFirstConvSincNet(SincNet):
    """pyannote's ``SincNet`` that filters overlapping windows' shared samples once; same parameters, same output.

    Installed by :func:`share_first_convolution`, which changes the class of the model's own ``SincNet``: the same
    parameters under the same names (checkpoints load and save as before), only ``forward`` differs.

    Example
    -------
    >>> model = Model.from_pretrained(Path("segmentation/pytorch_model.bin"))  # doctest: +SKIP
    >>> share_first_convolution(model)                                          # doctest: +SKIP
    True
    """

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        hop = _window_hop(waveforms)
        if hop is None or hop % self.conv1d[0].stride != 0 or self.wav_norm1d.track_running_stats:
            return super().forward(waveforms)
        first = self._first_block(waveforms, hop)
        if first is None:
            return super().forward(waveforms)
        outputs = F.leaky_relu(self.norm1d[0](first))
        for conv1d, pool1d, norm1d in zip(self.conv1d[1:], self.pool1d[1:], self.norm1d[1:], strict=True):
            outputs = F.leaky_relu(norm1d(pool1d(conv1d(outputs))))
        return outputs

    def _first_block(self, waveforms: torch.Tensor, hop: int) -> torch.Tensor | None:
        """Every window's ``pool(|conv(norm(x))|)``, from one convolution of the span the windows cover; None when
        the span holds a non-finite sample (pyannote's own path then keeps it to the windows that hold it).

        Per window and filter, ``conv(norm(x)) = a F + c`` with ``F`` the span's filtered signal and ``a``, ``c``
        constant along time; so over a pooling window its extremes are ``a max F + c`` and ``a min F + c`` (which
        is which depends on the sign of ``a``), and the pooled absolute value is the larger of their absolute
        values. The running maximum and minimum of ``F`` are computed once on the span; each window reads them at
        its own offset, every ``stride`` frames: nothing of the size of the first layer's output is made per window.
        """
        encoder, pool, norm = self.conv1d[0], self.pool1d[0], self.wav_norm1d
        batch, _, window = waveforms.shape
        span = waveforms.as_strided((1, 1, (batch - 1) * hop + window), (0, 0, 1))
        # The span's mean taken out first keeps the cancellation between a F and c small for audio with an offset.
        offset = span.mean()
        if not torch.isfinite(offset):
            return None
        filters = encoder.get_filters()  # (filters, 1, taps)
        filtered = F.conv1d(span - offset, filters, stride=encoder.stride)[0]  # (filters, span frames)
        highest = F.max_pool1d(filtered[None], pool.kernel_size, stride=1)[0]
        lowest = -F.max_pool1d(-filtered[None], pool.kernel_size, stride=1)[0]
        frames = (window - filters.shape[-1]) // encoder.stride + 1  # first-layer frames per window
        pooled = (frames - pool.kernel_size) // pool.stride + 1
        shift = hop // encoder.stride  # frames between consecutive windows

        def per_window(running: torch.Tensor) -> torch.Tensor:  # (batch, filters, pooled): window w from w * shift
            along = running.stride(1)
            return running.as_strided(
                (batch, running.shape[0], pooled), (shift * along, running.stride(0), pool.stride * along)
            )

        scale = norm.weight / torch.sqrt(waveforms.var(dim=-1, unbiased=False) + norm.eps)  # a: (batch, 1)
        # c: (batch, filters)
        constant = (norm.bias - scale * (waveforms.mean(dim=-1) - offset)) * filters.sum(dim=(1, 2))
        top = torch.addcmul(constant[:, :, None], per_window(highest), scale[:, :, None])
        bottom = torch.addcmul(constant[:, :, None], per_window(lowest), scale[:, :, None])
        return torch.maximum(top.abs_(), bottom.abs_())


def _window_hop(waveforms: torch.Tensor) -> int | None:
    """The hop (samples) between consecutive windows when ``waveforms`` (batch, 1, samples) is a strided view of
    one recording's overlapping windows, else None."""
    if waveforms.ndim != 3 or waveforms.shape[0] < 2 or waveforms.shape[1] != 1 or waveforms.stride(2) != 1:
        return None
    batch, _, window = waveforms.shape
    hop = waveforms.stride(0)
    if not 0 < hop < window:
        return None
    available = waveforms.untyped_storage().nbytes() // waveforms.element_size() - waveforms.storage_offset()
    return hop if available >= (batch - 1) * hop + window else None


def share_first_convolution(model: Any) -> bool:
    """Make a pyannote segmentation model's (PyanNet's) ``SincNet`` a :class:`SharedFirstConvSincNet`; whether it
    could. Models whose front end is not pyannote's own ``SincNet`` (a subclass, another block), or whose first layer
    this rewrite does not cover (padding, a pseudo-inverse, a non-identity analysis step, other pooling), are left
    as they are.
    """
    sincnet = getattr(model, "sincnet", None)
    if isinstance(sincnet, SharedFirstConvSincNet):
        return True
    if type(sincnet) is not SincNet or not _is_plain_first_layer(sincnet):
        return False
    sincnet.__class__ = SharedFirstConvSincNet
    return True


def _is_plain_first_layer(sincnet: SincNet) -> bool:
    encoder = sincnet.conv1d[0]
    if not isinstance(encoder, Encoder) or encoder.is_pinv or encoder.padding != 0 or not encoder.as_conv1d:
        return False
    bank = type(encoder.filterbank)
    norm, pool = sincnet.wav_norm1d, sincnet.pool1d[0]
    return (
        isinstance(pool, nn.MaxPool1d)
        and isinstance(pool.kernel_size, int)
        and isinstance(pool.stride, int)
        and pool.padding == 0
        and pool.dilation == 1
        and not pool.ceil_mode
        and not pool.return_indices
        and bank.pre_analysis is Filterbank.pre_analysis
        and bank.post_analysis is Filterbank.post_analysis
        and isinstance(norm, nn.InstanceNorm1d)
        and norm.affine
        and norm.num_features == 1
    )
