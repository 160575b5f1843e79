"""Startup time to listening, the reference script's load time, and peak memory of both models.

Called by bench/run.py. `python bench/startup.py --peak-memory FOLDER` runs the memory probe
alone (a fresh process, so its RSS is the app's, not the benchmark's) and prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicevibe.config import BLOCK, BrainConfig  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.events import Status  # noqa: E402
from voicevibe.hub import locate_stt  # noqa: E402
from voicevibe.runtime.controls import Controls  # noqa: E402
from voicevibe.runtime.engines import Engines  # noqa: E402
from voicevibe.runtime.pipeline import Pipeline  # noqa: E402

GEMMA_1B_Q4_BYTES = 806_058_272  # unsloth/gemma-3-1b-it-GGUF gemma-3-1b-it-Q4_K_M.gguf (hub listing, ~0.81 GB)


def status_mb(key: str) -> float:
    """A /proc/self/status memory figure (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def startup_to_listening(folder: Path, dtype: str = "bf16") -> dict:
    """App open -> the speech model ready (the worker loads it), then Start -> "listening to", on a cached
    checkpoint with the real loader."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "silence.wav"
        soundfile.write(wav, np.zeros(BLOCK * 25, np.float32), 24000)
        config = load_config(overrides=[{"stt": {"model": str(folder), "dtype": dtype}, "audio": {"realtime": False},
                                         "osc": {"targets": "127.0.0.1:9"}, "session": {"log_dir": tmp},
                                         "brain": {"model": "none"}}], include_defaults_files=False)
        t0 = time.perf_counter()
        engines = Engines(config)
        engines.start()
        while not engines.stt.ready:
            if engines.stt.worker.failure:
                raise RuntimeError(engines.stt.worker.failure)
            time.sleep(0.02)
        ready = time.perf_counter() - t0
        controls = Controls(config, engines)
        pipeline = Pipeline(config, controls=controls, input_spec=str(wav))
        t1 = time.perf_counter()
        pipeline.start()
        while not getattr(item := pipeline.events.get(timeout=600), "message", "").startswith("listening to"):
            if isinstance(item, Status) and item.level == "error":
                raise RuntimeError(item.message)
        listening = time.perf_counter() - t1
        pipeline.stop()
        controls.close()
        engines.close()
    return {"dtype": dtype, "model_ready_s": ready, "listening_s": listening}


def reference_load(folder: Path, dtype: str = "bf16") -> dict:
    """What Kyutai's stt_from_mic_mlx.py does before listening: LM + warmup, tokenizer, Mimi."""
    import rustymimi
    import sentencepiece

    from voicevibe.testing.reference import load_reference

    files = locate_stt(str(folder))
    t0 = time.perf_counter()
    lm, config = load_reference(files, dtype)
    tokenizer = sentencepiece.SentencePieceProcessor(model_file=str(files.tokenizer))
    mimi = rustymimi.Tokenizer(str(files.mimi), num_codebooks=config.other_codebooks)
    elapsed = time.perf_counter() - t0
    del lm, tokenizer, mimi
    return {"dtype": dtype, "load_s": elapsed}


def peak_memory_probe(folder: Path) -> dict:
    """In this process: the full STT model (bf16, a few steps) and the bundled brain (one answer)."""
    from voicevibe.brain.llama import load_llama
    from voicevibe.brain.loading import bundled_gguf
    from voicevibe.config import SttConfig
    from voicevibe.speech.engine import SttEngine, load_model

    start = status_mb("VmRSS")
    engine = SttEngine(load_model(locate_stt(str(folder)), "bf16"), SttConfig())
    rng = np.random.default_rng(0)
    for _ in range(5):
        engine.step((0.1 * rng.standard_normal(BLOCK)).astype(np.float32))
    stt = status_mb("VmRSS")
    gguf = bundled_gguf()
    llama = load_llama(gguf, BrainConfig())
    llama("A lighthouse in a storm, cinematic", max_tokens=16)
    both = status_mb("VmRSS")
    return {"rss_start_mb": start, "rss_stt_mb": stt, "rss_both_mb": both, "peak_mb": status_mb("VmHWM"),
            "brain_file_mb": gguf.stat().st_size / 2**20, "brain_name": gguf.name}


def peak_memory(folder: Path) -> dict:
    """The probe in a fresh process, plus the estimate for the default 1B brain model."""
    out = subprocess.run([sys.executable, __file__, "--peak-memory", str(folder)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    brain_overhead = r["rss_both_mb"] - r["rss_stt_mb"] - r["brain_file_mb"]  # context, buffers beyond the file
    r["estimate_1b_mb"] = r["rss_stt_mb"] + GEMMA_1B_Q4_BYTES / 2**20 + brain_overhead
    r["brain_overhead_mb"] = brain_overhead
    return r


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peak-memory", type=Path, required=True, metavar="FOLDER")
    print(json.dumps(peak_memory_probe(parser.parse_args().peak_memory)))
