"""The brain on an OpenAI-compatible server: Ollama, llama.cpp's llama-server, LM Studio, `python -m llama_cpp.server`.

`ServerPromptModel` keeps the local model's contract (llm.PromptModel: raw JSON text for a
request; the Brain parses, checks and repairs it, or the fallback answers), over HTTP with
httpx. Every answer is streamed, in a thread of its own, so that the brain thread never waits
on the network: it looks at `should_stop()` every WAIT_STEP_SECONDS and, when a newer phrase
arrives or the time budget runs out, shuts the socket (the server stops at its next token) and
moves on. Nothing is retried within a phrase; after the server could not be reached, the next
try waits RETRY_SECONDS (the phrases in between get the fallback at once), and the first
answer after that says the server is back. The server's state goes to the operator as
Status("brain", ...) events from the brain thread.

What the server is asked, per `brain.server_output`: "text" (the default) asks no more than the
local brain asks its model: the same few-shot text on /v1/completions, opened up to the preset's
medium, and the scene and mood as plain text up to a stop sequence; the JSON around them is
written here (a schema grammar on llama-cpp-python's server checks all 262k tokens of Gemma's
vocabulary at every step: 10 s a prompt where the local brain takes 0.9 s). The structured
outputs (json_schema, json_object, grammar) send the chat message and hold the whole answer to
the prompt's JSON. Either way the answer is checked here too (schema.py).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from voicevibe.brain.assets import Assets, Example
from voicevibe.brain.prompting import (
    REPEAT_PENALTY,
    SUMMARY_HEAD,
    SUMMARY_MAX_TOKENS,
    Abandoned,
    BackendUnavailable,
    LoadedModel,
    PromptRequest,
    SummaryRequest,
    chat_messages,
    completion_text,
    summary_text,
)
from voicevibe.brain.schema import (
    SUMMARY_SCHEMA,
    checked_json,
    prompt_grammar,
    prompt_schema,
    summary_grammar,
    text_answer,
    text_summary,
)
from voicevibe.config import BrainConfig
from voicevibe.events import Status
from voicevibe.ratelimit import RateLimiter

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # httpx logs each request at INFO: a line per phrase

CONNECT_SECONDS = 2.0  # a host gone from the stage network costs at most this per try
PROBE_SECONDS = 5.0  # /v1/models and the one-token structured-output probe
REQUEST_CAP_SECONDS = 30.0  # no request outlives this, not even one nothing else stops (the warm-up)
WAIT_STEP_SECONDS = 0.02  # how often the brain thread looks at should_stop() while a request is in flight
RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0)  # waits before trying an unreachable server again; the last repeats
STATUS_SECONDS = 10.0  # "last answer" statuses at most this often (each one is also a session-log line)
TEXT = "text"  # brain.server_output: plain text on /v1/completions, the JSON written here
ANSWER_STOP = ["\n", '"}']  # a plain-text answer ends with its JSON object, or at the line's end


def api_base(url: str) -> str:
    """The server's API base URL: no trailing slash, and /v1 added when the URL has no path."""
    url = url.strip().rstrip("/")
    return url if urlsplit(url).path else f"{url}/v1"


class ServerError(BackendUnavailable):
    """The server answered with an error (HTTP status or an error in the stream)."""


class Unreachable(BackendUnavailable):
    """The server could not be reached, or the connection broke mid-answer."""


@dataclass
class _Reply:
    """What one request brought back (filled by its thread)."""

    text: str = ""
    status: int = 0
    streamed: bool = False  # server-sent events (else `text` is the whole body)
    finished: bool = False  # a finish_reason arrived: the answer is whole
    cut: bool = False  # ...and it was "length": the answer hit max_tokens
    error: BaseException | None = None


class _Call(threading.Thread):
    """One HTTP request in a thread of its own, so the brain thread can walk away from it at any moment."""

    def __init__(self, client: httpx.Client, method: str, path: str, body: dict[str, Any] | None,
                 timeout: httpx.Timeout) -> None:
        # Daemon: an abandoned request may still wait for the server's prompt evaluation; it must never
        # keep a process alive (the worker exits with os._exit anyway, `voicevibe prompt` would wait).
        super().__init__(name="brain-http", daemon=True)
        self.client, self.method, self.path, self.body, self.timeout = client, method, path, body, timeout
        self.reply = _Reply()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._cancelled = False
        self._response: httpx.Response | None = None

    def run(self) -> None:
        try:
            with self.client.stream(self.method, self.path, json=self.body, timeout=self.timeout) as response:
                with self._lock:
                    self._response = response
                    if self._cancelled:
                        return
                self.reply.status = response.status_code
                if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
                        "text/event-stream"):
                    self.reply.text = response.read().decode("utf-8", errors="replace")
                    return
                self.reply.streamed = True
                self._read_events(response)
        except (httpx.HTTPError, ValueError, OSError, BackendUnavailable) as e:
            self.reply.error = e
        finally:
            self.done.set()

    def _read_events(self, response: httpx.Response) -> None:
        """Server-sent events: `data: {chunk}` lines, then `data: [DONE]`; comments and blank lines skipped."""
        parts: list[str] = []
        for line in response.iter_lines():
            if self._cancelled:
                return
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if not isinstance(chunk, dict):
                raise ValueError("a stream chunk that is not a JSON object")
            if "error" in chunk:
                raise ServerError(f"the server's stream said: {str(chunk['error'])[:200]}")
            for choice in chunk.get("choices") or ():  # chat chunks carry a delta, completion chunks a text
                parts.append((choice.get("delta") or {}).get("content") or choice.get("text") or "")
                self.reply.finished |= bool(choice.get("finish_reason"))
                self.reply.cut |= choice.get("finish_reason") == "length"
        self.reply.text = "".join(parts)

    def cancel(self) -> None:
        """Walk away: a blocked read returns at once (the socket is shut), the server sees the client go."""
        with self._lock:
            self._cancelled = True
            response = self._response
        if response is None:
            return  # still connecting or waiting for headers: run() closes it as soon as they come
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:  # shutdown() wakes a recv() blocked in the other thread, where close() would not
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as e:  # already closed by the server or the reader: nothing left to stop
                log.debug("socket already closed: %s", e)


class ServerPromptModel:
    """A language model behind an OpenAI-compatible server; its methods run on the brain's thread."""

    def __init__(self, config: BrainConfig, examples: Sequence[Example], *, api_key: str = "") -> None:
        self.config, self.examples = config, tuple(examples)
        self.base_url = api_base(config.model)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=PROBE_SECONDS)
        self.served = ""  # the model name sent in requests, once known (brain.server_model or /v1/models)
        self.output = config.server_output if config.server_output != "auto" else TEXT
        self.reachable: bool | None = None  # None until the first contact
        self._prepared = False  # the served model was checked against /v1/models since the last contact
        self.last_ms = 0.0  # the last answer's time on the wire
        self._failures = 0
        self._retry_at = 0.0
        self._post: Callable[[object], None] = self._log_status  # until the brain thread attaches its own
        self._limiter = RateLimiter(STATUS_SECONDS)

    @property
    def name(self) -> str:
        """What ImagePrompt.model says: the served model and the endpoint."""
        return f"{self.served or self.config.server_model or 'server'} @ {self.base_url}"

    def attach(self, post: Callable[[object], None]) -> None:
        """Post the server's state as Status events from now on."""
        self._post = post

    def _log_status(self, status: object) -> None:
        if isinstance(status, Status):
            log.log(logging.INFO if status.level == "info" else logging.WARNING, "%s", status.message)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    # ---- the PromptModel contract --------------------------------------------------------------

    def generate(self, request: PromptRequest, should_stop: Callable[[], str]) -> str:
        """The answer's JSON text `{"style", "prompt", "mood"}`; Abandoned when `should_stop()` says so."""
        if self.output == TEXT:
            text, cut = self._complete(completion_text(request, self.examples), self.config.max_tokens, should_stop)
            return text_answer(request.style, text, cut=cut)
        messages = chat_messages(request, self.examples)
        return self._answer(messages, self.config.max_tokens, prompt_schema(request.style),
                            prompt_grammar(request.style), should_stop)

    def summarize(self, request: SummaryRequest, should_stop: Callable[[], str]) -> str:
        """The slow brain's JSON text `{"summary", "prompt"}`, from the same server."""
        if self.output == TEXT:
            text, _ = self._complete(summary_text(request), SUMMARY_MAX_TOKENS, should_stop)
            return text_summary(SUMMARY_HEAD + text)
        messages = [{"role": "user", "content": summary_text(request, open_answer=False) + "(answer with JSON only)"}]
        return self._answer(messages, SUMMARY_MAX_TOKENS, SUMMARY_SCHEMA, summary_grammar(request.style), should_stop)

    # ---- asking --------------------------------------------------------------------------------

    def _complete(self, prompt: str, max_tokens: int, should_stop: Callable[[], str]) -> tuple[str, bool]:
        """Plain text continuing `prompt` (/v1/completions), up to ANSWER_STOP: what a local model is asked;
        and whether max_tokens cut it."""
        body: dict[str, Any] = {"model": "", "prompt": prompt, "stream": True, "stop": ANSWER_STOP,
                                "temperature": self.config.temperature, "max_tokens": max_tokens,
                                "repeat_penalty": REPEAT_PENALTY}  # llama.cpp servers' own; others ignore it
        reply = self._ask("/completions", body, should_stop)
        return (reply.text if reply.streamed else _message_text(reply)), reply.cut

    def _ask(self, path: str, body: dict[str, Any], should_stop: Callable[[], str]) -> _Reply:
        """One answer's text from the server (the retry wait, preparing, timing and status around it)."""
        now = time.monotonic()
        if now < self._retry_at:
            raise Unreachable(f"brain server {self.base_url} unreachable: trying again in {self._retry_at - now:.1f} s")
        self.prepare(should_stop)
        body["model"] = self.served
        start = time.perf_counter()
        reply = self._request("POST", path, body, should_stop, REQUEST_CAP_SECONDS)
        self._check(reply)
        if reply.streamed and not reply.finished:
            raise ServerError("the server ended the answer early (another client's request pre-empted it?)")
        self._answered((time.perf_counter() - start) * 1000.0)
        return reply

    def _answer(self, messages: list[dict[str, str]], max_tokens: int, schema: dict[str, Any], grammar: str,
                should_stop: Callable[[], str]) -> str:
        body: dict[str, Any] = {"model": "", "messages": messages, "stream": True,
                                "temperature": self.config.temperature, "max_tokens": max_tokens}
        if self.output == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "strict": True, "schema": schema}}
        else:  # llama.cpp servers: its repeat penalty (llama-cpp-python's server defaults to 1.1, in-process 1.0)
            body["repeat_penalty"] = REPEAT_PENALTY
            if self.output == "json_object":
                body["response_format"] = {"type": "json_object", "schema": schema}
            else:
                body["grammar"] = grammar
        reply = self._ask("/chat/completions", body, should_stop)
        return checked_json(reply.text if reply.streamed else _message_text(reply))

    def prepare(self, should_stop: Callable[[], str] = lambda: "") -> None:
        """Learn the served model's name and the structured output the server takes (again after it was down)."""
        if not self._prepared:
            self.served = self._model_name(self.list_models(should_stop))
            self._prepared = True
        if not self.output:
            self.output = self.probe_output(should_stop)

    def list_models(self, should_stop: Callable[[], str] = lambda: "") -> list[str]:
        """The model ids the server lists at /v1/models."""
        reply = self._request("GET", "/models", None, should_stop, PROBE_SECONDS)
        self._check(reply)
        try:
            return [str(m["id"]) for m in json.loads(reply.text)["data"]]
        except (ValueError, KeyError, TypeError) as e:
            raise ServerError(f"{self.base_url}/models did not list models the OpenAI way ({type(e).__name__}): "
                              "is brain.model the server's /v1 base URL?") from e

    def _model_name(self, listed: list[str]) -> str:
        wanted = self.config.server_model
        if wanted:
            # Ollama lists "mistral-nemo:latest" for "mistral-nemo".
            if wanted in listed or f"{wanted}:latest" in listed:
                return wanted
            raise ServerError(f"the server at {self.base_url} has no model {wanted!r} (it lists: "
                              f"{', '.join(listed) or 'none'}): set brain.server_model to one of those"
                              " (Ollama: `ollama pull` it first)")
        if len(listed) == 1:
            return listed[0]
        raise ServerError(f"the server at {self.base_url} lists {len(listed)} models "
                          f"({', '.join(listed[:8]) or 'none'}): set brain.server_model to the one to use")

    def probe_output(self, should_stop: Callable[[], str] = lambda: "") -> str:
        """The structured output this server takes: json_schema if accepted, else json_object (one token each)."""
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
        tries = {"json_schema": {"type": "json_schema", "json_schema": {"name": "probe", "schema": schema}},
                 "json_object": {"type": "json_object", "schema": schema}}
        refusals = []
        for output, response_format in tries.items():
            body = {"model": self.served, "messages": [{"role": "user", "content": "Say ok in JSON."}],
                    "max_tokens": 1, "stream": False, "response_format": response_format}
            reply = self._request("POST", "/chat/completions", body, should_stop, PROBE_SECONDS)
            if reply.status == 200:
                log.debug("brain server %s takes %s structured output", self.base_url, output)
                return output
            refusals.append(f"{output}: {reply.status}")
        raise ServerError(f"the server at {self.base_url} took no structured output ({', '.join(refusals)}): "
                          "set brain.server_output (grammar for llama.cpp servers)")

    def _request(self, method: str, path: str, body: dict[str, Any] | None, should_stop: Callable[[], str],
                 cap_seconds: float) -> _Reply:
        """One request; the brain thread waits for it only while `should_stop()` says nothing."""
        timeout = httpx.Timeout(cap_seconds, connect=CONNECT_SECONDS)
        call = _Call(self.client, method, path, body, timeout)
        call.start()
        deadline = time.monotonic() + cap_seconds
        while not call.done.wait(WAIT_STEP_SECONDS):
            reason = should_stop()
            if reason or time.monotonic() > deadline:
                call.cancel()
                if reason:
                    raise Abandoned(reason)
                raise ServerError(f"brain server {self.base_url} gave no answer within {cap_seconds:g} s")
        error = call.reply.error
        if isinstance(error, (httpx.TransportError, OSError)) and not isinstance(error, httpx.ReadTimeout):
            self._unreachable(error)
        if isinstance(error, httpx.ReadTimeout):
            raise ServerError(f"brain server {self.base_url} went silent for {cap_seconds:g} s") from error
        if isinstance(error, BackendUnavailable):
            raise error
        if isinstance(error, ValueError):
            raise ValueError(f"the server's stream is not JSON events ({error})") from error
        if error is not None:  # any other httpx error (a bad encoding, redirects...): this answer is lost
            raise ServerError(f"brain server {self.base_url}: {type(error).__name__}: {error}") from error
        return call.reply

    def _check(self, reply: _Reply) -> None:
        """Raise ServerError for an HTTP error, saying what the operator can do about it."""
        if reply.status == 200:
            self._reached()
            return
        body = " ".join(reply.text.split())[:160]
        hint = {401: "; set brain.api_key_env to the variable holding the key",
                403: "; set brain.api_key_env to the variable holding the key",
                404: "; is brain.model the server's /v1 base URL, and brain.server_model a model it has?"}
        error = ServerError(f"brain server answered HTTP {reply.status}: {body}{hint.get(reply.status, '')}")
        self._reached()
        if self._limiter.allow(("status", reply.status)) is not None:
            self._post(Status("brain", str(error), "warning"))
        raise error

    # ---- the server's state, for the operator ---------------------------------------------------

    def _unreachable(self, error: BaseException) -> None:
        why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        wait = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + wait
        self._prepared = False  # the server that comes back may run another model, or be another server
        self.output = self.output if self.config.server_output != "auto" else TEXT
        if self.reachable is not False:
            self.reachable = False
            self._post(Status("brain", f"server {self.base_url} unreachable ({why}): fallback prompts until it "
                              "answers again", "error"))
        raise Unreachable(f"brain server {self.base_url} unreachable ({why})") from error

    def _reached(self, answered: str = "") -> None:
        """The server answered; the operator hears when it is (back) in reach, and the latency now and then."""
        self._failures = 0
        self._retry_at = 0.0
        if self.reachable is not True:
            back = " is back" if self.reachable is False else ""
            self.reachable = True
            self._limiter.allow("latency")  # the next latency report waits its turn
            self._post(Status("brain", f"server {self.name}{back}: reachable{answered}"))
        elif answered and self._limiter.allow("latency") is not None:
            self._post(Status("brain", f"server {self.name}: reachable{answered}"))

    def _answered(self, ms: float) -> None:
        self.last_ms = ms
        self._reached(f", last answer {ms:.0f} ms")


def _message_text(reply: _Reply) -> str:
    """The answer of a server that sent one JSON completion rather than a stream."""
    try:
        choice = json.loads(reply.text)["choices"][0]
        if "message" not in choice:  # a /v1/completions answer
            return str(choice["text"] or "")
        return str(choice["message"]["content"] or "")
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"the server's answer is no chat completion ({type(e).__name__})") from e


def api_key(config: BrainConfig) -> tuple[str, str]:
    """(the API key from the environment variable brain.api_key_env names, a note when it is missing)."""
    if not config.api_key_env:
        return "", ""
    key = os.environ.get(config.api_key_env, "")
    note = "" if key else (f"brain.api_key_env names {config.api_key_env}, but no such environment variable is "
                           "set: asking the server without a key")
    return key, note


def connect_server(config: BrainConfig, assets: Assets) -> LoadedModel:
    """The brain's loader for a server URL: a LoadedModel, with a note when the server cannot be used yet.

    A server that is down is not a failure: the show starts on fallback prompts and the model
    answers once the server does.
    """
    from voicevibe.brain.prompting import LoadedModel

    key, note = api_key(config)
    model = ServerPromptModel(config, assets.examples, api_key=key)
    try:
        model.prepare()
    except BackendUnavailable as e:
        note = "; ".join(n for n in (note, f"{e}; fallback prompts until it answers") if n)
    return LoadedModel(model, note)
