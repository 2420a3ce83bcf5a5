"""HTS-AT audio encoder (Chen et al., ICASSP 2022) as msclap 2023 runs it at inference.

A Swin Transformer over the log-mel spectrogram folded into a square image, with HTS-AT's
token-semantic (tscam) head. Module, parameter and buffer names follow msclap's
``HTSAT_Swin_Transformer`` so that released checkpoints load by prefix. The log-mel front end
is not part of this module (see ``clapkit.audio.features.LogMel``).

Each Swin stage keeps its tokens in *window order* (the tokens of each attention window
contiguous, after the cyclic shift of the block) instead of rolling and partitioning the
grid around every attention: all per-token operations (LayerNorm, Linear, MLP, residual)
commute with a permutation, so one precomputed gather per block gives the same result as
msclap's roll / window_partition / window_reverse with fewer copies.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch per sample while training; identity at eval."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class AttentionalFeatureFusion(nn.Module):
    """LAION's 2-D attentional feature fusion (Dai et al., 2021): a sigmoid gate from local (1×1
    convolutions) and global (pooled) attention mixes two feature maps, ``2·x·g + 2·y·(1 − g)``."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        inner = channels // ratio

        def bottleneck(*first: nn.Module) -> nn.Sequential:
            return nn.Sequential(*first, nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner), nn.ReLU(),
                                 nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))

        self.local_att = bottleneck()
        self.global_att = bottleneck(nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        both = x + residual
        gate = torch.sigmoid(self.local_att(both) + self.global_att(both))
        return 2 * x * gate + 2 * residual * (1 - gate)


class PatchEmbed(nn.Module):
    """(B, C, H, W) image -> (B, H/stride * W/stride, dim) tokens in row-major grid order, from channel 0.

    With ``fusion`` (LAION), channels 1–3 of the clips marked ``is_longer`` are three crops: each is
    embedded by ``mel_conv2d`` (3× the stride along time), the three laid side by side along time,
    and fused into channel 0's patches by attentional feature fusion.
    """

    def __init__(self, patch_size: int, patch_stride: tuple[int, int], in_chans: int, dim: int,
                 fusion: bool = False, fusion_ratio: int = 4) -> None:
        super().__init__()
        padding = ((patch_size - patch_stride[0]) // 2, (patch_size - patch_stride[1]) // 2)
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_stride, padding=padding)
        self.norm = nn.LayerNorm(dim)
        self.fusion_model = self.mel_conv2d = None
        if fusion:
            self.fusion_model = AttentionalFeatureFusion(dim, fusion_ratio)
            self.mel_conv2d = nn.Conv2d(in_chans, dim, kernel_size=(patch_size, 3 * patch_size),
                                        stride=(patch_stride[0], 3 * patch_stride[1]), padding=padding)

    def forward(self, x: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        patches = self.proj(x[:, :1])
        if self.fusion_model is not None and is_longer is not None and bool(is_longer.any()):
            longer = is_longer.nonzero().squeeze(1)
            crops = x[longer, 1:]
            batch, count, height, width = crops.shape
            local = self.mel_conv2d(crops.reshape(batch * count, 1, height, width))
            local = local.view(batch, count, *local.shape[1:]).permute(0, 2, 3, 1, 4).flatten(3)
            local = F.pad(local, (0, patches.shape[-1] - local.shape[-1]))
            patches = patches.index_copy(0, longer, self.fusion_model(patches[longer], local))
        return self.norm(patches.flatten(2).transpose(1, 2))


def relative_position_index(window: int) -> torch.Tensor:
    """(window², window²) index into the (2·window − 1)² relative-position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def window_order(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """Grid index of every token listed window by window, after a cyclic shift by ``-shift``
    (Swin's ``window_partition(torch.roll(x, (-shift, -shift)))``)."""
    grid = torch.arange(height * width).view(height, width).roll((-shift, -shift), dims=(0, 1))
    return grid.view(height // window, window, width // window, window).transpose(1, 2).flatten()


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """msclap's SW-MSA mask, (num_windows, window², window²): 0 within a region, −100 across."""
    regions = torch.zeros(height, width)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, rows in enumerate(bounds):
        for j, cols in enumerate(bounds):
            regions[rows, cols] = 3 * i + j
    labels = regions.flatten()[window_order(height, width, window, 0)].view(-1, window * window)
    differ = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros(differ.shape).masked_fill(differ, -100.0)


def _version(tensor: torch.Tensor) -> int:
    """The count of in-place changes (an inference tensor keeps none; it changes only in inference mode)."""
    return -1 if tensor.is_inference() else tensor._version


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows of ``window²`` consecutive tokens, with Swin's
    relative position bias and an optional additive per-window mask."""

    def __init__(self, dim: int, window: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_area = window * window
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._inference_bias: tuple[tuple, torch.Tensor] | None = None

    def inference_bias(self, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """:meth:`attention_bias` in ``dtype``, computed once while the table, the mask and the dtype
        stay the same: without gradients it is the same tensor for every clip (a Swin block runs once
        per clip, see :func:`rows_per_pass`)."""
        table = self.relative_position_bias_table
        key = (table.data_ptr(), _version(table), dtype, None if mask is None else (mask.data_ptr(), _version(mask)))
        if self._inference_bias is None or self._inference_bias[0] != key:
            self._inference_bias = key, self.attention_bias(mask).to(dtype)
        return self._inference_bias[1]

    def attention_bias(self, mask: torch.Tensor | None) -> torch.Tensor:
        """(1, num_heads, N, N) position bias, or (num_windows, num_heads, N, N) with the mask added."""
        n = self.window_area
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).unsqueeze(0)
        return bias if mask is None else bias + mask.unsqueeze(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, C) in window order, L a multiple of window²; mask: (L / window², N, N) or None."""
        batch, length, dim = x.shape
        n, heads = self.window_area, self.num_heads
        windows = batch * (length // n)
        # q, k, v: (B · windows, heads, N, head_dim) views into the projection
        q, k, v = self.qkv(x).view(windows, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        # 4-D so that SDPA stays on its fused CPU kernel (a 3-D mask falls back to the math path).
        if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():  # no cache in graphs
            bias = self.attention_bias(mask).to(x.dtype)
        else:
            bias = self.inference_bias(mask, x.dtype)
        if mask is not None:
            # The per-window mask repeats for every clip; SDPA needs it spelled out per (clip, window).
            bias = bias.expand(batch, *bias.shape).reshape(windows, heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, length, dim)))


# Tokens per pass through a Swin block at inference; None: the whole batch at once. An inference
# option of the pipeline (``with rows_per_pass(n):``), never module state that training sees.
_ROWS_PER_PASS: ContextVar[int | None] = ContextVar("htsat_rows_per_pass", default=None)


@contextlib.contextmanager
def rows_per_pass(rows: int | None) -> Iterator[None]:
    """Within this block, Swin blocks take the clips of a batch a few at a time (``rows`` tokens).

    Clips are independent there, so results are unchanged; on CPU, small passes keep the
    intermediates (qkv, the per-clip mask, the 4x MLP hidden) in cache: ~15 % faster at batch 8.
    """
    token = _ROWS_PER_PASS.set(rows)
    try:
        yield
    finally:
        _ROWS_PER_PASS.reset(token)


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP on tokens already in this block's window order."""

    def __init__(self, dim: int, resolution: tuple[int, int], num_heads: int, window: int, shift: int,
                 mlp_ratio: float, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if min(resolution) <= window:  # one window covers the grid: nothing to shift
            window, shift = min(resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        mask = shifted_window_mask(*resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _ROWS_PER_PASS.get()
        clips = max(1, rows // x.shape[1]) if rows else x.shape[0]
        if x.shape[0] <= clips:
            return self.forward_clips(x)
        return torch.cat([self.forward_clips(part) for part in x.split(clips)])

    def forward_clips(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), self.attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Swin's 2×2 patch merging on tokens already grouped by ``merge_order``: (B, L/4, 4C) -> (B, L/4, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    @staticmethod
    def merge_order(height: int, width: int) -> torch.Tensor:
        """Grid index of the tokens that form each merged token, in Swin's concatenation order
        (row-even/col-even, row-odd/col-even, row-even/col-odd, row-odd/col-odd)."""
        grid = torch.arange(height * width).view(height // 2, 2, width // 2, 2)
        return grid.permute(0, 2, 3, 1).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One Swin stage: ``depth`` blocks alternating plain and shifted windows, then optional merging.

    Tokens enter and leave in row-major grid order; in between they are gathered into each
    block's window order. ``gather_{i}`` is the index that takes the tokens from the previous
    order into block i's (the last one into grid or merge order).
    """

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, window: int,
                 mlp_ratio: float, drop: float, attn_drop: float, drop_path: list[float], downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2,
                                 mlp_ratio, drop, attn_drop, drop_path[i])
            for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

        height, width = resolution
        grid = torch.arange(height * width)
        orders = [window_order(height, width, blk.window, blk.shift) for blk in self.blocks]
        orders.append(PatchMerging.merge_order(height, width) if downsample else grid)
        position = grid  # position[t] = where grid token t currently sits
        self.num_gathers = len(orders)
        for i, order in enumerate(orders):
            gather = position[order]
            self.register_buffer(f"gather_{i}", None if torch.equal(gather, grid) else gather, persistent=False)
            position = torch.empty_like(order)
            position[order] = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.num_gathers):
            gather = getattr(self, f"gather_{i}")
            if gather is not None:
                x = x.index_select(1, gather)
            if i < len(self.blocks):
                x = self.blocks[i](x)
        if self.downsample is not None:
            x = self.downsample(x.reshape(x.shape[0], -1, 4 * x.shape[2]))
        return x


class HTSAT(nn.Module):
    """HTS-AT encoder: log-mel (B, 1, frames, mel_bins), before bn0 -> (embedding (B, D), clipwise or None).

    ``enable_fusion`` builds LAION's feature fusion: the input is then (B, 4, frames, mel_bins), the
    whole clip and three crops, fused where ``is_longer`` (see :class:`PatchEmbed`).

    ``embedding`` is msclap's ``latent_output`` (mean of the final tokens). With ``num_classes`` > 0
    the token-semantic (tscam) head is built and ``clipwise`` is its time-averaged sigmoid; CLAP
    builds none (0), so every parameter has a gradient path to the embedding. Inputs of up to ``spec_size · freq_ratio``
    frames are stretched to that length (bicubic) and folded into a ``spec_size``² image.
    Dropout, stochastic depth (``drop_path_rate``, linear in depth as in msclap) act only in training.
    """

    def __init__(self, num_classes: int = 0, embed_dim: int = 96, depths: tuple[int, ...] = (2, 2, 6, 2),
                 num_heads: tuple[int, ...] = (4, 8, 16, 32), window_size: int = 8, spec_size: int = 256,
                 patch_size: int = 4, patch_stride: tuple[int, int] = (4, 4), mel_bins: int = 64,
                 freq_ratio: int = 4, mlp_ratio: float = 4.0, in_chans: int = 1, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, enable_fusion: bool = False,
                 fusion_ratio: int = 4) -> None:
        super().__init__()
        if spec_size != mel_bins * freq_ratio:
            raise ValueError(f"HTSAT config: spec_size ({spec_size}) must equal mel_bins ({mel_bins}) "
                             f"x freq_ratio ({freq_ratio}) for the spectrogram to fold into a square image")
        self.spec_size, self.mel_bins, self.freq_ratio = spec_size, mel_bins, freq_ratio
        num_layers = len(depths)
        self.num_features = embed_dim * 2 ** (num_layers - 1)

        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.patch_embed = PatchEmbed(patch_size, tuple(patch_stride), in_chans, embed_dim, enable_fusion, fusion_ratio)
        self.channels = 4 if enable_fusion else 1
        self.pos_drop = nn.Dropout(drop_rate)
        grid = (spec_size // patch_stride[0], spec_size // patch_stride[1])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList(
            BasicLayer(embed_dim * 2 ** i, (grid[0] // 2 ** i, grid[1] // 2 ** i), depths[i], num_heads[i],
                       window_size, mlp_ratio, drop_rate, attn_drop_rate,
                       rates[sum(depths[:i]):sum(depths[:i + 1])], downsample=i < num_layers - 1)
            for i in range(num_layers))
        self.norm = nn.LayerNorm(self.num_features)
        self.final_grid = (grid[0] // 2 ** (num_layers - 1), grid[1] // 2 ** (num_layers - 1))
        if num_classes:
            tscam_rows = self.final_grid[0] // freq_ratio
            self.tscam_conv = nn.Conv2d(self.num_features, num_classes, kernel_size=(tscam_rows, 3), padding=(0, 1))
        else:
            self.tscam_conv = None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def wav2img(self, logmel: torch.Tensor) -> torch.Tensor:
        """bn0 over mel bins, bicubic stretch to ``spec_size · freq_ratio`` frames, fold each channel into
        a (spec_size, spec_size) image: row = chunk·mel_bins + mel, column = frame within chunk."""
        frames = self.spec_size * self.freq_ratio
        shape = (logmel.shape[0] if logmel.ndim == 4 else "batch", self.channels, f"frames <= {frames}", self.mel_bins)
        if logmel.ndim != 4 or logmel.shape[1] != self.channels or logmel.shape[3] != self.mel_bins or logmel.shape[2] > frames:
            raise ValueError(f"HTSAT input: expected a log-mel of shape {shape}, got {tuple(logmel.shape)}")
        x = self.bn0(logmel.transpose(1, 3)).transpose(1, 3)
        if x.shape[2] < frames:
            x = F.interpolate(x, (frames, self.mel_bins), mode="bicubic", align_corners=True)
        batch, channels = x.shape[:2]
        x = x.transpose(2, 3).reshape(batch, channels, self.mel_bins, self.freq_ratio, self.spec_size)
        return x.transpose(2, 3).reshape(batch, channels, self.spec_size, self.spec_size)

    def forward_features(self, image: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, spec_size, spec_size) image -> final-norm tokens (B, tokens, num_features), grid order."""
        x = self.pos_drop(self.patch_embed(image, is_longer))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Final tokens -> (latent embedding (B, num_features), clipwise sigmoid (B, classes) or None)."""
        if self.tscam_conv is None:
            return tokens.mean(1), None
        batch, _, channels = tokens.shape
        rows, cols = self.final_grid
        # Regroup the token grid the way reshape_wav2img folded time: the freq_ratio row bands
        # become consecutive stretches of time, giving a (rows / freq_ratio, freq_ratio · cols) map.
        band = rows // self.freq_ratio
        x = tokens.transpose(1, 2).reshape(batch, channels, self.freq_ratio, band, cols)
        x = x.transpose(2, 3).reshape(batch, channels, band, self.freq_ratio * cols)
        clipwise = torch.sigmoid(self.tscam_conv(x).flatten(2).mean(-1))
        return tokens.mean(1), clipwise

    def forward(self, logmel: torch.Tensor, is_longer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, C, frames, mel_bins) log-mel (dB, before bn0) -> (embedding, clipwise or None);
        ``is_longer`` (B,) bool marks the clips to fuse (fusion models only)."""
        return self.forward_head(self.forward_features(self.wav2img(logmel), is_longer))
