"""Signal processing at the bottom: codecs, DTMF and tone detectors and generators.

Shared by the modem driver and the emulator; knows samples, not modems or prompts.
"""
