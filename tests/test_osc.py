"""OSC out: builders checked on bytes, the sender against real sockets and the independent oscdump."""

from __future__ import annotations

import dataclasses
import json
import queue
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from support.osc import dump_lines, free_port
from voicevibe import osc
from voicevibe.config import ConfigError, OscConfig
from voicevibe.config_files import load_config
from voicevibe.events import ImagePrompt, Phrase, Status, Summary

ACCENTED = "une cathédrale engloutie, lumière d'été, forêt où l'œil rêve 🌊✨ — «déjà vu»"


def make_prompt(text: str = ACCENTED, **changes: object) -> ImagePrompt:
    return dataclasses.replace(ImagePrompt(text, "la mer monte", "cinematic", "rêveur", "model"), **changes)


def decode(dgram: bytes) -> list[tuple[str, list]]:
    """Every (address, params) in a datagram, bundles flattened."""
    if OscBundle.dgram_is_bundle(dgram):
        return [m for part in OscBundle(dgram) for m in decode(part.dgram)]
    message = OscMessage(dgram)
    return [(message.address, message.params)]


class FakeClock:
    """A monotonic clock the test moves by hand (rate limits without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def receive(sock: socket.socket, count: int) -> list[tuple[str, list]]:
    return [m for _ in range(count) for m in decode(sock.recv(65535))]


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("targets, problem", [("192.168.1.20", "not host:port"), ("host:99999", "port '99999'"),
                                               ("host:x", "port 'x'"), (":2992", "not host:port"),
                                               ("a:1, b", "'b' is not host:port")])
def test_bad_targets_name_the_entry(targets: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        OscConfig(targets=targets)


def test_targets_and_address_overrides_parse(tmp_path) -> None:
    config = OscConfig(targets=" 10.0.0.2:7000,[::1]:9000, ", addresses="prompt=/td/prompt, mood=")
    assert config.target_list() == [("10.0.0.2", 7000), ("::1", 9000)]
    assert osc.addresses_for(config).prompt == "/td/prompt" and osc.addresses_for(config).mood == ""
    path = tmp_path / "c.toml"
    path.write_text('[osc]\naddresses = "style=/a b"\n')
    with pytest.raises(ConfigError, match=r"\[osc\] addresses = .*no spaces"):
        load_config([path], include_defaults_files=False)


# --- builders -------------------------------------------------------------------------------

def test_vocevibe_preset_sends_vocevibe_addresses_and_types() -> None:
    messages = [decode(d)[0] for d in osc.prompt_datagrams(make_prompt(), OscConfig())]
    assert [a for a, _ in messages] == ["/visual/prompt", "/visual/style", "/visual/mood", "/visual/json"]
    assert messages[0][1] == [ACCENTED] and messages[2][1] == ["rêveur"]
    assert json.loads(messages[3][1][0])["prompt"] == ACCENTED
    raw = osc.prompt_datagrams(make_prompt(), OscConfig())[0]
    assert raw.startswith(b"/visual/prompt\x00\x00,s\x00\x00") and ACCENTED.encode() in raw
    summary = osc.summary_datagrams(Summary("On a parlé de la mer.", "a vast sea at dusk", "model"), OscConfig())
    assert [decode(d)[0] for d in summary] == [("/summary/text", ["On a parlé de la mer."]),
                                              ("/summary/image_prompt", ["a vast sea at dusk"])]
    assert OscConfig().target_list() == [("127.0.0.1", 2992)]


def test_scope_preset_sends_only_the_prompt() -> None:
    config = OscConfig(preset="scope", send_transcript=True, send_level=True)
    assert [decode(d)[0] for d in osc.prompt_datagrams(make_prompt(), config)] == [("/scope/prompt", [ACCENTED])]
    assert osc.phrase_datagram(Phrase("x", 0, 1), config) is None and osc.level_datagram(0.5, config) is None
    assert osc.summary_datagrams(Summary("s", "p", "model"), config) == []
    assert [decode(d)[0] for d in osc.panic_datagrams(True, config)] == [("/scope/prompt", [config.panic_prompt])]


def test_generic_preset_flags_level_phrase_and_heartbeat_types() -> None:
    config = OscConfig(preset="generic", send_transcript=True, send_level=True, send_style=False,
                       send_mood=False, send_json=False)
    assert [decode(d)[0] for d in osc.prompt_datagrams(make_prompt("a"), config)] == [("/prompt", ["a"])]
    assert decode(osc.phrase_datagram(Phrase("où est-ce ?", 0.0, 1.0), config)) == [("/phrase", ["où est-ce ?"])]
    level = osc.level_datagram(0.25, config)
    assert b",f\x00\x00" in level and decode(level) == [("/level", [0.25])]
    assert decode(osc.level_datagram(float("nan"), config)) == [("/level", [0.0])]
    assert b",i\x00\x00" in osc.heartbeat_datagram(7, config)
    assert decode(osc.heartbeat_datagram(2**31 + 3, config)) == [("/heartbeat", [3])]
    assert [decode(d)[0] for d in osc.panic_datagrams(True, config)] == [("/prompt", [config.panic_prompt]),
                                                                         ("/panic", [1])]
    assert [decode(d)[0] for d in osc.panic_datagrams(False, config)] == [("/panic", [0])]
    assert decode(osc.freeze_datagram(True, config)) == [("/freeze", [1])]


def test_bundles_group_a_prompt_and_split_under_the_limit() -> None:
    one = osc.prompt_datagrams(make_prompt(), OscConfig(bundles=True))
    assert len(one) == 1 and OscBundle.dgram_is_bundle(one[0])
    assert [a for a, _ in decode(one[0])] == ["/visual/prompt", "/visual/style", "/visual/mood", "/visual/json"]
    config = OscConfig(bundles=True, max_datagram_bytes=256)
    long = make_prompt("word " * 300, phrase="mot " * 300)
    parts = osc.prompt_datagrams(long, config)
    assert len(parts) > 1 and all(len(p) <= 256 for p in parts)
    assert [a for p in parts for a, _ in decode(p)] == ["/visual/prompt", "/visual/style", "/visual/mood",
                                                        "/visual/json"]


def test_long_text_is_cut_at_a_word_boundary_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = "éléphant " * 400
    dgram = osc.prompt_datagrams(make_prompt(text), OscConfig())[0]
    sent = decode(dgram)[0][1][0]
    assert len(dgram) <= 1400 and text.startswith(sent) and sent.endswith("éléphant")
    assert "prompt cut from 4400 to" in caplog.text
    sent_json = decode(osc.prompt_datagrams(make_prompt(text), OscConfig())[3])[0][1][0]
    assert json.loads(sent_json)["style"] == "cinematic"  # still valid JSON, the long fields shortened


def test_fit_text_never_splits_a_character() -> None:
    assert osc.fit_text("aé", 2) == "a"
    assert osc.fit_text("🌅🌅", 7) == "🌅"
    assert osc.fit_text("one two three", 9) == "one two"
    assert osc.fit_text("one two three", 7) == "one two"
    assert osc.fit_text("onetwothree", 5) == "onetw"  # no boundary: cut at a character


@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=1, max_size=3000), cap=st.integers(256, 2048), bundles=st.booleans())
def test_any_text_fits_decodes_and_is_a_prefix(text: str, cap: int, bundles: bool) -> None:
    config = OscConfig(max_datagram_bytes=cap, bundles=bundles)
    for dgram in osc.prompt_datagrams(make_prompt(text, phrase=text), config):
        assert len(dgram) <= cap
        for address, params in decode(dgram):
            if address == "/visual/prompt":
                assert text.startswith(params[0])
            if address == "/visual/json":
                assert text.startswith(json.loads(params[0])["prompt"])


def test_manual_text_collapses_whitespace() -> None:
    config = OscConfig(send_json=False)
    assert [decode(d)[0] for d in osc.text_datagrams("  un ciel\n rouge ", config)] == [
        ("/visual/prompt", ["un ciel rouge"])]
    assert osc.text_datagrams(" \n ", config) == []


# --- sender ---------------------------------------------------------------------------------

def test_sender_delivers_to_every_target(receiver: socket.socket) -> None:
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(5.0)
    targets = f"127.0.0.1:{receiver.getsockname()[1]}, localhost:{other.getsockname()[1]}"
    with other, osc.OscSender(OscConfig(targets=targets, send_json=False)) as sender:
        sent_at = sender.send_prompt(make_prompt())
        assert sent_at is not None and sent_at <= time.monotonic()
        for sock in (receiver, other):
            assert receive(sock, 3) == [("/visual/prompt", [ACCENTED]), ("/visual/style", ["cinematic"]),
                                        ("/visual/mood", ["rêveur"])]
        assert [(s.sent, s.errors) for s in sender.statuses()] == [(3, 0), (3, 0)]
        sender.send_text("à la main")
        assert receive(receiver, 1) == [("/visual/prompt", ["à la main"])]
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:
        v6.bind(("::1", 0))
        v6.settimeout(5.0)
        with osc.OscSender(OscConfig(targets=f"[::1]:{v6.getsockname()[1]}", send_json=False)) as sender:
            sender.send_text("v6")
            assert receive(v6, 1) == [("/visual/prompt", ["v6"])]
            assert sender.statuses()[0].target == f"[::1]:{v6.getsockname()[1]}"


def test_dead_target_is_counted_and_reported_rate_limited(receiver: socket.socket) -> None:
    clock, reports = FakeClock(), []
    dead = f"127.0.0.1:{free_port()}"
    config = OscConfig(targets=f"{dead}, 127.0.0.1:{receiver.getsockname()[1]}", send_json=False)
    with osc.OscSender(config, reports.append, clock=clock) as sender:
        for i in range(6):
            assert sender.send_prompt(make_prompt(f"prompt {i}")) is not None
        assert receive(receiver, 18)[-3][1] == ["prompt 5"]  # the live target missed nothing
        dead_status, live_status = sender.statuses()
        assert dead_status.target == dead and dead_status.errors > 0 and dead_status.failing
        assert "refused" in dead_status.last_error.lower()
        assert live_status.errors == 0 and live_status.sent == 18
        warnings = [r for r in reports if isinstance(r, Status)]
        assert len(warnings) == 1 and warnings[0].level == "warning" and dead in warnings[0].message
        clock.now += osc.REPORT_SECONDS
        for i in range(3):
            sender.send_prompt(make_prompt(f"later {i}"))
        warnings = [r for r in reports if isinstance(r, Status)]
        assert len(warnings) == 2 and "errors since the last report" in warnings[1].message
        assert any(isinstance(r, osc.TargetStatus) and r.target == dead for r in reports)


def test_unreachable_and_unknown_hosts_never_raise() -> None:
    clock, reports = FakeClock(), []
    config = OscConfig(targets="203.0.113.1:2992, no-such-host.invalid:2992")
    with osc.OscSender(config, reports.append, clock=clock) as sender:
        for _ in range(3):
            sender.send_prompt(make_prompt())  # they wait for the first lookups, then leave or are counted lost
        assert sender.wait_for_lookups(30)
        clock.now += osc.RETRY_SECONDS
        sender.send_prompt(make_prompt())  # the name is looked up again (its own thread); these are lost at once
        assert sender.wait_for_lookups(30)
        unreachable, unknown = sender.statuses()
        assert unreachable.sent + unreachable.errors == 16  # 4 prompts of 4 messages, none lost from the count
        assert unknown.sent == 0 and unknown.errors == 16 and unknown.failing
        assert "no-such-host.invalid" in unknown.last_error
    warnings = [r.message for r in reports if isinstance(r, Status)]
    assert sum("no-such-host.invalid" in m for m in warnings) == 2  # at start, then once after the retry


def test_freeze_holds_the_newest_and_releases_it(receiver: socket.socket) -> None:
    config = OscConfig(targets=f"127.0.0.1:{receiver.getsockname()[1]}", send_style=False, send_mood=False,
                       send_json=False, preset="generic")
    with osc.OscSender(config) as sender:
        sender.freeze(True)
        assert receive(receiver, 1) == [("/freeze", [1])]
        assert sender.send_prompt(make_prompt("first")) is None
        assert sender.send_text("second") is None
        sender.send_summary(Summary("résumé", "summary image", "model"))
        sender.send_level(0.5)  # not a prompt: level is off here, and nothing else went out
        assert sender.statuses()[0].sent == 1
        assert sender.freeze(False) is not None
        assert receive(receiver, 4) == [("/freeze", [0]), ("/prompt", ["second"]), ("/summary/text", ["résumé"]),
                                        ("/summary/prompt", ["summary image"])]
        assert sender.freeze(False) is None  # nothing held any more


def test_panic_sends_the_safe_prompt_and_blocks_until_released(receiver: socket.socket) -> None:
    config = OscConfig(targets=f"127.0.0.1:{receiver.getsockname()[1]}", send_style=False, send_mood=False,
                       send_json=False, heartbeat_seconds=1.0, panic_prompt="noir complet")
    with osc.OscSender(config) as sender:
        sender.freeze(True)
        sender.send_prompt(make_prompt("held before panic"))
        assert sender.panic(True) is not None
        assert receive(receiver, 3) == [("/visual/freeze", [1]), ("/visual/prompt", ["noir complet"]),
                                        ("/visual/panic", [1])]
        sender.freeze(False)  # the held prompt must not escape the panic
        assert sender.send_prompt(make_prompt("blocked")) is None
        assert sender.send_text("blocked too") is None
        assert sender.heartbeat(force=True) is None
        sender.send_summary(Summary("s", "p", "model"))
        assert sender.statuses()[0].sent == 3
        sender.panic(False)
        sender.send_prompt(make_prompt("back"))
        assert receive(receiver, 2) == [("/visual/panic", [0]), ("/visual/prompt", ["back"])]


def test_heartbeat_only_when_due(receiver: socket.socket) -> None:
    clock = FakeClock()
    config = OscConfig(targets=f"127.0.0.1:{receiver.getsockname()[1]}", heartbeat_seconds=2.0)
    with osc.OscSender(config, clock=clock) as sender:
        assert sender.heartbeat() is not None
        assert sender.heartbeat() is None
        clock.now += 2.0
        assert sender.heartbeat() is not None
        assert receive(receiver, 2) == [("/visual/heartbeat", [1]), ("/visual/heartbeat", [2])]
    with osc.OscSender(dataclasses.replace(config, heartbeat_seconds=0.0)) as sender:
        assert sender.heartbeat() is None


def test_sender_is_thread_safe(receiver: socket.socket) -> None:
    config = OscConfig(targets=f"127.0.0.1:{receiver.getsockname()[1]}", send_json=False)
    with osc.OscSender(config) as sender:
        threads = [threading.Thread(target=lambda: [sender.send_prompt(make_prompt()) for _ in range(50)])
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sender.statuses()[0].sent == 4 * 50 * 3
        sender.close()
        assert sender.send_prompt(make_prompt()) is None


# --- the independent receiver ---------------------------------------------------------------

def test_oscdump_receives_the_vocevibe_prompt_exactly(oscdump: tuple[int, queue.Queue]) -> None:
    port, lines = oscdump
    config = OscConfig(targets=f"127.0.0.1:{port}")
    summary = Summary("Un récit sur l'océan.", "an ocean of glass, été", "model")
    with osc.OscSender(config) as sender:
        got = dump_lines(port, lines, lambda: (sender.send_prompt(make_prompt()), sender.send_summary(summary)))
    parsed = [re.fullmatch(r"\S+ (\S+) (\S+) \"(.*)\"", line).groups() for line in got]
    assert parsed[:3] == [("/visual/prompt", "s", ACCENTED), ("/visual/style", "s", "cinematic"),
                          ("/visual/mood", "s", "rêveur")]
    assert parsed[3][:2] == ("/visual/json", "s") and json.loads(parsed[3][2])["prompt"] == ACCENTED
    assert parsed[4:] == [("/summary/text", "s", summary.text), ("/summary/image_prompt", "s", summary.image_prompt)]


def test_oscdump_reads_bundles_and_flags(oscdump: tuple[int, queue.Queue]) -> None:
    port, lines = oscdump
    config = OscConfig(targets=f"127.0.0.1:{port}", bundles=True, preset="generic", send_json=False)
    with osc.OscSender(config) as sender:
        got = dump_lines(port, lines, lambda: (sender.send_prompt(make_prompt()), sender.panic(True)))
    assert [line.split(" ", 1)[1] for line in got] == [
        f'/prompt s "{ACCENTED}"', '/style s "cinematic"', '/mood s "rêveur"',
        f'/prompt s "{config.panic_prompt}"', "/panic i 1"]
