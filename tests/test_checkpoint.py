"""The locally made Kyutai STT checkpoints load in the real code paths and act a bit like STT."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
import rustymimi
import sentencepiece as spm
from mlx.utils import tree_flatten
from moshi_mlx import models, utils
from moshi_mlx.models.mimi import Mimi, mimi_202407
from safetensors import safe_open

from voicevibe.testing import checkpoint as ck

BLOCK = 1920  # 80 ms at 24 kHz: one Mimi frame
GREEDY_STEPS = 50
BASE_FILES = {ck.CONFIG_NAME, ck.LM_NAME, ck.MIMI_NAME, ck.TOKENIZER_NAME}


def read_config(path: Path) -> dict:
    return json.loads((path / ck.CONFIG_NAME).read_text(encoding="utf-8"))


def load_lm(path: Path, weights: str | None = None) -> models.Lm:
    """Load the LM the way the real checkpoints are loaded (naming from config.json)."""
    cfg = read_config(path)
    lm_config = models.LmConfig.from_config_dict(cfg)
    model = models.Lm(lm_config)
    weights = weights or ck.LM_NAME
    if weights.endswith(".q8.safetensors"):
        nn.quantize(model, bits=8, group_size=64)
    if cfg.get("extra_heads_num_heads", 0) and weights == ck.LM_NAME:
        model.load_pytorch_weights(str(path / weights), lm_config, strict=True)
    else:
        model.load_weights(str(path / weights), strict=True)
    return model


def noise_blocks(seed: int, count: int, amplitude: float = 0.1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((1, 1, BLOCK)) * amplitude).astype(np.float32) for _ in range(count)]


def greedy_text(model: models.Lm, codes: np.ndarray) -> list[int]:
    """Kyutai's reference loop, greedy: one LmGen.step per frame of rustymimi codes [steps, 32]."""
    gen = models.LmGen(model, max_steps=len(codes), text_sampler=utils.Sampler(temp=0),
                       audio_sampler=utils.Sampler(temp=0), check=False)
    tokens = []
    for frame in codes:
        text, _ = gen.step(mx.array(frame[None, :]))  # == mx.array(c).transpose(0, 2, 1)[0]
        tokens.append(text.item())
    return tokens


def encode_steps(path: Path, blocks: list[np.ndarray]) -> np.ndarray:
    """Codes [steps, 32] from a fresh rustymimi tokenizer fed one 80 ms block per step."""
    mimi = rustymimi.Tokenizer(str(path / ck.MIMI_NAME), num_codebooks=ck.N_Q)
    codes = [mimi.encode_step(pcm) for pcm in blocks]
    for c in codes:  # a frame from the very first call on: no None, no warm-up
        assert c is not None and c.shape == (1, ck.N_Q, 1) and c.dtype == np.uint32
    return np.stack([c[0, :, 0] for c in codes])


@pytest.fixture(scope="module")
def noise_codes(tiny_checkpoint: Path) -> dict[int, np.ndarray]:
    """rustymimi codes of GREEDY_STEPS noise blocks per noise seed (encoding is the slow part)."""
    return {seed: encode_steps(tiny_checkpoint, noise_blocks(seed, GREEDY_STEPS)) for seed in (3, 4)}


def test_file_sets(tiny_checkpoint: Path, tiny_checkpoint_mlx: Path) -> None:
    assert {p.name for p in tiny_checkpoint.iterdir()} == BASE_FILES
    assert {p.name for p in tiny_checkpoint_mlx.iterdir()} == BASE_FILES | {"model.q8.safetensors"}


def test_config_json(tiny_checkpoint: Path, tiny_checkpoint_mlx: Path) -> None:
    vad, plain = read_config(tiny_checkpoint), read_config(tiny_checkpoint_mlx)
    for cfg in (vad, plain):
        assert cfg["model_type"] == "stt"
        assert (cfg["dim"], cfg["num_layers"], cfg["text_card"]) == (256, 2, 1000)
        assert (cfg["n_q"], cfg["dep_q"], cfg["card"], cfg["context"]) == (32, 0, 2048, 750)
        assert cfg["delays"] == [0] * 33
        assert cfg["existing_text_padding_id"] == 3
        assert cfg["depformer_dim_feedforward"] is None and cfg["layer_scale"] is None
        assert cfg["stt_config"] == {"audio_delay_seconds": 0.5, "audio_silence_prefix_seconds": 0.0}
        assert cfg["mimi_name"] == "mimi-pytorch-e351c8d8@125.safetensors"
        assert cfg["tokenizer_name"] == "tokenizer_en_fr_audio_8000.model"
    assert (vad["extra_heads_num_heads"], vad["extra_heads_dim"]) == (4, 6)
    assert "extra_heads_num_heads" not in plain
    assert "moshi_name" not in vad
    assert plain["moshi_name"] == "model.q8.safetensors"
    assert models.LmConfig.from_config_dict(vad).extra_heads_num_heads == 4
    assert models.LmConfig.from_config_dict(plain).extra_heads_num_heads == 0
    assert set(vad) - {"extra_heads_num_heads", "extra_heads_dim"} == set(plain) - {"moshi_name"}


def test_full_config_is_the_1b_model() -> None:
    cfg = ck.lm_config_dict("full", vad=True)
    model = models.Lm(models.LmConfig.from_config_dict(cfg))  # lazy: nothing is allocated
    shapes = {k: v.shape for k, v in tree_flatten(model.parameters())}
    assert shapes["text_emb.weight"] == (8001, 2048)
    assert shapes["transformer.layers.15.gating.linear_in.weight"] == (11264, 2048)
    assert shapes["extra_heads.3.weight"] == (6, 2048)
    assert 0.98e9 < sum(np.prod(s) for s in shapes.values()) < 1.0e9


def test_mimi_file_has_the_real_names_shapes_and_values(tiny_checkpoint: Path) -> None:
    with safe_open(str(tiny_checkpoint / ck.MIMI_NAME), "numpy") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert len(tensors) == 318
    assert {k: v.shape for k, v in tensors.items()} == ck.mimi_tensor_shapes()
    assert sum(v.size for v in tensors.values()) == ck.MIMI_PARAMS
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in tensors.values())
    assert tensors["encoder.model.12.conv.conv.weight"].shape == (1024, 512, 16)
    assert tensors["decoder.model.2.convtr.convtr.weight"].shape == (1024, 512, 16)
    usage = tensors["quantizer.rvq_rest.vq.layers.30._codebook.cluster_usage"]
    assert (usage == 1).all()
    assert (tensors["quantizer.rvq_first.vq.layers.0._codebook._initialized"] == 1).all()
    assert tensors["quantizer.rvq_first.vq.layers.0._codebook.embedding_sum"].std() > 0


def test_rustymimi_codes_follow_the_audio(tiny_checkpoint: Path) -> None:
    zeros = encode_steps(tiny_checkpoint, [np.zeros((1, 1, BLOCK), np.float32)] * 3)
    noise = encode_steps(tiny_checkpoint, noise_blocks(0, 3))
    assert zeros.max() < ck.CARD and noise.max() < ck.CARD
    assert np.array_equal(encode_steps(tiny_checkpoint, noise_blocks(0, 3)), noise)
    assert (zeros != noise).mean() > 0.5
    assert len(np.unique(noise)) > 16  # not a constant code
    assert not np.array_equal(noise, encode_steps(tiny_checkpoint, noise_blocks(1, 3)))


def test_rustymimi_reset_differs_from_fresh_on_the_first_frame_only(tiny_checkpoint: Path) -> None:
    """Documents rustymimi 0.4.1: after reset() the first frame is not a fresh tokenizer's."""
    blocks = noise_blocks(0, 4)
    fresh = encode_steps(tiny_checkpoint, blocks)
    mimi = rustymimi.Tokenizer(str(tiny_checkpoint / ck.MIMI_NAME), num_codebooks=ck.N_Q)
    for pcm in blocks[:2]:
        mimi.encode_step(pcm)
    mimi.reset()
    after = np.stack([mimi.encode_step(pcm)[0, :, 0] for pcm in blocks])
    assert not np.array_equal(after[0], fresh[0])
    assert np.array_equal(after[1:], fresh[1:])


def test_mlx_mimi_loads_strict_and_encodes(tiny_checkpoint: Path) -> None:
    mimi = Mimi(mimi_202407(32))
    mimi.load_pytorch_weights(str(tiny_checkpoint / ck.MIMI_NAME), strict=True)
    codes = mimi.encode(mx.array(np.concatenate(noise_blocks(1, 4), axis=-1)))
    assert codes.shape == (1, 32, 4)
    assert 0 <= codes.min().item() and codes.max().item() < ck.CARD


def test_lm_loads_pytorch_names_strict(tiny_checkpoint: Path, tiny_lm_config: models.LmConfig) -> None:
    with safe_open(str(tiny_checkpoint / ck.LM_NAME), "numpy") as f:
        names = set(f.keys())
    assert {"emb.0.weight", "out_norm.alpha", "transformer.layers.1.self_attn.in_proj_weight",
            "transformer.layers.0.norm1.alpha", "extra_heads.3.weight"} <= names
    assert not any(n.startswith("audio_embs.") for n in names)
    model = models.Lm(tiny_lm_config)
    model.load_pytorch_weights(str(tiny_checkpoint / ck.LM_NAME), tiny_lm_config, strict=True)
    assert len(model.extra_heads) == 4 and model.extra_heads[2].weight.shape == (6, 256)
    without_heads = models.LmConfig.from_config_dict(ck.lm_config_dict("tiny"))
    with pytest.raises(ValueError):  # strict loading notices the extra heads
        models.Lm(without_heads).load_pytorch_weights(
            str(tiny_checkpoint / ck.LM_NAME), without_heads, strict=True)


def test_both_namings_hold_the_same_base_weights(tiny_checkpoint: Path, tiny_checkpoint_mlx: Path) -> None:
    candle = dict(tree_flatten(load_lm(tiny_checkpoint).parameters()))
    mlx_named = dict(tree_flatten(load_lm(tiny_checkpoint_mlx).parameters()))
    assert set(candle) - set(mlx_named) == {f"extra_heads.{i}.weight" for i in range(4)}
    for name, w in mlx_named.items():
        assert mx.array_equal(w, candle[name]).item(), name


def test_quantized_lm_loads_strict(tiny_checkpoint_mlx: Path, noise_codes: dict[int, np.ndarray]) -> None:
    model = load_lm(tiny_checkpoint_mlx, "model.q8.safetensors")
    assert isinstance(model.text_linear, nn.QuantizedLinear)
    assert model.text_linear.bits == 8 and model.text_linear.group_size == 64
    tokens = greedy_text(model, noise_codes[3])
    assert all(0 <= t < 1000 for t in tokens)
    assert len(set(tokens)) > 3


def test_tokenizer_size_and_special_ids(tiny_checkpoint: Path) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(tiny_checkpoint / ck.TOKENIZER_NAME))
    assert sp.get_piece_size() == read_config(tiny_checkpoint)["text_card"]
    assert sp.is_unknown(0) and sp.is_control(3)
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, 3)
    assert not any(sp.is_control(i) or sp.is_unknown(i) for i in range(4, sp.get_piece_size()))
    text = "Une lumière dorée traverse la façade, Éloïse ; the moon sings à côté."
    assert sp.decode(sp.encode(text)) == text
    assert sp.id_to_piece(999) and len(sp.encode("the river")) < len("the river")


@pytest.mark.parametrize("fixture", ["tiny_checkpoint", "tiny_checkpoint_mlx"])
def test_greedy_loop_emits_padding_and_audio_dependent_text(
        fixture: str, noise_codes: dict[int, np.ndarray], request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    tokens = greedy_text(load_lm(path), noise_codes[3])
    words = [t for t in tokens if t not in ck.NO_TEXT_IDS]
    assert 0.3 <= 1 - len(words) / len(tokens) <= 0.9, tokens
    assert len(set(words)) >= 5 and all(3 < t < 1000 for t in words), tokens
    assert greedy_text(load_lm(path), noise_codes[3]) == tokens
    assert greedy_text(load_lm(path), noise_codes[4]) != tokens


def test_vad_heads_give_probabilities(tiny_checkpoint: Path, noise_codes: dict[int, np.ndarray]) -> None:
    gen = models.LmGen(load_lm(tiny_checkpoint), max_steps=5, text_sampler=utils.Sampler(temp=0),
                       audio_sampler=utils.Sampler(temp=0))
    for frame in noise_codes[3][:5]:
        _, heads = gen.step_with_extra_heads(mx.array(frame[None, :]))
        probs = np.stack([np.array(h).reshape(-1) for h in heads])
        assert probs.shape == (4, 6) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_bytes_other_seed_other_bytes(
        tmp_path: Path, tiny_checkpoint_mlx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ck.main([str(tmp_path / "again"), "--size", "tiny", "--quantize", "8"]) == 0
    assert "model.q8.safetensors" in capsys.readouterr().out
    for name in BASE_FILES | {"model.q8.safetensors"}:
        assert (tmp_path / "again" / name).read_bytes() == (tiny_checkpoint_mlx / name).read_bytes(), name
    other = ck.write_checkpoint(tmp_path / "other", "tiny", seed=1)
    for name in (ck.LM_NAME, ck.MIMI_NAME, ck.TOKENIZER_NAME):
        assert (other / name).read_bytes() != (tiny_checkpoint_mlx / name).read_bytes(), name


def test_bad_arguments_fail_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        ck.write_checkpoint(tmp_path / "a", "huge")
    with pytest.raises(ValueError, match="quantize"):
        ck.write_checkpoint(tmp_path / "b", quantize=3)
    with pytest.raises(ValueError, match="seed"):
        ck.write_checkpoint(tmp_path / "c", seed=-1)
    assert not any(tmp_path.iterdir())
