"""The models in supervised worker processes: real processes, real signals (kill -9, SIGSTOP, SIGINT).

(The window's part, a kill -9 of the speech engine mid-rehearsal under Xvfb with oscdump watching
the heartbeat, is in test_gui_show.py.)
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest
import soundfile

from support.shows import WAIT, Collector, alive, brain_show, children, drain, mapped_files, show_config, until
from support.threads import stage_threads
from voicevibe.events import ImagePrompt, PipelineStats, SayText, Status, Stopped, Word, WorkerState
from voicevibe.runtime.controls import Controls
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.testing.faults import crash_at_load, scripted_brain, stt_always_failing
from voicevibe.workers.supervisor import BACKOFF_SECONDS


def test_kill_9_of_the_brain_gives_fallback_prompts_saying_so_until_model_prompts_resume(tmp_path, peer):
    config = show_config(tmp_path, "unused", peer, brain={"model": "bundled", "time_budget_seconds": 10})
    with brain_show(config, delay=1.5) as (engines, pipeline, seen):
        first_pid = engines.brain.worker.pid
        pipeline.apply(SayText("a lighthouse in a storm"))
        until(lambda: seen.of(ImagePrompt))
        assert [p.source for p in seen.of(ImagePrompt)] == ["model"]
        pipeline.apply(SayText("a wolf under the moon"))  # in the worker's hands when it dies
        until(lambda: engines.brain._took[0] == 2)
        os.kill(first_pid, signal.SIGKILL)
        until(lambda: len(seen.of(ImagePrompt)) == 2)
        pipeline.apply(SayText("a harbour at dawn"))  # while it restarts
        until(lambda: len(seen.of(ImagePrompt)) == 3)
        until(lambda: engines.brain.worker.ready)
        pipeline.apply(SayText("a field of sunflowers"))
        until(lambda: len(seen.of(ImagePrompt)) == 4)
    prompts = seen.of(ImagePrompt)
    assert [p.source for p in prompts] == ["model", "fallback", "fallback", "model"]
    assert prompts[1].phrase == "a wolf under the moon" and "wolf" in prompts[1].text
    assert prompts[1].reason == "brain restarting (stopped: signal 9 (SIGKILL))"
    assert prompts[2].reason.startswith("brain restarting") and "harbour" in prompts[2].text
    assert engines.brain.worker.pid != first_pid and not alive(first_pid)
    states = [(s.state, s.message) for s in seen.of(WorkerState, lambda s: s.stage == "brain")]
    assert ("restarting", f"brain stopped (signal 9 (SIGKILL)): restarting in {BACKOFF_SECONDS[0]:g} s") in states
    assert [m.params[0] for m in peer.wait_for("/visual/prompt", 4)] == [p.text for p in prompts]


@pytest.mark.timing
def test_a_brain_that_hangs_in_native_code_gets_a_fallback_in_time_and_is_replaced(tmp_path, peer):
    config = show_config(tmp_path, "unused", peer, brain={"model": "bundled", "time_budget_seconds": 0.5},
                         supervisor={"hang_seconds": 3})
    engines = Engines(config, brain_loader=functools.partial(scripted_brain, hang=True))
    controls = Controls(config, engines)
    pipeline = Pipeline(config, controls=controls, script=["a lighthouse in a storm"])
    try:
        pipeline.start()
        assert pipeline.wait(WAIT)  # the fallback answered: the script went on
        first_pid = engines.brain.worker.pid
        until(lambda: engines.brain.worker.pid != first_pid and engines.brain.worker.ready)
    finally:
        pipeline.stop()
        controls.close()
        engines.close()
    events = drain(pipeline.events)
    (prompt,) = [e for e in events if isinstance(e, ImagePrompt)]
    assert prompt.source == "fallback" and prompt.reason == "brain did not answer within 2.5 s"
    assert any(isinstance(e, WorkerState) and e.state == "restarting" and "no answer to a phrase" in e.message
               for e in events)
    assert not alive(first_pid)


def test_a_brain_reloaded_mid_phrase_answers_that_phrase_with_a_fallback_and_the_new_brain_carries_on(tmp_path,
                                                                                                       peer):
    config = show_config(tmp_path, "unused", peer, brain={"model": "bundled", "time_budget_seconds": 5},
                         supervisor={"hang_seconds": 2})
    with brain_show(config, delay=2) as (engines, pipeline, seen):
        first_pid = engines.brain.worker.pid
        pipeline.apply(SayText("a wolf under the moon"))  # in the worker's hands when the setting changes
        until(lambda: engines.brain._took[0] == 1)
        engines.reconfigure(show_config(tmp_path, "unused", peer, brain={"model": "bundled", "n_ctx": 1024,
                                                                         "time_budget_seconds": 5},
                                        supervisor={"hang_seconds": 2}))
        until(lambda: seen.of(ImagePrompt))
        until(lambda: engines.brain.worker.ready)
        second_pid = engines.brain.worker.pid
        time.sleep(5 + 2 + 1)  # past the old phrase's budget plus hang_seconds: nobody kills the new brain
        pipeline.apply(SayText("a field of sunflowers"))
        until(lambda: len(seen.of(ImagePrompt)) == 2)
    prompts = seen.of(ImagePrompt)
    assert [p.source for p in prompts] == ["fallback", "model"]
    assert prompts[0].phrase == "a wolf under the moon"
    assert prompts[0].reason == "brain restarting (stopped: a model setting changed)"
    assert second_pid != first_pid and engines.brain.worker.restarts == 0
    assert not seen.of(WorkerState, lambda s: s.state == "restarting")


def test_an_unexpected_brain_error_or_a_failing_front_end_still_leaves_a_prompt_for_every_phrase(tmp_path, peer):
    config = show_config(tmp_path, "unused", peer, brain={"model": "bundled"})
    with brain_show(config, fails_on="wolf") as (engines, pipeline, seen):
        pipeline.apply(SayText("a wolf under the moon"))  # the model wrapper raises a TypeError
        until(lambda: seen.of(ImagePrompt))
        deliver = engines.brain._sink

        def broken_once(item: object) -> None:  # a bug downstream, on the pipe's reader thread
            engines.brain._sink = deliver
            raise RuntimeError("simulated bug in a front end")

        engines.brain._sink = broken_once
        pipeline.apply(SayText("a harbour at dawn"))  # its prompt is lost to the bug...
        until(lambda: engines.brain._sink is deliver)
        pipeline.apply(SayText("a field of sunflowers"))  # ...but the reader thread lives on
        until(lambda: len(seen.of(ImagePrompt)) == 2)
    wolf, sunflowers = seen.of(ImagePrompt)
    assert wolf.source == "fallback" and "wolf" in wolf.text
    assert wolf.reason == "brain error (TypeError: simulated bug: 'NoneType' object is not subscriptable)"
    assert sunflowers.source == "model" and sunflowers.phrase == "a field of sunflowers"


@pytest.mark.timing
def test_a_sigstopped_worker_is_seen_as_hung_within_seconds_and_replaced(tmp_path, fast_checkpoint, peer):
    config = show_config(tmp_path, fast_checkpoint, peer, supervisor={"hang_seconds": 2})
    engines = Engines(config)
    blocks = 400  # 3 MB of audio: far more than a pipe's buffer holds (8 KB on macOS, ~200 KB here)
    try:
        engines.start()
        until(lambda: engines.stt.worker.ready)
        engines.stt.begin(config.stt, lambda events: None, queue_seconds=blocks * 0.08)
        stopped_pid = engines.stt.worker.pid
        os.kill(stopped_pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        # The audio thread's sends to the stopped worker must not wait on it: all of them go (queued),
        # and the supervisor, which a blocked send would hold up, still sees the hang.
        fed = [engines.stt.feed(numpy.full(1920, 0.01, numpy.float32)) for _ in range(blocks)]
        fed_while_stopped = engines.stt.worker.pid == stopped_pid and engines.stt.worker.state == "ready"
        until(lambda: engines.stt.worker.state == "restarting")
        noticed = time.monotonic() - stopped_at
        until(lambda: engines.stt.worker.ready)
        replaced_by = engines.stt.worker.pid
    finally:
        engines.close()
    assert all(fed) and fed_while_stopped
    assert engines.stt.lost == blocks  # sent to a worker that died with them: counted, not replayed
    states = [e for e in drain(engines.events) if isinstance(e, WorkerState) and e.state == "restarting"]
    assert "stopped answering (no heartbeat for" in states[0].message
    assert noticed < 2 + 5  # the hang threshold, plus the supervisor's look every 0.2 s, on a loaded machine
    assert replaced_by != stopped_pid and not alive(stopped_pid)


def test_a_worker_that_dies_at_every_load_is_not_restarted_forever_and_the_show_goes_on(tmp_path, fast_checkpoint,
                                                                                          peer):
    config = show_config(tmp_path, fast_checkpoint, peer, supervisor={"max_restarts": 3})
    pipeline = Pipeline(config, input_spec=str(tmp_path), stt_loader=crash_at_load)
    seen = Collector(pipeline)
    pipeline.start()
    until(lambda: seen.of(WorkerState, lambda s: s.state == "failed"))
    pipeline.apply(SayText("a lighthouse in the fog"))  # typed text still reaches the screen
    assert pipeline.wait(WAIT)
    pipeline.stop()
    states = seen.of(WorkerState, lambda s: s.stage == "stt")
    assert [s.state for s in states if s.state in ("restarting", "failed")] == ["restarting"] * 2 + ["failed"]
    failed = states[-1] if states[-1].state == "failed" else next(s for s in states if s.state == "failed")
    assert failed.message.startswith("speech engine stopped 3 times within 60 s (last: signal 11 (SIGSEGV)): "
                                     "not restarting it")
    assert "press Start to try again" in failed.message
    errors = [e.message for e in seen.of(Status, lambda s: s.level == "error")]
    assert any("typed text still reaches the brain" in m for m in errors)
    assert [p.phrase for p in seen.of(ImagePrompt)] == ["a lighthouse in the fog"]
    log_lines = [json.loads(x) for x in pipeline.log_path.read_text(encoding="utf-8").splitlines()]
    assert [d["state"] for d in log_lines if d["type"] == "worker" and d["state"] == "failed"] == ["failed"]
    assert not stage_threads() and seen()[-1] == Stopped(failed.message)


def test_a_load_that_dies_slowly_every_time_is_given_up_on_too(tmp_path, fast_checkpoint, peer):
    # Deaths spaced wider than the restart window (a big model that loads for minutes, then runs out of
    # memory, every time) must not mean reloading forever.
    config = show_config(tmp_path, fast_checkpoint, peer, supervisor={"max_restarts": 3,
                                                                      "restart_window_seconds": 5})
    engines = Engines(config, stt_loader=functools.partial(crash_at_load, after=5.5))  # deaths > 5 s apart
    try:
        engines.start()
        failed = until(lambda: [e for e in drain(engines.events) if isinstance(e, WorkerState)
                                and e.state == "failed"])
        assert engines.stt.worker.failure == failed[0].message
        engines.ensure_running()  # the operator presses Start, as the message says: a fresh set of tries
        after = until(lambda: [e for e in drain(engines.events) if isinstance(e, WorkerState)
                               and e.state in ("restarting", "failed")])
    finally:
        engines.close()
    assert failed[0].message.startswith("speech engine stopped 3 times in a row before its model was loaded "
                                        "(last: signal 11 (SIGSEGV)): not restarting it")
    assert after[0].state == "restarting", after[0].message


def test_a_step_that_always_fails_restarts_the_worker_with_backoff_not_twelve_times_a_second(tmp_path,
                                                                                              fast_checkpoint,
                                                                                              speech_wav, peer):
    config = show_config(tmp_path, fast_checkpoint, peer, audio={"realtime": True}, supervisor={"max_restarts": 2})
    pipeline = Pipeline(config, input_spec=str(speech_wav), stt_loader=stt_always_failing)
    seen = Collector(pipeline)
    pipeline.start()
    until(lambda: seen.of(WorkerState, lambda s: s.state == "failed"))
    pipeline.stop()
    step_errors = seen.of(Status, lambda s: "speech recognition failed" in s.message)
    restarts = seen.of(WorkerState, lambda s: s.state == "restarting")
    assert restarts and "repeated errors in its model step" in restarts[0].message
    assert len(step_errors) == 2 * 2  # two recovered step errors per process, then it gave up on it
    stats = seen.of(PipelineStats)
    assert stats[-1].dropped_blocks > 0  # audio while it was down: dropped and counted, never queued
    drops = seen.of(Status, lambda s: "dropped" in s.message)
    assert drops and "the speech engine was not running (loading or restarting)" in drops[0].message


def test_changing_a_model_setting_restarts_only_that_worker(tmp_path, fast_checkpoint, peer):
    config = show_config(tmp_path, fast_checkpoint, peer, brain={"model": "bundled"})
    engines = Engines(config, brain_loader=scripted_brain)
    try:
        engines.start()
        until(lambda: engines.stt.worker.ready and engines.brain.worker.ready)
        stt_pid, brain_pid = engines.stt.worker.pid, engines.brain.worker.pid
        engines.reconfigure(show_config(tmp_path, fast_checkpoint, peer, brain={"model": "bundled", "vibe": "dusk"}))
        assert (engines.stt.worker.pid, engines.brain.worker.pid) == (stt_pid, brain_pid)  # no reload
        assert engines.brain.config.vibe == "dusk"
        engines.reconfigure(show_config(tmp_path, fast_checkpoint, peer, brain={"model": "bundled", "n_ctx": 1024}))
        until(lambda: engines.brain.worker.ready and engines.brain.worker.pid != brain_pid)  # (in the background)
        assert engines.stt.worker.pid == stt_pid
        assert not alive(brain_pid)
        engines.reconfigure(show_config(tmp_path, fast_checkpoint, peer, brain={"model": "bundled", "n_ctx": 1024},
                                        stt={"model": str(fast_checkpoint), "dtype": "f32"}))
        until(lambda: engines.stt.worker.ready and engines.stt.worker.pid != stt_pid)
        assert not alive(stt_pid)
    finally:
        engines.close()
    assert not children(os.getpid())


def test_start_stop_start_keeps_the_models_loaded(tmp_path, fast_checkpoint, speech_wav, peer):
    config = show_config(tmp_path, fast_checkpoint, peer)
    engines = Engines(config)
    controls = Controls(config, engines)
    try:
        for run in range(2):
            pipeline = Pipeline(config, controls=controls, input_spec=str(speech_wav))
            pipeline.start()
            assert pipeline.wait(WAIT)
            pipeline.stop()
            words = [e for e in drain(pipeline.events) if isinstance(e, Word)]
            assert words
            if run == 0:
                pid = engines.stt.worker.pid
        assert engines.stt.worker.pid == pid and engines.stt.worker.restarts == 0
    finally:
        controls.close()
        engines.close()
    loads = [e for e in drain(engines.events) if isinstance(e, WorkerState) and e.state == "loading"]
    assert not loads  # loading was reported during the first show only, none after


def headless_show(tmp_path: Path, checkpoint: Path, wav: Path) -> subprocess.Popen:
    """`voicevibe run --no-gui` on a realtime rehearsal, in its own process group (as in a terminal); the
    speech is repeated for two minutes, so the show is still on however long the models take to load."""
    speech, rate = soundfile.read(wav, dtype="float32")
    wav = tmp_path / "long.wav"
    soundfile.write(wav, numpy.tile(speech, -(-120 * rate // len(speech))), rate)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack
    with open(tmp_path / "out.txt", "w") as out:  # files, not pipes: nothing blocks the app on a full pipe
        return subprocess.Popen([sys.executable, "-m", "voicevibe", "run", "--no-gui", "--input", str(wav), "--model",
                                 str(checkpoint), "--osc", "127.0.0.1:9", "--set", "brain.model=bundled",
                                 "--set", f"session.log_dir={json.dumps(str(tmp_path))}"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default disposition, as a terminal gives it: a test suite started in the background by a
    non-interactive shell (`make test &`) ignores SIGINT, and Python then installs no Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


MODEL_LIBRARIES = ("libmlx", "rustymimi", "libllama")


def libraries(pid: int) -> set[str]:
    """Which of the model libraries a process has mapped."""
    maps = mapped_files(pid)
    return {name for name in MODEL_LIBRARIES if any(name in path for path in maps)}


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_ctrl_c_or_kill_9_of_the_main_process_leaves_no_worker(how, tmp_path, fast_checkpoint, speech_wav):
    show = headless_show(tmp_path, fast_checkpoint, speech_wav)
    try:
        workers = until(lambda: children(show.pid) if len(children(show.pid)) == 2 else None)
        # Each model's libraries live in its worker; the main process never maps one.
        until(lambda: set().union(*(libraries(pid) for pid in workers)) == set(MODEL_LIBRARIES))
        assert not libraries(show.pid)
        if how == "ctrl-c":
            os.killpg(show.pid, signal.SIGINT)  # what a terminal sends: the whole foreground group
        else:
            os.kill(show.pid, signal.SIGKILL)
        try:
            show.wait(WAIT)
        except subprocess.TimeoutExpired:
            show.send_signal(signal.SIGABRT)  # where it hangs, for the failure message
            show.wait(WAIT)
        until(lambda: not any(alive(pid) for pid in workers), timeout=30)
    finally:
        if show.poll() is None:
            show.kill()
            show.wait()
    stderr = (tmp_path / "out.txt").read_text(errors="replace")
    if how == "ctrl-c":
        assert show.returncode == 130 and "Traceback" not in stderr, stderr
    else:
        assert show.returncode == -signal.SIGKILL


def test_mapped_libraries_are_found_with_psutil_and_with_lsof_alike() -> None:
    """The two ways `libraries` reads a process's maps (psutil on Linux, lsof on macOS) agree on shared libraries."""
    def shared(paths: set[str]) -> set[str]:
        return {Path(p).name for p in paths if ".so" in Path(p).name}

    by_psutil, by_lsof = mapped_files(os.getpid(), lsof=False), mapped_files(os.getpid(), lsof=True)
    assert any("numpy" in p for p in by_psutil)
    assert shared(by_psutil) == shared(by_lsof) != set()
