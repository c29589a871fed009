"""The chip's line side apart from audio: hook state, rings, caller ID, loop
break and polarity reversal, as the exchange signals them to the chip and the
chip reports them to the host.
"""

from __future__ import annotations

from daemon1521.emulator.line import CallerId
from daemon1521.emulator.modem import shielding
from daemon1521.emulator.modem.chipbase import guarded
from daemon1521.emulator.modem.progress import Progress

RING_RESET_SECONDS = 8.0
"""S1 (ring count) goes back to 0 after this long without a ring (V.250 S1)."""


class LineSideMixin:
    """Hook control and the line's signals for :class:`~.voicemodem.VoiceModem`."""

    @guarded()
    def ringing(self, on: bool) -> None:
        if not on or self._muted or self.off_hook:
            return
        self._alerting = True
        self._sregs[1] = min(255, self._sregs[1] + 1)
        if self.meter is not None:
            self.meter.on_ring()
        if self._ring_timer is not None:
            self._ring_timer.cancel()
        self._ring_timer = self.clock.call_later(RING_RESET_SECONDS, self._ring_reset)
        if self._fclass == "8" and self.personality.voice.ring == "dle":
            self._write(shielding.event("R"))
        else:
            self._unsolicited("RING")
        rings = self._sregs[0]
        if rings and self._sregs[1] >= rings and self._mode == "command":
            self._auto_answer()

    @guarded()
    def caller_id(self, cid: CallerId) -> None:
        if self._muted or self._params["+VCID"] != ("1",):
            return
        fmt = self.personality.caller_id
        for name, value in fmt.requires.items():
            if self._params[name] != (value,):
                return
        if fmt.region_parameter and self.cid_scheme is not None:
            region = self._params[fmt.region_parameter][0]
            if fmt.regions.get(region) != self.cid_scheme:
                return
        self._write(self.format_caller_id(cid).encode("latin-1", "replace"))

    @guarded()
    def loop_break(self) -> None:
        if not self._muted and self._fclass == "8" and self.off_hook:
            self._event("l")

    @guarded()
    def polarity_reversal(self) -> None:
        if self._muted:
            return
        self._polarity_seen = True
        if self._fclass == "8" and self.off_hook:
            self._event("L")

    def format_caller_id(self, cid: CallerId) -> str:
        """The caller-ID block as this chip writes it."""
        fmt = self.personality.caller_id
        values: dict[str, str] = {
            "DATE": cid.when.strftime("%m%d"),
            "TIME": cid.when.strftime("%H%M"),
            "NMBR": cid.number or "",
        }
        if cid.name:
            values["NAME"] = cid.name
        if fmt.mesg:
            values["MESG"] = fmt.mesg
        if cid.status == "private":
            values.update(fmt.private)
        elif cid.status == "unavailable" or not cid.number:
            values.update(fmt.unavailable)
        if "NAME" in values and fmt.name_width:
            values["NAME"] = values["NAME"][: fmt.name_width].ljust(fmt.name_width)
        lines = [f"{key}{fmt.separator}{values[key]}" for key in fmt.order if key in values]
        return fmt.block_start + "".join(line + fmt.line_end for line in lines)

    # -- line -----------------------------------------------------------------------------

    def _lift(self) -> None:
        if self.line is None or self.line.off_hook:
            return
        self._reset_detectors()
        if self._alerting and self.personality.voice.ring_after_answer:
            # the chip's ring report lags the hook change (VOICE-MODEMS.md section 7)
            if self._fclass == "8" and self.personality.voice.ring == "dle":
                self._after_final.append(shielding.event("R"))
            elif not self._q:
                self._after_final.append(self._format_result("RING"))
        self._alerting = False
        if self.meter is not None:
            self.meter.on_off_hook()
        self.line.lift()

    def _hang_up(self) -> None:
        if "+VLS" in self._params:
            self._params["+VLS"] = self.personality.parameters["+VLS"].default
        if self.line is not None and self.line.off_hook:
            if self.meter is not None:
                self.meter.on_hang_up()
            self.line.hang_up()
        self._reset_detectors()

    def _reset_detectors(self) -> None:
        self._dtmf.reset()
        self._tone.reset()
        self._cadence.reset()
        self._rx_count = 0
        self._held: tuple[str, int] | None = None
        self._progress: list[Progress] = []
        self._polarity_seen = False
        self._silence_reset()

    def _ring_reset(self) -> None:
        self._ring_timer = None
        self._sregs[1] = 0
        self._alerting = False
