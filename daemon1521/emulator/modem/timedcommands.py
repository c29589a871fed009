"""Commands that take emulated time, run as generators stepped once per frame:
the pump that steps them, ``+VTS`` tones, hook flash, data-mode answer, and
``ATD`` dialling with its call-progress listening and auto-answer.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from daemon1521.dsp.dtmf import dtmf_tone
from daemon1521.dsp.tones import tone
from daemon1521.emulator.clock import FRAME, FRAME_SECONDS, RATE
from daemon1521.emulator.modem.chipbase import Proc
from daemon1521.emulator.modem.vts import ToneStep


class TimedCommandsMixin:
    """Timed commands, dialling and call progress for :class:`~.voicemodem.VoiceModem`."""

    # -- timed commands -------------------------------------------------------------

    def _start_proc(self, proc: Proc, abortable: bool) -> None:
        self._proc = proc
        self._proc_abortable = abortable
        self._mode = "proc"
        self._arm_pump()

    def _arm_pump(self) -> None:
        if self._pump_timer is None or self._pump_timer.cancelled:
            self._pump_timer = self.clock.call_later(FRAME_SECONDS, self._pump)

    def _pump(self) -> None:
        """Step the running command once per frame (after the tick's audio)."""
        self._pump_timer = None
        proc = self._proc
        if proc is None:
            return
        if not self.off_hook and len(self._tone_out):
            self._tone_out = self._tone_out[FRAME:]  # played to the local speaker
        try:
            next(proc)
        except StopIteration as stop:
            self._finish_proc(stop.value)
            return
        except Exception as exc:
            self._fault("timed command", exc)
            self._finish_proc("ERROR")
            return
        self._arm_pump()

    def _cancel_proc(self) -> None:
        proc, self._proc = self._proc, None
        self._proc_abortable = False
        self._keying = False
        if proc is not None:
            proc.close()
        if self._pump_timer is not None:
            self._pump_timer.cancel()
            self._pump_timer = None

    def _finish_proc(self, result: str) -> None:
        self._cancel_proc()
        self._mode = "command"
        self._tone_out = np.zeros(0, dtype=np.int16)
        if result == "OK":
            self._run_queue()
        else:
            self._queue.clear()
            self._final(result)
        self._process()
        self._wake_reader()

    def _abort_proc(self) -> None:
        self._cancel_proc()
        self._mode = "command"
        self._tone_out = np.zeros(0, dtype=np.int16)
        self._hang_up()
        self._queue.clear()
        self._final("NO CARRIER")

    def _frames(self, seconds: float) -> Generator[None, None, None]:
        for _ in range(self.clock.frames(seconds)):
            yield

    def _play(self, samples: np.ndarray) -> Generator[None, None, None]:
        self._tone_out = np.concatenate((self._tone_out, samples.astype(np.int16)))
        while len(self._tone_out):
            yield

    def _vts_proc(self, steps: list[ToneStep], gap: float) -> Proc:
        level = self.personality.call_progress.dtmf_level_dbm0
        for step in steps:
            if step.kind == "flash":
                yield from self._flash(step.seconds)
            elif step.kind == "dtmf":
                audio = dtmf_tone(step.key, step.seconds, level_dbm0=level)
                silence = np.zeros(round(gap * RATE), dtype=np.int16)
                yield from self._play(np.concatenate((audio, silence)))
            else:
                yield from self._play(tone(step.freqs, step.seconds))
        return "OK"

    def _flash(self, seconds: float) -> Generator[None, None, None]:
        """A hook flash: on hook for ``seconds``, then off hook again."""
        if self.line is None or not self.line.off_hook:
            yield from self._frames(seconds)
            return
        self.line.hang_up()
        yield from self._frames(seconds)
        self._lift()

    def _data_answer_proc(self) -> Proc:
        # No data modulation is emulated: no carrier ever comes.
        yield from self._frames(self._sregs[7])
        self._hang_up()
        return "NO CARRIER"

    def _wait_dialtone(self) -> Generator[None, None, bool]:
        cp = self.personality.call_progress
        waited = 0.0
        while self._cadence.on_for(self._rx_count) < cp.dialtone_min:
            if waited >= cp.dialtone_wait:
                return False
            yield
            waited += FRAME_SECONDS
        return True

    def _dial_proc(self, steps: tuple[str, ...], semicolon: bool, voice: bool) -> Proc:
        """ATD: dial tone, DTMF digits, then call progress.

        The rule: with X2/X4 wait for dial tone (else NO DIALTONE), with
        X0/X1/X3 wait S6 seconds; key each digit as S11 ms of DTMF and S11 ms
        of silence. A data-mode ``ATD...;`` ends there with OK. Then listen:
        busy (or congestion) -> BUSY (X3/X4); ringback seen and then silent
        for +VRA x 0.1 s (+VRA=0: at the first ringback), or no ringback at
        all within +VRN seconds, or a polarity reversal -> answered (voice:
        the chip's answered result, line kept; data: NO CARRIER, as no data
        carrier is emulated); still undecided after S7 seconds -> NO ANSWER
        (voice) / NO CARRIER (data). Failures put the line on hook.
        """
        if not self.off_hook:
            self._lift()
        # the dial tone ending at the first digit is no ringback: report no
        # call-progress tones until the number is out
        self._keying = True
        yield
        if self._x in (2, 4):
            if not (yield from self._wait_dialtone()):
                self._hang_up()
                return self.personality.results.no_dialtone
        else:
            yield from self._frames(self._sregs[6])
        s11 = self._sregs[11] / 1000
        level = self.personality.call_progress.dtmf_level_dbm0
        for step in steps:
            if step == ",":
                yield from self._frames(self._sregs[8])
            elif step == "W":
                if not (yield from self._wait_dialtone()):
                    self._hang_up()
                    return self.personality.results.no_dialtone
            elif step == "!":
                yield from self._flash(self.personality.voice.vts.flash_ms / 1000)
            else:
                audio = dtmf_tone(step, s11, level_dbm0=level)
                yield from self._play(np.concatenate((audio, np.zeros_like(audio))))
        self._keying = False
        if semicolon and not voice:
            return "OK"
        return (yield from self._call_progress(voice))

    def _call_progress(self, voice: bool) -> Proc:
        start = self.clock.now()
        self._progress.clear()
        self._polarity_seen = False
        vra = int(self._params["+VRA"][0]) * 0.1
        vrn = int(self._params["+VRN"][0])
        if voice and vrn == 0:
            return self._answered(voice)
        ringback = False
        while True:
            yield
            events, self._progress = self._progress, []
            for event in events:
                if event.kind == "busy" and self._x in (3, 4):
                    self._hang_up()
                    return "BUSY"
                if event.kind == "ringback":
                    ringback = True
                    if vra == 0:
                        return self._answered(voice)
            if self._polarity_seen:
                return self._answered(voice)
            quiet = self._cadence.off_for(self._rx_count)
            elapsed = self.clock.now() - start
            if ringback and quiet is not None and quiet >= vra:
                return self._answered(voice)
            if not ringback and elapsed >= vrn and not self._cadence.on:
                return self._answered(voice)
            if elapsed >= self._sregs[7]:
                self._hang_up()
                return "NO ANSWER" if voice else "NO CARRIER"

    def _answered(self, voice: bool) -> str:
        if voice:
            return self.personality.results.voice_dial_answered
        self._hang_up()
        return "NO CARRIER"

    def _auto_answer(self) -> None:
        self._queue.clear()
        if self._fclass == "8":
            self._lift()
            self._final(self.personality.results.voice_answer)
            return
        self._lift()
        self._start_proc(self._data_answer_proc(), abortable=True)
