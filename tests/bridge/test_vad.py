"""Speech segmentation on labelled audio: espeak-ng sentences at known positions."""

from __future__ import annotations

import numpy as np
import pytest

from media_bridge.vad import Pause, Resumed, SpeechSegmenter, SpeechStarted, Utterance
from tests.bridge.helpers import frames_of, silence, speak


def segment(audio: np.ndarray, rate: int = 16000, **kwargs: int) -> list:
    seg = SpeechSegmenter(rate, **kwargs)
    events = []
    for i, frame in enumerate(frames_of(audio, rate)):
        events += seg.push(frame, wall_time=i * 0.02)
    return events + seg.flush()


@pytest.mark.parametrize("rate", [16000, 8000])
def test_two_sentences_become_two_utterances(rate: int) -> None:
    first = speak("The weather is nice today.", "en", rate)
    second = speak("Where is the train station?", "en", rate)
    audio = np.concatenate([silence(0.5, rate), first, silence(1.2, rate), second, silence(1.0, rate)])
    events = segment(audio, rate, silence_ms=600)
    utterances = [e for e in events if isinstance(e, Utterance)]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(utterances) == 2 and len(starts) == 2
    second_at = 0.5 + first.size / rate + 1.2
    # Each utterance starts near its sentence (espeak-ng adds little lead-in) and the second
    # starts after the first ended.
    assert abs(utterances[0].started_at - 0.5) < 0.25
    assert abs(utterances[1].started_at - second_at) < 0.25
    assert utterances[0].ended_at < utterances[1].started_at
    for utt, sentence in zip(utterances, (first, second), strict=True):
        assert 0.7 * sentence.size / rate < utt.duration_s < sentence.size / rate + 0.5


def test_short_pause_does_not_split_but_longer_silence_setting_matters() -> None:
    first, second = speak("Hello there.", "en"), speak("How are you?", "en")
    audio = np.concatenate([silence(0.3), first, silence(0.4), second, silence(1.5)])
    assert len([e for e in segment(audio, silence_ms=800) if isinstance(e, Utterance)]) == 1
    assert len([e for e in segment(audio, silence_ms=200) if isinstance(e, Utterance)]) == 2


def test_silence_and_clicks_are_not_speech() -> None:
    audio = silence(3.0)
    audio[16000:16040] = 20000  # a 2.5 ms click
    assert segment(audio) == []


def test_long_monologue_is_cut_at_max_utterance() -> None:
    speech = np.concatenate([speak("one two three four five six seven eight nine ten", "en")] * 3)
    events = segment(np.concatenate([speech, silence(1.0)]), max_utterance_ms=3000)
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) >= 2
    assert all(u.duration_s <= 3.0 + 1e-9 for u in utterances)


def test_wrong_frame_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="640"):
        SpeechSegmenter(16000).push(b"\0" * 320)


def test_faint_noise_under_the_energy_floor_is_not_speech() -> None:
    speech = speak("The weather is nice today.", "en")
    faint = (speech.astype(np.float64) * 10 ** (-50 / 20)).astype(np.int16)  # 50 dB down
    audio = np.concatenate([silence(0.3), faint, silence(1.0)])
    assert [e for e in segment(audio, energy_floor_dbfs=-55) if isinstance(e, Utterance)] == []
    assert len([e for e in segment(audio, energy_floor_dbfs=-120) if isinstance(e, Utterance)]) == 1


@pytest.mark.parametrize("rate", [16000, 8000])
def test_silero_end_pointer_cuts_the_same_utterances(rate: int) -> None:
    """Silero VAD behind the same segmenter: two sentences 1 s apart are two utterances, the
    250 ms pause between two phrases of one (espeak's own silence trimmed) is not a cut, and
    silence and faint noise are never speech."""
    from media_bridge.vad_silero import SileroDetector

    def phrase(text: str) -> np.ndarray:
        samples = speak(text, "en", rate)
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 100)
        return samples[loud[0] : loud[-1] + 1]

    first = np.concatenate([phrase("I would like a table"), silence(0.25, rate), phrase("for two people.")])
    audio = np.concatenate([silence(0.5, rate), first, silence(1.0, rate),
                            speak("Where is the station?", "en", rate), silence(1.0, rate)])
    seg = SpeechSegmenter(rate, silence_ms=300, engine="silero")
    events = [e for f in frames_of(audio, rate) for e in seg.push(f, wall_time=0.0)]
    utterances = [e for e in events if isinstance(e, Utterance)]
    assert len(utterances) == 2
    assert utterances[0].duration_s > 0.8 * first.size / rate
    quiet = SileroDetector(rate)
    noise = np.random.default_rng(3).normal(0, 100, rate).astype(np.int16)
    background = frames_of(np.concatenate([silence(0.5, rate), noise]), rate)
    assert not any(quiet.is_speech(f, rate) for f in background)


def test_a_pause_carries_the_audio_the_end_of_speech_will_deliver() -> None:
    """Speculation: after 200 ms of silence a Pause holds exactly the utterance that the end of
    speech (600 ms) then yields, so the engine can start 400 ms early on the same audio."""
    audio = np.concatenate([silence(0.3), speak("Where is the train station?", "en"), silence(1.2)])
    events = segment(audio, silence_ms=600, speculate_ms=200)
    pauses = [e for e in events if isinstance(e, Pause)]
    [utterance] = [e for e in events if isinstance(e, Utterance)]
    assert pauses and np.array_equal(pauses[-1].candidate.samples, utterance.samples)
    assert events.index(pauses[-1]) < events.index(utterance)
    assert not [e for e in segment(audio, silence_ms=600) if isinstance(e, Pause | Resumed)]


def test_speech_after_a_pause_voids_it() -> None:
    first, second = speak("Hello there.", "en"), speak("How are you?", "en")
    audio = np.concatenate([silence(0.3), first, silence(0.4), second, silence(1.5)])
    events = segment(audio, silence_ms=800, speculate_ms=200)
    kinds = [type(e).__name__ for e in events if isinstance(e, Pause | Resumed | Utterance)]
    # The 400 ms gap: a pause, then speech again; the end: a pause confirmed by one utterance.
    assert kinds[:2] == ["Pause", "Resumed"] and kinds[-2:] == ["Pause", "Utterance"]
    assert kinds.count("Utterance") == 1
