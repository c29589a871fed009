"""The emulated caller's ears: which recordings were heard in received audio.

A test asks an emulated phone what the caller heard. The phone only has the
audio that reached it, so this module recognises known recordings (the
prompt catalog) in that audio: after a voice modem's codec, with silences of
any length, prompts back to back, prompts cut short by barge-in, and other
sounds (call-progress tones, DTMF) in between.

How: the audio and every recording are cut into 10 ms frames (20 ms Hann
windows) described by their levels in ten frequency bands and overall, in
dB with a floor, so codec noise and faint background do not count.
Recordings are described at four sub-frame offsets, so one of them lines up
within 1.25 ms with however the audio's frames fall. Scanning the audio, at
every frame with sound not yet accounted for, a prefilter (the first 40 ms,
level-normalised, one matrix product for the whole audio) and a quick check
(the first 200 ms, all candidates at once) pick candidate recordings and
alignments; each survivor is followed frame by frame (allowing up to 6 dB of
overall gain difference) until three frames in a row disagree. Of the
matches, complete or cut short after at least 0.3 s, the closest wins, but a
longer one nearly as close beats it (a recording that another begins with),
and complete beats cut short. The scan resumes where the match ended.
Sound that no recording explains is reported with ``name=None``.

Limits: background noise must stay below -45 dBm0 to count as silence;
recordings with less than 40 ms of sound are ignored (a silent "pause"
prompt, for one); recordings that sound the same, or a prompt cut within
the part it shares with another, are told apart arbitrarily.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from daemon1521.dsp.tones import DBM0_POWER

HOP = 80  # samples per frame step (10 ms at 8000 Hz)
WINDOW = 160  # analysis window
PHASES = 4  # sub-frame offsets each recording is described at
BAND_EDGES_HZ = (100, 300, 500, 700, 950, 1250, 1600, 2000, 2500, 3100, 3800)
#: A frame is sound when its power reaches this; quieter is silence.
SOUND_DBM0 = -45.0
#: Levels below this are all the same "nothing" to the comparison.
FLOOR_DBM0 = -55.0
#: Weight of the frame's overall level against one band's in frame distances.
LEVEL_WEIGHT = 3.0
#: Frames compared by the prefilter, and its RMS distance limit (dB).
PREFILTER_FRAMES = 4
PREFILTER_DB = 4.0
#: Frames compared, for all candidates at once, before following any; and
#: the mean distance over them (dB) a candidate must stay within.
QUICK_FRAMES = 20
QUICK_DB = 4.5
#: Alignments tried around a start frame.
ALIGN_SLACK = 2
#: A frame disagrees when its mean band difference exceeds this (dB) ...
FRAME_BAD_DB = 8.0
#: ... and a match ends at the first run of this many disagreeing frames.
BAD_RUN = 3
#: A match is possible when the mean difference over it is at most this (dB);
#: of those, the closest wins unless a longer one is within TIE_DB of it.
MATCH_DB = 2.5
TIE_DB = 0.5
#: Largest overall gain difference the comparison compensates (dB).
MAX_GAIN_DB = 6.0
#: How far back from the end of a cut-short match the next may begin (frames).
BACKTRACK = 10
#: A match ending this few frames short of a recording's end is complete.
END_SLACK = 2
#: A cut-short recording is reported when at least this much was heard.
MIN_PARTIAL_S = 0.3
#: Unexplained sound shorter than this is ignored (frame-edge leftovers).
MIN_UNKNOWN_FRAMES = 4


@dataclass(frozen=True)
class Heard:
    """One stretch of what the caller heard, in seconds from the audio's start.

    ``name`` is the recording, or None for sound that matches none. For a
    recording, ``start``/``end`` span the whole recording as played (its own
    leading and trailing silence included) when ``complete``; when it was cut
    short, ``end`` is where its sound stopped.
    """

    name: str | None
    start: float
    end: float
    complete: bool


@dataclass
class _Template:
    name: str
    phase: int  # samples of delay the frames were computed with
    lead: int  # index of the first sound frame in the delayed recording
    length: int  # sound frames, from the first to the last
    samples: int  # length of the recording
    bands: np.ndarray  # (length, bands) dB, floored
    level: np.ndarray  # (length,) frame power, dBm0
    loud: np.ndarray  # (length,) bool: frame well above silence


class _Features:
    """Band levels of 10 ms frames; frame t covers samples [t*HOP, t*HOP+WINDOW)."""

    def __init__(self, rate: int) -> None:
        scale = rate / 8000
        self.hop = round(HOP * scale)
        self.window = round(WINDOW * scale)
        self.fft_size = int(2 ** np.ceil(np.log2(self.window)))
        self.rate = rate
        self._taper = np.hanning(self.window + 2)[1:-1]
        freqs = np.fft.rfftfreq(self.fft_size, 1 / rate)
        edges = np.asarray(BAND_EDGES_HZ, dtype=np.float64)
        band = np.searchsorted(edges, freqs, side="right") - 1
        band[(freqs < edges[0]) | (freqs >= edges[-1])] = -1
        n_bands = len(edges) - 1
        # (bins, bands) 0/1 matrix, scaled so a band's value is mean signal power
        member = (band[:, None] == np.arange(n_bands)[None, :]).astype(np.float64)
        norm = 2.0 / (self.fft_size * float(np.sum(self._taper**2)))
        self._bands = member * norm
        self._total = np.full(len(freqs), norm)

    def __call__(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features and power (dBm0) per frame.

        Features are the band levels and then the overall level, in dBm0,
        floored at FLOOR_DBM0.
        """
        x = np.asarray(samples, dtype=np.float64).ravel()
        n_frames = -(-len(x) // self.hop)
        padded = np.zeros(n_frames * self.hop + self.window, dtype=np.float64)
        padded[: len(x)] = x
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.window)[
            : n_frames * self.hop : self.hop
        ]
        spec = np.fft.rfft(frames * self._taper, n=self.fft_size, axis=1)
        power = spec.real**2 + spec.imag**2
        with np.errstate(divide="ignore"):
            bands = 10 * np.log10(power @ self._bands / DBM0_POWER)
            level = 10 * np.log10(power @ self._total / DBM0_POWER)
        level = np.maximum(level, -200.0)
        feats = np.maximum(np.column_stack((bands, level)), FLOOR_DBM0)
        return feats.astype(np.float32), level.astype(np.float32)


class PromptRecognizer:
    """Recognises which of ``recordings`` (name -> int16 samples) were heard."""

    def __init__(self, recordings: Mapping[str, np.ndarray], rate: int = 8000) -> None:
        self.rate = rate
        self._features = _Features(rate)
        hop = self._features.hop
        self._templates: list[_Template] = []
        for name, rec in recordings.items():
            rec = np.asarray(rec).ravel()
            for p in range(PHASES):
                phase = p * hop // PHASES
                bands, level = self._features(np.concatenate((np.zeros(phase), rec)))
                sound = np.flatnonzero(level >= SOUND_DBM0)
                if len(sound) == 0:
                    break
                lead, last = int(sound[0]), int(sound[-1])
                if last - lead + 1 < PREFILTER_FRAMES:
                    break
                lvl = level[lead : last + 1]
                self._templates.append(
                    _Template(
                        name=name,
                        phase=phase,
                        lead=lead,
                        length=last - lead + 1,
                        samples=len(rec),
                        bands=bands[lead : last + 1],
                        level=lvl,
                        loud=lvl >= SOUND_DBM0 + 10,
                    )
                )
        n_bands = len(BAND_EDGES_HZ) - 1
        weights = np.ones(n_bands + 1, dtype=np.float32)
        weights[-1] = LEVEL_WEIGHT
        self._weights = weights / weights.sum()
        if self._templates:
            heads = np.stack([t.bands[:PREFILTER_FRAMES].ravel() for t in self._templates])
        else:
            heads = np.zeros((0, PREFILTER_FRAMES * (n_bands + 1)), dtype=np.float32)
        self._heads = (heads - heads.mean(axis=1, keepdims=True)).astype(np.float32)
        self._head_norms = np.einsum("ij,ij->i", self._heads, self._heads)
        # the first QUICK_FRAMES of each template, NaN past its end
        q, n_feat = QUICK_FRAMES, n_bands + 1
        self._quick = np.full((len(self._templates), q, n_feat), np.nan, dtype=np.float32)
        self._quick_level = np.full((len(self._templates), q), np.nan, dtype=np.float32)
        self._quick_loud = np.zeros((len(self._templates), q), dtype=bool)
        for i, tpl in enumerate(self._templates):
            m = min(q, tpl.length)
            self._quick[i, :m] = tpl.bands[:m]
            self._quick_level[i, :m] = tpl.level[:m]
            self._quick_loud[i, :m] = tpl.loud[:m]

    def names(self, audio: np.ndarray) -> list[str]:
        """The names of the recordings heard, in order."""
        return [h.name for h in self.transcribe(audio) if h.name is not None]

    def transcribe(self, audio: np.ndarray) -> list[Heard]:
        """What was heard in ``audio``, in order."""
        bands, level = self._features(audio)
        n = len(level)
        sound = level >= SOUND_DBM0
        candidates = self._prefilter(bands, sound)
        hop, rate = self._features.hop, self.rate
        heard: list[Heard] = []
        unknown: list[int] = []  # sound frames of the current unexplained stretch

        def flush_unknown() -> None:
            if len(unknown) >= MIN_UNKNOWN_FRAMES:
                start = unknown[0] * hop
                end = min(len(audio), unknown[-1] * hop + self._features.window)
                if heard and heard[-1].end * rate > start:
                    heard[-1] = replace(heard[-1], end=max(heard[-1].start, start / rate))
                heard.append(Heard(None, start / rate, end / rate, False))
            unknown.clear()

        t = 0
        floor = 0  # no match may start before this frame
        explained = 0  # frames before this belong to the last match
        while t < n:
            if not sound[t]:
                flush_unknown()
                t += 1
                continue
            found = self._match_at(t, max(floor, t - ALIGN_SLACK), bands, level, candidates)
            if found is None:
                if t >= explained:
                    if unknown and unknown[-1] != t - 1:
                        flush_unknown()
                    unknown.append(t)
                t += 1
                continue
            tpl, at, matched, complete = found
            start = max(0, (at - tpl.lead) * hop + tpl.phase)
            end = start + tpl.samples if complete else (at + matched) * hop + hop // 2
            end = min(max(end, start), len(audio))
            unknown[:] = [f for f in unknown if f < at]
            flush_unknown()
            if heard and heard[-1].end * rate > start:
                heard[-1] = replace(heard[-1], end=max(heard[-1].start, start / rate))
            heard.append(Heard(tpl.name, start / rate, end / rate, complete))
            explained = at + matched
            # where a recording was cut short, the next one may have begun a
            # little before the comparison noticed
            t = floor = explained if complete else max(at + 1, explained - BACKTRACK)
        flush_unknown()
        return heard

    # --- matching -------------------------------------------------------------

    def _prefilter(self, bands: np.ndarray, sound: np.ndarray) -> dict[int, np.ndarray]:
        """Per frame that could start a match: template indices whose start fits."""
        n = len(bands)
        if not self._templates or n == 0:
            return {}
        k = PREFILTER_FRAMES
        pad = np.full((k, bands.shape[1]), FLOOR_DBM0, dtype=np.float32)
        padded = np.concatenate((bands, pad))
        # any start within ALIGN_SLACK of a sound frame may be tried
        near = np.convolve(sound.astype(np.int32), np.ones(2 * ALIGN_SLACK + 1), "same") > 0
        starts = np.flatnonzero(near)
        if len(starts) == 0:
            return {}
        heads = np.lib.stride_tricks.sliding_window_view(padded, (k, bands.shape[1]))[:, 0]
        vecs = heads[starts].reshape(len(starts), -1)
        vecs = vecs - vecs.mean(axis=1, keepdims=True)
        sq = np.einsum("ij,ij->i", vecs, vecs)[:, None] + self._head_norms[None, :]
        dist = (sq - 2 * vecs @ self._heads.T) / vecs.shape[1]
        ok = dist <= PREFILTER_DB**2
        rows = np.flatnonzero(ok.any(axis=1))
        return {int(starts[r]): np.flatnonzero(ok[r]) for r in rows}

    def _match_at(
        self,
        t: int,
        earliest: int,
        bands: np.ndarray,
        level: np.ndarray,
        candidates: dict[int, np.ndarray],
    ) -> tuple[_Template, int, int, bool] | None:
        """Best recording starting near frame ``t``: (template, frame, frames, complete)."""
        found: list[tuple[float, bool, int, _Template, int]] = []
        min_partial = MIN_PARTIAL_S * self.rate / self._features.hop
        pairs = [
            (int(i), at)
            for at in range(earliest, t + ALIGN_SLACK + 1)
            for i in candidates.get(at, ())
        ]
        for i, at in self._quick_check(pairs, bands, level):
            tpl = self._templates[i]
            matched, score = self._follow(tpl, at, bands, level)
            if score > MATCH_DB:
                continue
            complete = matched >= tpl.length - END_SLACK
            if complete or matched >= min_partial:
                found.append((score, complete, matched, tpl, at))
        if not found:
            return None
        # the closest match, or a longer one nearly as close (a recording
        # that another one begins with); complete beats cut short
        best_score = min(f[0] for f in found)
        near = [f for f in found if f[0] <= best_score + TIE_DB]
        score, complete, matched, tpl, at = max(near, key=lambda f: (f[1], f[2], -f[0]))
        return tpl, at, matched, complete

    def _quick_check(
        self, pairs: list[tuple[int, int]], bands: np.ndarray, level: np.ndarray
    ) -> list[tuple[int, int]]:
        """The (template, frame) pairs whose first QUICK_FRAMES agree, all at once."""
        if not pairs:
            return []
        idx = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
        at = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
        frames = np.minimum(at[:, None] + np.arange(QUICK_FRAMES), len(level) - 1)
        beyond = at[:, None] + np.arange(QUICK_FRAMES) >= len(level)
        got = np.where(beyond[..., None], FLOOR_DBM0, bands[frames])
        got_level = np.where(beyond, -200.0, level[frames])
        loud = self._quick_loud[idx] & (got_level >= SOUND_DBM0 + 10)
        diff = np.clip(got_level - self._quick_level[idx], -MAX_GAIN_DB, MAX_GAIN_DB)
        gain = np.where(loud, diff, 0.0).sum(axis=1) / np.maximum(loud.sum(axis=1), 1)
        got = np.maximum(got - gain[:, None, None].astype(np.float32), FLOOR_DBM0)
        per_frame = np.abs(got - self._quick[idx]) @ self._weights
        with np.errstate(invalid="ignore"):
            score = np.nanmean(per_frame, axis=1)
        keep = np.flatnonzero(score <= QUICK_DB)
        return [pairs[k] for k in keep.tolist()]

    def _follow(
        self, tpl: _Template, at: int, bands: np.ndarray, level: np.ndarray
    ) -> tuple[int, float]:
        """How many frames of ``tpl`` the audio follows from frame ``at``, and how well."""
        n = min(tpl.length, len(level) - at)
        if n <= 0:
            return 0, np.inf
        got_bands = bands[at : at + n]
        got_level = level[at : at + n]
        # frames loud in both (cut-off or foreign stretches would skew it)
        loud = tpl.loud[:n] & (got_level >= SOUND_DBM0 + 10)
        gain = 0.0
        if loud.any():
            diff = got_level[loud] - tpl.level[:n][loud]
            gain = float(np.clip(np.median(diff[:30]), -MAX_GAIN_DB, MAX_GAIN_DB))
        got = np.maximum(got_bands - gain, FLOOR_DBM0)
        per_frame = np.abs(got - tpl.bands[:n]) @ self._weights
        bad = per_frame > FRAME_BAD_DB
        matched = n
        if bad.any():
            run = np.convolve(bad.astype(np.int32), np.ones(BAD_RUN, dtype=np.int32), "valid")
            broken = np.flatnonzero(run >= BAD_RUN)
            if len(broken):
                matched = int(broken[0])
        if matched < tpl.length - END_SLACK:
            # cut short: end at the last frame where both had sound and agreed
            heard = (tpl.level[:matched] >= SOUND_DBM0) & (got_level[:matched] >= SOUND_DBM0)
            good = np.flatnonzero(~bad[:matched] & heard)
            matched = int(good[-1]) + 1 if len(good) else 0
        if matched == 0:
            return 0, np.inf
        return matched, float(per_frame[:matched].mean())
