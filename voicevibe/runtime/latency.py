"""Per-stage latency of a session's prompts: phrase close -> brain -> OSC, from their monotonic stamps."""

from __future__ import annotations

import dataclasses
import statistics
import threading

from voicevibe.events import ImagePrompt


@dataclasses.dataclass(frozen=True)
class StageStats:
    """Latency of one pipeline stage over a session, in milliseconds."""

    name: str
    count: int
    median_ms: float
    p95_ms: float
    max_ms: float


STAGES = ("phrase close -> brain start", "brain compute", "brain end -> OSC sent", "phrase close -> OSC sent")


def _p95(ordered: list[float]) -> float:
    """95th percentile, nearest rank, of a sorted list."""
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class LatencyStats:
    """Per-stage latencies from the prompts' monotonic stamps and their OSC send times; thread-safe."""

    def __init__(self) -> None:
        self._samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.prompts = 0
        self.unsent = 0  # held by freeze, blocked by panic, or every target failed
        self._lock = threading.Lock()

    def add(self, prompt: ImagePrompt, sent_at: float | None) -> None:
        """Count one prompt; a zero stamp means unknown and leaves that stage out."""
        closed, start, end = prompt.phrase_closed_at, prompt.brain_start, prompt.brain_end
        spans = {STAGES[0]: (closed, start), STAGES[1]: (start, end),
                 STAGES[2]: (end, sent_at or 0.0), STAGES[3]: (closed, sent_at or 0.0)}
        with self._lock:
            self.prompts += 1
            if sent_at is None:
                self.unsent += 1
            for stage, (begin, finish) in spans.items():
                if begin > 0 and finish >= begin:
                    self._samples[stage].append(finish - begin)

    def stages(self) -> list[StageStats]:
        """One entry per stage that has samples."""
        with self._lock:
            samples = {stage: sorted(values) for stage, values in self._samples.items() if values}
        return [StageStats(stage, len(v), statistics.median(v) * 1e3, _p95(v) * 1e3, v[-1] * 1e3)
                for stage, v in samples.items()]

    def summary(self) -> str:
        """A few aligned lines for the terminal at exit; "no prompts" when there were none."""
        if not self.prompts:
            return "latency: no prompts"
        title = f"latency (ms) over {self.prompts} prompt(s)"
        width = max(len(title), *(len(s) for s in STAGES))
        lines = [f"{title:<{width}}  {'count':>6}  {'median':>8}  {'p95':>8}  {'max':>8}"]
        for s in self.stages():
            lines.append(f"{s.name:<{width}}  {s.count:>6}  {s.median_ms:>8.1f}  {s.p95_ms:>8.1f}  {s.max_ms:>8.1f}")
        if self.unsent:
            lines.append(f"{self.unsent} prompt(s) not sent (freeze, panic or no target reachable)")
        return "\n".join(lines)
