"""What a caller feels, measured at the emulated modem: ground truth at the line.

A :class:`LineMeter` hangs on one emulated modem (``modem.meter``) and notes,
in real seconds (``time.monotonic``), the moments the chip itself sees: a
ring, the host taking the line off hook, a key event handed to the host, the
first audio byte of each transmit stream, the transmit buffer running dry in
the middle of a prompt, and a prompt stopped early. Nothing here reads the
daemon's logs, so the figures hold whatever the host software is.

A key is answered by the next transmit stream that starts after it: the
last key before a new prompt is the one that ended the caller's input (the
``#``, the yes/no key), and each key is answered at most once, so a prompt
that follows another prompt (not a key) is not counted. A key that arrives
while a prompt plays is a barge-in; the meter times it to the moment the
playback stopped (buffer cleared or stream ended). Prompts that ignore keys
would count their remaining length there, so load scripts only press keys
where the flow allows barge-in.

A call can also be relayed to a third party: the daemon's bank leg plays the
telephone bank's words on this line and passes the caller's keys on to it.
Keys then are answered by the bank, not by the host's prompts. The chip
cannot tell, so whoever knows (the test bed's caller, talking to the bank)
sets :attr:`LineMeter.relayed` for that stretch of the call: keys pressed
meanwhile, the streams that start meanwhile and their underruns go to
:attr:`LineMeter.relay_figures`, not to the host's :attr:`LineMeter.figures`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RING_GAP = 8.0
"""Seconds without a ring after which the next ring starts a new call."""


@dataclass
class MeterFigures:
    """Samples gathered by the meters of a site (seconds unless named)."""

    key_to_prompt: list[float] = field(default_factory=list)
    barge_in_stop: list[float] = field(default_factory=list)
    ring_to_off_hook: list[float] = field(default_factory=list)
    ring_to_audio: list[float] = field(default_factory=list)
    off_hook_to_audio: list[float] = field(default_factory=list)
    underruns: int = 0
    underrun_samples: int = 0
    """Samples of silence the chip had to play because the host sent too little."""
    tails: int = 0
    """Prompts whose last frame ran short and then ended: silence after the
    prompt, not a gap in it, so not an underrun."""
    underruns_behind: int = 0
    """Of the underruns, those while the test bed itself lagged real time: it then
    plays frames in a burst to catch up, faster than any host paces its audio."""
    prompts: int = 0
    """Transmit streams that carried audio (prompts, or parts of one)."""

    def to_json(self) -> dict[str, Any]:
        """The figures as plain JSON values, to send from a test-bed process."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeterFigures:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def merge(self, other: MeterFigures) -> None:
        self.key_to_prompt += other.key_to_prompt
        self.barge_in_stop += other.barge_in_stop
        self.ring_to_off_hook += other.ring_to_off_hook
        self.ring_to_audio += other.ring_to_audio
        self.off_hook_to_audio += other.off_hook_to_audio
        self.underruns += other.underruns
        self.underrun_samples += other.underrun_samples
        self.underruns_behind += other.underruns_behind
        self.tails += other.tails
        self.prompts += other.prompts


class LineMeter:
    """One modem's measurements; the chip calls the ``on_*`` hooks."""

    def __init__(
        self,
        answer_ring: int = 2,
        now: Callable[[], float] = time.monotonic,
        behind: Callable[[], bool] = lambda: False,
    ) -> None:
        self.answer_ring = answer_ring
        """The ring on which the host is configured to answer (its ``rings``)."""
        self._now = now
        self._behind = behind
        self.figures = MeterFigures()
        self.relay_figures = MeterFigures()
        """What happened while the call was relayed: keys to the third party's
        answer, its streams and their underruns (ring figures stay empty)."""
        self.relayed = False
        """The call is relayed to a third party now (set from outside; see the module)."""
        self._rings: list[float] = []
        self._lifted_at: float | None = None
        self._answer_key_at: float | None = None
        self._answer_key_relayed = False
        self._barge_at: float | None = None
        self._barge_relayed = False
        self._playing = False
        self._stream_relayed = False
        self._gap = (0, 0, False)  # a dry spell not yet known to be mid-prompt

    # -- hooks the chip calls ---------------------------------------------------

    def on_ring(self) -> None:
        now = self._now()
        if self._rings and now - self._rings[-1] > RING_GAP:
            self._rings.clear()
        self._rings.append(now)

    def on_off_hook(self) -> None:
        now = self._now()
        if len(self._rings) >= self.answer_ring:
            self.figures.ring_to_off_hook.append(now - self._rings[self.answer_ring - 1])
            self._lifted_at = now
        self._rings.clear()
        self._answer_key_at = self._barge_at = None

    def on_key(self) -> None:
        """A key-down event was handed to the host."""
        now = self._now()
        self._answer_key_at = now
        self._answer_key_relayed = self.relayed
        if self._playing and self._barge_at is None:
            self._barge_at = now
            self._barge_relayed = self.relayed

    def on_stream_audio(self) -> None:
        """The first audio byte of a transmit stream arrived from the host."""
        now = self._now()
        self._playing = True
        self._stream_relayed = self.relayed
        self._figures(self._stream_relayed).prompts += 1
        if self._answer_key_at is not None:
            answered = self._figures(self._answer_key_relayed)
            answered.key_to_prompt.append(now - self._answer_key_at)
        self._answer_key_at = None
        if self._lifted_at is not None and self.figures.ring_to_off_hook:
            self.figures.off_hook_to_audio.append(now - self._lifted_at)
            ring = now - self._lifted_at + self.figures.ring_to_off_hook[-1]
            self.figures.ring_to_audio.append(ring)
            self._lifted_at = None

    def on_stream_stopped(self) -> None:
        """Playback stopped: the buffer was cleared, or the stream ended."""
        if self._gap[0]:
            self.figures.tails += 1
        self._gap = (0, 0, False)
        if not self._playing:
            return
        self._playing = False
        if self._barge_at is not None:
            stop = self._now() - self._barge_at
            self._figures(self._barge_relayed).barge_in_stop.append(stop)
            self._barge_at = None

    def on_starved(self, samples: int, new: bool) -> None:
        """A frame lacked ``samples`` samples; ``new``: a dry spell begins. It is
        an underrun only if audio follows (:meth:`on_resumed`); a prompt that
        ends instead just ran out at its end."""
        count, missing, behind = self._gap
        if new:
            count, behind = count + 1, behind or self._behind()
        self._gap = (count, missing + samples, behind)

    def on_resumed(self) -> None:
        """Audio flows again after a dry spell: that was a gap the caller heard."""
        count, missing, behind = self._gap
        figures = self._figures(self._stream_relayed)
        figures.underruns += count
        figures.underrun_samples += missing
        if behind:
            figures.underruns_behind += count
        self._gap = (0, 0, False)

    def _figures(self, relayed: bool) -> MeterFigures:
        return self.relay_figures if relayed else self.figures

    def on_hang_up(self) -> None:
        self._gap = (0, 0, False)
        self._playing = False
        self.relayed = False  # the relay ends with the call
        self._answer_key_at = self._barge_at = self._lifted_at = None
