"""Random-weight Kyutai STT checkpoints with the real file layout, made offline for tests.

`write_checkpoint` writes what `kyutai/stt-1b-en_fr-mlx` (MLX tensor names) or, with
`vad=True`, `kyutai/stt-1b-en_fr-candle` (PyTorch names plus semantic-VAD heads) hold:
`config.json`, the LM weights, the Mimi codec weights and a sentencepiece tokenizer.
The words are noise, but every loader, shape and compute path is the real one.
Run `python -m voicevibe.testing.checkpoint OUT_DIR --size tiny|full`.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import math
import random
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import sentencepiece as spm
from mlx.utils import tree_flatten
from moshi_mlx import models
from safetensors.numpy import save_file

from voicevibe.testing.fastcodec import write_fast_codec

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
LM_NAME = "model.safetensors"
MIMI_NAME = "mimi-pytorch-e351c8d8@125.safetensors"
TOKENIZER_NAME = "tokenizer_en_fr_audio_8000.model"  # the real name, whatever the size
QUANT_GROUP_SIZE = {4: 32, 8: 64}  # bits -> group size, as Kyutai's moshi_mlx scripts use

N_Q = 32  # Mimi codebooks the STT LM reads
CARD = 2048  # audio codes per codebook
NO_TEXT_IDS = (0, 3)  # the "no text" tokens: end of padding / word boundary, and padding
SPECIAL_IDS = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": 3}

STT_1B_CONFIG = {  # kyutai/stt-1b-en_fr config.json; key order as in stt-2.6b-en's
    "card": CARD, "n_q": N_Q, "dep_q": 0, "delays": [0] * (N_Q + 1),
    "dim": 2048, "text_card": 8000, "existing_text_padding_id": NO_TEXT_IDS[1],
    "num_heads": 16, "num_layers": 16, "hidden_scale": 4.125, "causal": True,
    "layer_scale": None, "context": 750, "max_period": 100000.0,  # 750 frames = 60 s
    "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
    "depformer_dim": 1024, "depformer_num_heads": 16, "depformer_num_layers": 6,
    "depformer_dim_feedforward": None, "depformer_multi_linear": True,
    "depformer_pos_emb": "none", "depformer_weights_per_step": True,
    "conditioners": {}, "cross_attention": False,
    "stt_config": {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0},
    "model_type": "stt", "mimi_name": MIMI_NAME, "tokenizer_name": TOKENIZER_NAME,
}
# tiny uses dim 256, not 128: q8 (group size 64) needs the gated-MLP width 11 * dim / 4
# to be a multiple of 64, and 352 (dim 128) is not; 704 is.
SIZES = {
    "tiny": {"dim": 256, "num_heads": 4, "num_layers": 2, "text_card": 1000},
    "full": {"dim": 2048, "num_heads": 16, "num_layers": 16, "text_card": 8000},
}
LM_DTYPE = {"tiny": mx.float32, "full": mx.bfloat16}  # f32 keeps tiny tests exact
VAD_HEADS = 4  # extra_heads_num_heads of the -candle checkpoint
VAD_HEAD_DIM = 6

# A random LM that acts a little like an STT model: every embedding row carries a constant
# in one dimension, and only the "no text" rows of text_linear read it, so those tokens win
# about 50-80% of greedy steps while the other tokens follow the audio.
CONST_DIM = 0
CONST_VALUE = 1.0
NO_TEXT_LOGIT_BIAS = {"tiny": 0.53, "full": 0.75}  # weight on CONST_DIM, tuned empirically

MIMI_PARAMS = 96_151_393  # 318 float32 tensors in the real file
MIMI_DIM = 512
MIMI_LAYERS = 8
MIMI_FF = 2048
MIMI_LAYER_SCALE = 0.01
MIMI_BIAS_STD = 0.01
RVQ_DIM = 256
ENCODER_RATIOS = (4, 5, 6, 8)  # SEANet ratios [8, 6, 5, 4] as the encoder applies them
SEANET_FILTERS = 64
UPSAMPLE_STRIDE = 2

EN_WORDS = {
    "det": "the a this that every my your our their one",
    "noun": "light river city morning window garden voice dream fire shadow ocean forest "
            "mirror train bridge street painter story winter summer song crowd moon sky "
            "machine heart stage colour glass storm island road",
    "adj": "bright quiet golden broken ancient gentle electric silver endless hidden "
           "frozen wild soft empty blue crimson tired lucky",
    "verb": "follows|remembers|paints|crosses|watches|opens|becomes|carries|breaks|"
            "touches|dances through|hides behind|sings about|waits for|falls into",
}
FR_WORDS = {
    "det": "le la un une ce cette chaque notre votre leur",
    "noun": "lumière rivière ville matin fenêtre jardin voix rêve feu ombre océan forêt "
            "miroir train pont rue peintre histoire hiver été chanson foule lune ciel "
            "machine cœur scène couleur verre orage île route garçon façade",
    "adj": "brillante tranquille dorée brisée ancienne douce électrique argentée infinie "
           "cachée gelée sauvage légère vide bleue écarlate fatiguée très",
    "verb": "suit|rêve de|peint|traverse|regarde|ouvre|devient|porte|brise|touche|"
            "danse à travers|se cache derrière|chante|attend près de|tombe dans",
}
NAME_SYLLABLES = ("ma ri e lo é loï se an dré ço fran çois jé rô me ca mil lé na "
                  "to bi as hè lè ne gaë là ol ga nu ri à ki ta ru va pé ü zo "
                  "ben ja min sa rah ô côte mar tin el la bru no ju les").split()
CORPUS_SENTENCES = {"tiny": 4_000, "full": 40_000}


def lm_config_dict(size: str = "tiny", *, vad: bool = False, quantize: int | None = None) -> dict:
    """The config.json content of an stt-1b-en_fr-like checkpoint of the given size."""
    cfg = copy.deepcopy(STT_1B_CONFIG) | SIZES[size]
    if vad:
        cfg["extra_heads_num_heads"] = VAD_HEADS
        cfg["extra_heads_dim"] = VAD_HEAD_DIM
    if quantize is not None:
        cfg["moshi_name"] = quantized_name(quantize)
    return cfg


def quantized_name(bits: int) -> str:
    """File name of the LM weights quantized to `bits` (4 or 8)."""
    if bits not in QUANT_GROUP_SIZE:
        raise ValueError(f"quantize must be one of {sorted(QUANT_GROUP_SIZE)}, got {bits}")
    return f"model.q{bits}.safetensors"


def lm_weights(cfg: dict, size: str, seed: int) -> dict[str, mx.array]:
    """Random LM weights under MLX names, with the shapes of an instantiated `Lm(cfg)`."""
    model = models.Lm(models.LmConfig.from_config_dict(cfg))  # lazy: nothing is allocated
    shapes = {name: p.shape for name, p in tree_flatten(model.parameters())}
    dtype = LM_DTYPE[size]
    weights = {}
    for name, shape in sorted(shapes.items()):
        # One key per name, so the VAD variant shares every base tensor with the plain one.
        key = mx.random.key((seed << 32) | zlib.crc32(name.encode()))
        if name.endswith((".norm1.weight", ".norm2.weight")) or name == "out_norm.weight":
            w = mx.ones(shape, dtype=dtype)
        elif name == "text_emb.weight" or name.startswith("audio_embs."):
            w = mx.random.normal(shape, dtype=dtype, key=key)
            w[:, CONST_DIM] = CONST_VALUE
        else:  # every Linear: [out, in], fan-in scaled so activations stay O(1)
            w = mx.random.normal(shape, dtype=dtype, key=key) * (shape[-1] ** -0.5)
            if name == "text_linear.weight":
                w[:, CONST_DIM] = 0.0
                w[list(NO_TEXT_IDS), CONST_DIM] = NO_TEXT_LOGIT_BIAS[size]
        mx.eval(w)
        weights[name] = w
    return weights


def to_pytorch_names(weights: dict[str, mx.array]) -> dict[str, mx.array]:
    """Rename MLX LM weights to the PyTorch/candle names `Lm.load_pytorch_weights` reads."""
    out = {}
    for name, w in weights.items():
        if name.startswith("depformer."):
            raise ValueError(f"depformer weights are not supported (dep_q must be 0): {name}")
        if name == "out_norm.weight":
            name, w = "out_norm.alpha", w.reshape(1, 1, -1)
        elif name.startswith("audio_embs."):
            name = name.replace("audio_embs.", "emb.", 1)
        elif name.startswith("transformer."):
            if name.endswith((".norm1.weight", ".norm2.weight")):
                name, w = name.removesuffix(".weight") + ".alpha", w.reshape(1, 1, -1)
            name = name.replace(".in_proj.weight", ".in_proj_weight")
        out[name] = w
    return out


def quantized_lm_weights(cfg: dict, weights: dict[str, mx.array], bits: int) -> dict[str, mx.array]:
    """The MLX-named weights after `nn.quantize`, ready for a quantized `Lm.load_weights`."""
    model = models.Lm(models.LmConfig.from_config_dict(cfg))
    model.load_weights(list(weights.items()), strict=True)
    nn.quantize(model, bits=bits, group_size=QUANT_GROUP_SIZE[bits])
    return dict(tree_flatten(model.parameters()))


def mimi_tensor_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the 318 tensors of Kyutai's Mimi checkpoint (PyTorch layout)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(prefix: str, out_ch: int, in_ch: int, k: int) -> None:
        shapes[f"{prefix}.conv.conv.weight"] = (out_ch, in_ch, k)
        shapes[f"{prefix}.conv.conv.bias"] = (out_ch,)

    def residual(prefix: str, width: int) -> None:
        conv(f"{prefix}.block.1", width // 2, width, 3)
        conv(f"{prefix}.block.3", width, width // 2, 1)

    widths = [SEANET_FILTERS * 2**i for i in range(len(ENCODER_RATIOS))]  # 64 .. 512
    conv("encoder.model.0", SEANET_FILTERS, 1, 7)
    for i, (w, ratio) in enumerate(zip(widths, ENCODER_RATIOS)):
        residual(f"encoder.model.{1 + 3 * i}", w)
        conv(f"encoder.model.{3 + 3 * i}", 2 * w, w, 2 * ratio)
    conv("encoder.model.14", MIMI_DIM, 2 * widths[-1], 3)
    conv("decoder.model.0", 2 * widths[-1], MIMI_DIM, 7)
    for i, (w, ratio) in enumerate(zip(widths[::-1], ENCODER_RATIOS[::-1])):
        shapes[f"decoder.model.{2 + 3 * i}.convtr.convtr.weight"] = (2 * w, w, 2 * ratio)
        shapes[f"decoder.model.{2 + 3 * i}.convtr.convtr.bias"] = (w,)
        residual(f"decoder.model.{3 + 3 * i}", w)
    conv("decoder.model.14", 1, SEANET_FILTERS, 3)
    for side in ("encoder", "decoder"):
        for layer in range(MIMI_LAYERS):
            p = f"{side}_transformer.transformer.layers.{layer}"
            shapes[f"{p}.self_attn.in_proj_weight"] = (3 * MIMI_DIM, MIMI_DIM)
            shapes[f"{p}.self_attn.out_proj.weight"] = (MIMI_DIM, MIMI_DIM)
            shapes[f"{p}.linear1.weight"] = (MIMI_FF, MIMI_DIM)
            shapes[f"{p}.linear2.weight"] = (MIMI_DIM, MIMI_FF)
            for t in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                      "layer_scale_1.scale", "layer_scale_2.scale"):
                shapes[f"{p}.{t}"] = (MIMI_DIM,)
    shapes["downsample.conv.conv.conv.weight"] = (MIMI_DIM, MIMI_DIM, 2 * UPSAMPLE_STRIDE)
    shapes["upsample.convtr.convtr.convtr.weight"] = (MIMI_DIM, 1, 2 * UPSAMPLE_STRIDE)
    for group, layers in (("rvq_first", 1), ("rvq_rest", N_Q - 1)):
        shapes[f"quantizer.{group}.input_proj.weight"] = (RVQ_DIM, MIMI_DIM, 1)
        shapes[f"quantizer.{group}.output_proj.weight"] = (MIMI_DIM, RVQ_DIM, 1)
        for k in range(layers):
            p = f"quantizer.{group}.vq.layers.{k}._codebook"
            shapes[f"{p}._initialized"] = (1,)
            shapes[f"{p}.cluster_usage"] = (CARD,)
            shapes[f"{p}.embedding_sum"] = (CARD, RVQ_DIM)
    return shapes


def _mimi_fan_in(name: str, shape: tuple[int, ...]) -> int:
    if name.startswith("upsample."):  # depthwise transposed conv: k / stride taps per output
        return shape[2] // UPSAMPLE_STRIDE
    if ".convtr." in name:  # PyTorch [in, out, k] with k = 2 * stride: in * k / stride taps
        return shape[0] * 2
    return math.prod(shape[1:])  # conv [out, in, k] and linear [out, in]


def mimi_weights(seed: int) -> dict[str, np.ndarray]:
    """Random float32 Mimi weights, fan-in scaled so the codec's activations stay finite."""
    rng = np.random.default_rng([seed, 1])  # its own stream, apart from the text corpus
    out = {}
    for name, shape in mimi_tensor_shapes().items():
        is_norm = ".norm" in name
        if name.endswith(("._initialized", ".cluster_usage")) or (is_norm and name.endswith(".weight")):
            w = np.ones(shape, np.float32)
        elif is_norm:  # LayerNorm bias
            w = np.zeros(shape, np.float32)
        elif name.endswith(".scale"):
            w = np.full(shape, MIMI_LAYER_SCALE, np.float32)
        elif name.endswith(".bias"):
            w = rng.standard_normal(shape, np.float32) * np.float32(MIMI_BIAS_STD)
        elif name.endswith(".embedding_sum"):
            # Unit-norm rows: the nearest code then follows the input, not the row norms.
            w = rng.standard_normal(shape, np.float32)
            w /= np.linalg.norm(w, axis=1, keepdims=True)
        else:
            w = rng.standard_normal(shape, np.float32) * np.float32(_mimi_fan_in(name, shape) ** -0.5)
        out[name] = w
    return out


def sentences(count: int, seed: int) -> Iterator[str]:
    """Plausible seeded English and French sentences, accents included, with invented names."""
    rng = random.Random(seed)
    langs = [{k: v.split("|" if k == "verb" else None) for k, v in words.items()}
             for words in (EN_WORDS, FR_WORDS)]
    for i in range(count):
        w = langs[i % 2]
        name = "".join(rng.choice(NAME_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
        noun2 = rng.choice(w["noun"])
        parts = [rng.choice(w["det"]).capitalize(), rng.choice(w["noun"]), rng.choice(w["adj"]),
                 rng.choice(w["verb"]), rng.choice(w["det"]), noun2]
        if i % 2 == 0:  # English puts the adjective first
            parts[1], parts[2] = parts[2], parts[1]
        tail = rng.choice([f", {name}.", f" avec {name} ?" if i % 2 else f" with {name}?",
                           f" {rng.randint(2, 1999)} fois !" if i % 2 else f" {rng.randint(2, 1999)} times!"])
        yield " ".join(parts) + tail


def tokenizer_model(vocab_size: int, seed: int, corpus_sentences: int) -> bytes:
    """A serialized sentencepiece model with exactly `vocab_size` pieces; ids 0-3 are special."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=sentences(corpus_sentences, seed), model_writer=model,
        vocab_size=vocab_size, model_type="unigram", character_coverage=1.0,
        byte_fallback=True, normalization_rule_name="identity", num_threads=1,
        shuffle_input_sentence=False, minloglevel=2, **SPECIAL_IDS)
    data = model.getvalue()
    pieces = spm.SentencePieceProcessor(model_proto=data).get_piece_size()
    if pieces != vocab_size:
        raise RuntimeError(f"tokenizer has {pieces} pieces, wanted {vocab_size}")
    return data


def write_checkpoint(out_dir: Path, size: str = "tiny", *, vad: bool = False, seed: int = 0,
                     quantize: int | None = None, codec: str = "real") -> Path:
    """Write a random-weight STT checkpoint directory (config, LM, Mimi, tokenizer); return it.

    `codec="fast"` writes the tests' stand-in codec (testing/fastcodec.py) under Mimi's file name
    instead of the 384 MB random Mimi: every loader picks the stand-in from the file itself.
    """
    if codec not in ("real", "fast"):
        raise ValueError(f"codec must be 'real' or 'fast', got {codec!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if quantize is not None:
        quantized_name(quantize)  # fail before the slow work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = lm_config_dict(size, vad=vad, quantize=quantize)
    (out_dir / CONFIG_NAME).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")

    t0 = time.perf_counter()
    weights = lm_weights(cfg, size, seed)
    saved = to_pytorch_names(weights) if vad else weights
    mx.save_safetensors(str(out_dir / LM_NAME), saved)
    del saved
    log.info("LM weights (%s names) written in %.1f s", "PyTorch" if vad else "MLX",
             time.perf_counter() - t0)
    if quantize is not None:
        t0 = time.perf_counter()
        mx.save_safetensors(str(out_dir / quantized_name(quantize)),
                            quantized_lm_weights(cfg, weights, quantize))
        log.info("q%d LM weights written in %.1f s", quantize, time.perf_counter() - t0)
    del weights

    t0 = time.perf_counter()
    if codec == "fast":
        write_fast_codec(out_dir / MIMI_NAME)
    else:
        save_file(mimi_weights(seed), str(out_dir / MIMI_NAME))
    log.info("Mimi (%s) written in %.1f s", codec, time.perf_counter() - t0)

    t0 = time.perf_counter()
    model = tokenizer_model(cfg["text_card"], seed, CORPUS_SENTENCES[size])
    (out_dir / TOKENIZER_NAME).write_bytes(model)
    log.info("tokenizer trained in %.1f s", time.perf_counter() - t0)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """Command line: write a checkpoint and print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--vad", action="store_true",
                        help="PyTorch/candle tensor names plus 4 semantic-VAD heads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantize", type=int, choices=sorted(QUANT_GROUP_SIZE),
                        help="also write model.q{4,8}.safetensors (MLX names)")
    parser.add_argument("--codec", choices=("real", "fast"), default="real",
                        help="fast: the tests' stand-in codec instead of a random Mimi (flow tests, soaks)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    out = write_checkpoint(args.out_dir, args.size, vad=args.vad, seed=args.seed,
                           quantize=args.quantize, codec=args.codec)
    for path in sorted(out.iterdir()):
        print(f"{path.stat().st_size:>14,}  {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
