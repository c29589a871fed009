"""The line meter's bookkeeping, driven by hand with a fake clock."""

from __future__ import annotations

from daemon1521.emulator.meter import LineMeter


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answer_latencies_from_the_configured_ring():
    t = FakeTime()
    meter = LineMeter(answer_ring=2, now=t)
    meter.on_ring()
    t.now += 5.0
    meter.on_ring()
    t.now += 0.04
    meter.on_off_hook()
    t.now += 0.01
    meter.on_stream_audio()
    figures = meter.figures
    assert round(figures.ring_to_off_hook[0], 3) == 0.04
    assert round(figures.off_hook_to_audio[0], 3) == 0.01
    assert round(figures.ring_to_audio[0], 3) == 0.05


def test_a_key_is_answered_once_and_a_barge_in_timed_to_the_stop():
    t = FakeTime()
    meter = LineMeter(now=t)
    meter.on_key()
    t.now += 0.008
    meter.on_stream_audio()  # the answer to the key
    t.now += 1.0
    meter.on_key()  # during that prompt: a barge-in
    t.now += 0.005
    meter.on_stream_stopped()
    t.now += 0.007
    meter.on_stream_audio()  # the next prompt
    meter.on_stream_stopped()
    meter.on_stream_audio()  # a prompt after a prompt: no key to answer
    figures = meter.figures
    assert [round(x, 3) for x in figures.key_to_prompt] == [0.008, 0.012]
    assert [round(x, 3) for x in figures.barge_in_stop] == [0.005]


def test_a_dry_spell_counts_only_when_audio_follows():
    meter = LineMeter()
    meter.on_stream_audio()
    meter.on_starved(40, new=True)
    meter.on_starved(160, new=False)
    meter.on_resumed()
    meter.on_starved(60, new=True)
    meter.on_stream_stopped()  # the prompt's last frame was short: not a gap
    figures = meter.figures
    assert (figures.underruns, figures.underrun_samples, figures.tails) == (1, 200, 1)


def test_keys_and_streams_while_the_call_is_relayed_are_counted_apart():
    t = FakeTime()
    meter = LineMeter(now=t)
    meter.on_key()  # the key that accepts the payment: the host answers it
    t.now += 0.01
    meter.relayed = True
    meter.on_stream_audio()  # the host's "connecting" prompt, in the relayed stretch
    meter.on_stream_stopped()
    meter.on_key()  # a card digit: the bank answers it, through the relay
    t.now += 1.5
    meter.on_stream_audio()
    meter.on_starved(80, new=True)
    meter.on_resumed()
    meter.on_key()  # during the bank's words
    t.now += 0.02
    meter.on_stream_stopped()
    meter.on_hang_up()  # the relay ends with the call
    assert not meter.relayed
    figures, relay = meter.figures, meter.relay_figures
    assert [round(x, 3) for x in figures.key_to_prompt] == [0.01]
    assert [round(x, 3) for x in relay.key_to_prompt] == [1.5]
    assert [round(x, 3) for x in relay.barge_in_stop] == [0.02]
    assert figures.barge_in_stop == []
    assert (figures.prompts, relay.prompts) == (0, 2)
    assert figures.underruns == 0
    assert (relay.underruns, relay.underrun_samples) == (1, 80)
