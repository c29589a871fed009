"""The emulated bank's voice: its own prompt catalogue and WAVs (``bankvoice/fa-bank/``).

Synthesised like the 1521 prompts but lower and slower, and kept apart from
them, so that what a caller heard from the bank and from 1521 can be told
apart. Regenerate after editing the catalogue:
``python -m daemon1521.emulator.bank_voice``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.audio.synth import SynthReport, SynthSettings, synthesise

LANGUAGE = "fa-bank"
ROOT = Path(__file__).resolve().parent / "bankvoice"
SETTINGS = SynthSettings(voice="fa", pitch=22, speed=150)


def bank_catalog() -> PromptCatalog:
    # uploads never apply to the emulated bank: point them at its own directory
    return PromptCatalog(LANGUAGE, defaults_dir=ROOT, uploads_dir=ROOT / "no-uploads")


@functools.cache
def bank_voice() -> PromptLibrary:
    """The bank's prompts, read once per process."""
    return PromptLibrary(bank_catalog())


def synthesise_bank_voice() -> SynthReport:
    return synthesise(bank_catalog(), settings=SETTINGS)


if __name__ == "__main__":
    report = synthesise_bank_voice()
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged")
