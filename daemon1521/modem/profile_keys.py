"""What each key of a firmware profile makes the driver do, for operators.

``daemon1521 modem profiles --json`` shows these next to each profile's
values; a test fails when a key has no entry here, or an entry no key.
"""

from __future__ import annotations

KEYS: dict[str, str] = {
    "name": "The profile's name, as lines.<n>.profile in the config names it.",
    "description": "One line shown by `modem profiles` and in the log.",
    "extends": "A profile this one inherits from: its tables merge key by key "
    "(match, name and description are never inherited).",
    "match.ati3": "Regular expressions searched in the ATI3 answer; the strongest "
    "evidence when the profile is chosen automatically.",
    "match.gmm": "Regular expressions searched in the AT+GMM answer (second evidence).",
    "match.gmi": "Regular expressions searched in the AT+GMI answer (weakest evidence).",
    "match.usb": "USB vendor:product ids (hex) that identify the family (third evidence).",
    "firmware.model_query": "The command whose answer states the model (ATI3, ATI7, AT+GMM...).",
    "firmware.model_pattern": "A regular expression whose first group is the model in that "
    "answer; empty takes the whole answer. Shown by `modem probe` and logged.",
    "firmware.version_query": "The command whose answer states the firmware version.",
    "firmware.version_pattern": "A regular expression whose first group is the version in "
    "that answer; empty takes the whole answer.",
    "firmware.minimum": "The oldest firmware version that works; an older one is logged as "
    "a warning at start-up and shown by `modem probe`.",
    "firmware.too_old": "What goes wrong with firmware older than the minimum, said in the "
    "warning.",
    "codecs.preference": "Sample formats in order of preference; the first the modem "
    "offers (AT+VSM=?) is used.",
    "codecs.rate": "Sample rate asked for with AT+VSM, and of the received audio.",
    "codecs.table": "Format -> +VSM code, trusted when the modem's listing is missing or "
    "names no format.",
    "codecs.query": "The command that lists the modem's codecs.",
    "codecs.select": "The command that selects one ({code}, {rate}).",
    "codecs.silence_u8": "The idle byte of the chip's 8-bit unsigned audio: prompts are "
    "moved onto it, and received audio centred on it before silence, tone and key detection.",
    "callerid.enable": "Commands that switch caller ID on, after every reset and hang-up.",
    "callerid.region_command": "The command that sets the caller-ID region ({code}); "
    "empty when the chip has none.",
    "callerid.regions": "Region name -> code for region_command.",
    "callerid.default_region": "The region used when the config names none.",
    "capabilities.silence_detection": "The chip honours +VSD: the driver sends "
    "commands.silence with the call's silence limit and takes DLE s / DLE q as the "
    "caller gone. False: silence is judged from the audio only.",
    "capabilities.full_duplex": "+VTR works: the modem can play and record at once "
    "(shown as full duplex; lets a relay of two lines use one stream each way).",
    "capabilities.hangup_events": "Which chip reports end a call: busy (two DLE b), "
    "loop_break (DLE l), dial_tone (DLE d). Others are judged from the audio.",
    "capabilities.dle_sub": "DLE SUB in received audio stands for two 0x10 bytes.",
    "capabilities.false_dle_d_during_play": "DLE d during playback is not taken as dial tone.",
    "capabilities.events_during_vrx": "False: the chip is mute while recording, so key "
    "presses are also detected in the recorded audio.",
    "commands.reset": "The reset command, first of every initialisation and recovery.",
    "commands.init": "Commands sent after the reset (echo, verbosity, voice mode, gains).",
    "commands.voice": "The voice-mode command, sent first after the reset unless init has it.",
    "commands.answer": "Commands that take the line off hook to answer.",
    "commands.hangup": "Commands that put the line back on hook.",
    "commands.dial": "Commands that dial out; one carries {number}.",
    "commands.play": "The command that starts a playback stream.",
    "commands.record": "The command that starts a recording stream.",
    "commands.duplex": "The command that starts a full-duplex stream, where full_duplex "
    "says it works.",
    "commands.tones": "The command that sends DTMF ({tones}), split to fit the command buffer.",
    "commands.flow_control": "Sent after init when the port uses RTS/CTS.",
    "commands.silence": "Sent after init where silence_detection is true ({interval} in "
    "0.1 s: the call's silence limit, 0 when longer than 25.5 s).",
    "pacing.chunk_ms": "Milliseconds of audio per write during playback.",
    "pacing.max_queued_ms": "Most audio ahead of the line during playback, so a key press "
    "cuts the prompt at once.",
    "pacing.transmit_buffer": "The chip's transmit buffer in bytes; never more is queued.",
    "pacing.receive_batch_ms": (
        "While only keys are awaited, received audio is taken at most this often "
        "(keys, as DLE codes, at once); 0 takes every chunk."
    ),
    "timeouts.command": "Seconds for an ordinary command's final result.",
    "timeouts.reset": "Seconds for the reset command.",
    "timeouts.answer": "Seconds for each answer command.",
    "timeouts.dial": "Seconds for dialling out, until the far end answers.",
    "timeouts.stream_start": "Seconds for CONNECT after play or record.",
    "timeouts.stream_end": "Seconds for the final result after a stream is ended.",
}
