"""Kyutai's own MLX STT loop, as an oracle for the engine.

Written the way `kyutai-labs/delayed-streams-modeling` `scripts/stt_from_mic_mlx.py` drives
`moshi_mlx`: a fresh `Lm` and `rustymimi.Tokenizer`, then per 80 ms block
`encode_step` -> `LmGen.step`, greedy text. On the same checkpoint and audio the engine
must give the same token stream (before its first state reset, and segment by segment
after). It has the 4096-step wall; that is the point of comparing against it.
"""

from __future__ import annotations

from collections.abc import Iterable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import rustymimi
from moshi_mlx import models, utils

from voicevibe.config import BLOCK
from voicevibe.hub import SttFiles
from voicevibe.speech.engine import DTYPES, QUANTIZED, MimiEncoder, safetensors_names


def load_reference(files: SttFiles, dtype: str = "f32") -> tuple[models.Lm, models.LmConfig]:
    """The LM exactly as Kyutai's script loads it (own config, own rotating cache)."""
    config = models.LmConfig.from_config_dict(files.config)
    lm = models.Lm(config)
    lm.set_dtype(DTYPES[dtype])
    for suffix, (bits, group) in QUANTIZED.items():
        if files.lm.name.endswith(suffix):
            nn.quantize(lm, bits=bits, group_size=group)
    if "out_norm.alpha" in safetensors_names(files.lm):  # the script keys this on a "-candle" repo name
        lm.load_pytorch_weights(str(files.lm), config, strict=True)
    else:
        lm.load_weights(str(files.lm), strict=True)
    lm.warmup()
    return lm, config


class ReferenceLoop:
    """One stream through the reference loop: `step(block)` returns the text token (padding included).

    `codec`: the stream's Mimi encoder; by default rustymimi's, built from the checkpoint as Kyutai's
    script builds it. A test passes the fast stand-in (testing/fastcodec.py) to compare the engine and
    this loop on the same cheap codes.
    """

    def __init__(self, files: SttFiles, loaded: tuple[models.Lm, models.LmConfig], max_steps: int = 4096,
                 codec: MimiEncoder | None = None):
        lm, self.config = loaded
        for cache in lm.transformer_cache:
            cache.reset()
        self.mimi = codec or rustymimi.Tokenizer(str(files.mimi), num_codebooks=max(
            self.config.generated_codebooks, self.config.other_codebooks))
        self.gen = models.LmGen(model=lm, max_steps=max_steps,
                                text_sampler=utils.Sampler(top_k=25, temp=0),
                                audio_sampler=utils.Sampler(top_k=250, temp=0.8), check=False)

    def step(self, block: np.ndarray) -> int:
        """Encode one 1920-sample block and run one LmGen step, as Kyutai's mic script does."""
        codes = self.mimi.encode_step(np.ascontiguousarray(block, np.float32)[None, None, :])
        codes = mx.array(codes).transpose(0, 2, 1)[:, :, :self.config.other_codebooks]
        result = self.gen.step(codes[0])
        # moshi_mlx 0.3.0 returns (text_tokens, transformer_out); 0.2.x returned text_tokens.
        text = result[0] if isinstance(result, tuple) else result
        return int(text[0].item())


def reference_tokens(files: SttFiles, blocks: Iterable[np.ndarray], *, flush_frames: int,
                     dtype: str = "f32", max_steps: int = 4096,
                     loaded: tuple[models.Lm, models.LmConfig] | None = None,
                     codec: MimiEncoder | None = None) -> list[int]:
    """Every text token (padding included) the reference loop emits for `blocks` + silence."""
    loop = ReferenceLoop(files, loaded or load_reference(files, dtype), max_steps, codec)
    silence = [np.zeros(BLOCK, np.float32)] * flush_frames
    return [loop.step(block) for block in [*blocks, *silence]]
