"""Log-mel front end: waveform batch -> (B, 1, frames, n_mels) log-power mel spectrogram, in torch."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MEL_SCALES = ("slaney", "htk")


def hz_to_mel(f, scale: str = "slaney"):
    """Hertz -> mel: Slaney's (linear below 1 kHz, logarithmic above; librosa's default) or HTK's
    ``2595 · log10(1 + f / 700)`` (torchaudio's default)."""
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m, scale: str = "slaney"):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, *,
                   scale: str = "slaney", norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filterbank, (n_fft // 2 + 1, n_mels) float32.

    The defaults equal ``librosa.filters.mel(sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T``
    (msclap, LAION's unfused models); ``scale="htk", norm=None`` equals torchaudio's
    ``MelSpectrogram`` bank (LAION's fusion models).
    """
    if scale not in MEL_SCALES or norm not in ("slaney", None):
        raise ValueError(f"mel bank: scale must be one of {MEL_SCALES} and norm 'slaney' or None, got {scale!r}, {norm!r}")
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2), scale)
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    return weights.T.astype(np.float32)


class LogMel(nn.Module):
    """STFT (periodic Hann, centred, reflect padding) -> power -> ``@ mel_basis`` -> 10·log10(max(x, 1e-10)).

    Always computed in float32, whatever the module's dtype or an enclosing autocast: log-power in
    bf16 loses whole decibels. The window and the mel bank are derived from the arguments at
    construction (non-persistent buffers, as timm does), so checkpoints need not carry them.
    ``mel_sample_rate`` is the rate the bank is designed for (msclap's HTSAT applies a 32 kHz /
    50–14000 Hz bank to 44.1 kHz audio); ``mel_scale`` / ``mel_norm`` choose the bank (see
    :func:`mel_filterbank`).
    """

    def __init__(self, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64, mel_sample_rate: int = 44100,
                 fmin: float = 50.0, fmax: float = 14000.0, mel_scale: str = "slaney",
                 mel_norm: str | None = "slaney") -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        bank = mel_filterbank(mel_sample_rate, n_fft, n_mels, fmin, fmax, scale=mel_scale, norm=mel_norm)
        self.register_buffer("mel_basis", torch.from_numpy(bank), persistent=False)

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, T) waveform -> (B, 1, T // hop + 1, n_mels) float32 log-mel in dB."""
        with torch.autocast(waveform.device.type, enabled=False):
            waveform = waveform.float()
            spec = torch.stft(waveform, self.n_fft, self.hop_length, window=self.window.float(),
                              center=True, pad_mode="reflect", return_complex=True)
            power = spec.real.square() + spec.imag.square()
            # Finite even for input so loud that float32 overflows (the decoder refuses such files;
            # arrays may still come this way): 1e30 is 300 dB, far above any real signal.
            power = torch.nan_to_num(power, nan=1e30, posinf=1e30).clamp_max(1e30)
            mel = power.transpose(1, 2) @ self.mel_basis.float()
            return (10.0 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1)
