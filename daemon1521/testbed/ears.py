"""What a test caller heard: the 1521 prompts recognised in a phone's audio."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from daemon1521.audio.prompts import PromptLibrary
from daemon1521.audio.say_fa import NUMBER_PROMPTS, PAUSE
from daemon1521.emulator.recognizer import Heard, PromptRecognizer
from daemon1521.ivr import flow1521
from daemon1521.telebank import leg

SAMPLE_RATE = 8000
TAIL_SECONDS = 3.0
"""Room around a prompt when looking for it at the end of what was heard."""
FULL_LENGTH = 0.85
"""Share of a prompt's length that sound must have lasted for a broken match to count."""
SILENCE_PEAK = 300
"""Received samples below this are silence (about -40 dBFS; prompts are far louder)."""
FLOW_PHRASES = (*flow1521.PROMPTS, *leg.PROMPTS)
_DIGIT = re.compile(r"(?:bank_)?[dn]([0-9])")


class Ears:
    """Recognises the 1521 prompts in a phone's audio, and the prompts of any
    ``other`` voice the caller may hear (the telephone bank's, through the relay).

    Prompts with identical audio (the digit ``d5`` and the number word ``n5``)
    cannot be told apart; each sound is given one name, the first of its
    kind, and :meth:`canonical` maps any name to it, so expectations compare.
    """

    def __init__(self, prompts: PromptLibrary, other: Sequence[PromptLibrary] = ()) -> None:
        self.catalog = prompts.catalog
        names = [*FLOW_PHRASES, *(n for n in NUMBER_PROMPTS if n != PAUSE)]
        library = dict.fromkeys(names, prompts)
        phrases = list(FLOW_PHRASES)
        for voice in other:
            for name in voice.catalog.names():
                if name not in library and voice.samples(name).any():  # pauses are silent
                    library[name] = voice
                    names.append(name)
                    phrases.append(name)
        self._library = library
        self._alias: dict[str, str] = {}
        seen: dict[bytes, str] = {}
        recordings: dict[str, np.ndarray] = {}
        for name in names:
            samples = library[name].samples(name)
            key = samples.tobytes()
            first = seen.setdefault(key, name)
            self._alias[name] = first
            if first == name:
                recordings[name] = samples
        self.recordings: Mapping[str, np.ndarray] = recordings
        self.phrases: Mapping[str, np.ndarray] = {
            name: recordings[name] for name in phrases if name in recordings
        }
        self._recogniser = PromptRecognizer(recordings)
        # one small recogniser per phrase, built now: building one takes long
        # enough to starve a line if it happened during a call
        self._single = {name: PromptRecognizer({name: rec}) for name, rec in self.phrases.items()}

    def canonical(self, names: Iterable[str]) -> list[str]:
        """Names as the recogniser reports them (silent pauses dropped)."""
        return [self._alias[n] for n in names if n != PAUSE]

    def heard(self, audio: np.ndarray, unknown: bool = False) -> list[Heard]:
        """Every prompt recognised in ``audio``, in order (times in seconds from its
        start); with ``unknown``, sound that matched no prompt too (name None)."""
        return [h for h in self._recogniser.transcribe(audio) if h.name is not None or unknown]

    def ends_with(self, prompt: str, audio: np.ndarray) -> bool:
        """Whether ``audio`` ends with ``prompt`` played to its end (then silence).

        Looks for that one prompt over a window just long enough to hold it,
        quick enough to run while a call goes on. A prompt whose match broke
        off (a gap where the line ran dry) still counts when sound went on
        for its whole length.
        """
        name = self._alias[prompt]
        recording = self.recordings[name]
        recogniser = self._single[name]
        window = audio[-(len(recording) + round(TAIL_SECONDS * SAMPLE_RATE)) :]
        heard = [h for h in recogniser.transcribe(window) if h.name is not None]
        loud = np.flatnonzero(np.abs(window.astype(np.int32)) > SILENCE_PEAK)
        if not heard or not len(loud):
            return False
        last = heard[-1]
        sound_end = (int(loud[-1]) + 1) / SAMPLE_RATE
        if sound_end - last.end > TAIL_SECONDS / 2 and last.complete:
            return False  # something else was heard after it
        played = sound_end - last.start
        return last.complete or played >= FULL_LENGTH * len(recording) / SAMPLE_RATE

    def spotter(self, prompts: Sequence[str]) -> Callable[[np.ndarray], list[str]]:
        """A function naming which of ``prompts`` a stretch of audio holds, in order
        (played in full, or nearly: see :meth:`ends_with`): a recogniser of those
        few only, quick enough to run during a call. Build it before the calls:
        building takes a while."""
        given = {self._alias[name]: name for name in reversed(prompts)}
        recogniser = PromptRecognizer({name: self.recordings[name] for name in given})
        least = {name: FULL_LENGTH * len(self.recordings[name]) / SAMPLE_RATE for name in given}

        def spot(audio: np.ndarray) -> list[str]:
            return [
                given[h.name]
                for h in recogniser.transcribe(audio)
                if h.name is not None and (h.complete or h.end - h.start >= least[h.name])
            ]

        return spot

    def text(self, name: str) -> str:
        return self._library[name].catalog.text(name)

    @staticmethod
    def digit(name: str) -> str | None:
        """The digit a single-digit prompt says (1521's or the bank's), else None."""
        match = _DIGIT.fullmatch(name)
        return match.group(1) if match else None

    def is_number(self, name: str) -> bool:
        # the bank's digits are phrases of its own catalogue, but read like 1521's
        return self.digit(name) is not None or (
            self._library[name].catalog.entry(name).group == "number"
        )
