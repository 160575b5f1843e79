"""A fast, deterministic stand-in for Mimi's streaming encoder, chosen by the test checkpoint.

rustymimi's encoder costs about 62 ms per 80 ms block on this CPU and 0.15-3.6 s to build (with
the GIL held), so a test about flow (pipeline, workers, faults, cues, window) would spend most of
its time in the codec. A checkpoint written with `write_checkpoint(..., codec="fast")` holds, in
place of the 384 MB Mimi file and under the same name, a small safetensors file whose metadata
says `format = FORMAT`; `stt.open_codec` then builds `FastMimi` instead of `rustymimi.Tokenizer`,
in whatever process loads the model. Everything but rustymimi stays real: the LM, its caches and
resets, the worker, DSP, brain, OSC. Token parity, the GIL measurements and one end-to-end
rehearsal keep the real codec (checkpoints written with `codec="real"`, the default).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

FORMAT = "voicevibe-fast-codec"  # the stand-in's safetensors metadata `format`
DEFAULT_MAX_SEQ_LEN = 8192  # rustymimi's encoder transformer limit, at 25 Hz (two steps per 80 ms block)
STEPS_PER_BLOCK = 2


class CodecLimitError(RuntimeError):
    """The stand-in ran past its max_seq_len, where rustymimi's encoder stops working too."""


class FastMimi:
    """Stand-in for `rustymimi.Tokenizer`'s streaming encoder: one frame of codes per 80 ms block.

    The codes depend only on the block's samples (silence always gives the same frame), and the
    encoder has rustymimi's wall: past `max_seq_len` positions (two per block) it raises, so an
    engine that never builds a fresh codec at its resets fails here as it would with the real one.
    """

    def __init__(self, codebooks: int, card: int = 2048, max_seq_len: int | None = None) -> None:
        self.codebooks, self.card = codebooks, card
        self.max_blocks = (max_seq_len or DEFAULT_MAX_SEQ_LEN) // STEPS_PER_BLOCK
        self.blocks = 0

    def encode_step(self, pcm: np.ndarray) -> np.ndarray:
        """Codes (1, codebooks, 1) for one (1, 1, 1920) block, as `rustymimi.Tokenizer.encode_step` gives."""
        if self.blocks >= self.max_blocks:
            raise CodecLimitError(f"the codec stand-in reached its max_seq_len ({self.max_blocks} blocks)")
        self.blocks += 1
        quantized = np.clip(np.asarray(pcm) * 127, -127, 127).astype(np.int8).tobytes()
        rng = np.random.default_rng(zlib.crc32(quantized))
        return rng.integers(0, self.card, (1, self.codebooks, 1), dtype=np.uint32)


def write_fast_codec(path: Path) -> Path:
    """Write the stand-in's file at `path` (the checkpoint's Mimi file name); return it."""
    save_file({"stand_in": np.zeros(1, np.float32)}, str(path), metadata={"format": FORMAT})
    return path


def is_fast_codec(path: Path) -> bool:
    """True when the safetensors file at `path` is the stand-in (its metadata says so)."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 1_000_000:  # a real Mimi header is about 39 KB; the stand-in's far less
                return False
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError):
        return False
    return isinstance(header, dict) and header.get("__metadata__", {}).get("format") == FORMAT
