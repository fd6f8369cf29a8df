"""Typed records that flow between bwc's stages.

Every stage takes one of these in and gives one out; stages never share anything else. Records are frozen
dataclasses rather than pydantic models because they are created per word on hot paths (a 4-hour recording has
tens of thousands of words) where dataclasses cost a tenth as much; validation happens where data enters the
system (ffprobe output, the metadata CSV, configuration), not between trusted stages.

Units everywhere: times within a recording are seconds from its start as float; wall-clock times are timezone-aware
UTC ``datetime``; sample rates are Hz.

Example
-------
>>> word = Word(start=1.0, end=1.4, text="sir", probability=0.9)
>>> turn = SpeakerTurn(start=0.5, end=2.0, speaker="SPEAKER_00")
>>> round(word.overlap(turn.start, turn.end), 3)
0.4
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# Encounter, recording and clip ids: what the review app accepts in a URL, and so what a transcript table may name
# (an id it could not open would be scored but never reviewable; one like ``../x`` must never reach a path).
RECORD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
UNKNOWN_SPEAKER = "UNKNOWN"  # label for words in a recording where diarization found no speaker at all
# Local-hour bands of an encounter's time of day (research controls, public tables): (from, to, name).
TIMES_OF_DAY = ((0, 6, "night"), (6, 12, "morning"), (12, 18, "afternoon"), (18, 24, "evening"))


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What ffprobe says about an original file's first audio stream."""

    duration_s: float  # duration of the audio stream (or the container when the stream has none), seconds
    sample_rate: int  # native sample rate of the audio stream, Hz
    channels: int  # native channel count of the audio stream
    format: str  # container format as ffprobe names it, first alias (e.g. "wav", "flac", "mov", "matroska")
    codec: str  # audio codec name (e.g. "pcm_s16le", "aac", "mp3")
    has_video: bool  # whether the container also holds a video stream (clips can then be cut as video)


@dataclass(frozen=True, slots=True)
class Metadata:
    """One row of the evidence system's export, matched to an original by file name or evidence id."""

    evidence_id: str | None = None  # the evidence system's identifier for the original
    officer_id: str | None = None  # officer / badge id of the camera wearer
    recorded_at: datetime | None = None  # when recording started, UTC
    incident_id: str | None = None  # computer-aided-dispatch incident number
    category: str | None = None  # evidence category (e.g. "Traffic Stop")


@dataclass(frozen=True, slots=True)
class Recording:
    """An original file that passed ingest: identified by content, described by ffprobe and metadata."""

    recording_id: str  # first 16 hex digits of the SHA-256: identical content gets the identical id
    path: str  # absolute path of the original, never opened for writing
    sha256: str  # SHA-256 of the original's bytes, hex
    size_bytes: int  # size of the original, bytes
    audio: AudioInfo  # stream facts from ffprobe
    metadata: Metadata = field(default_factory=Metadata)  # evidence-system metadata (empty when none matched)


@dataclass(frozen=True, slots=True)
class SpeechRegion:
    """A stretch of audio the voice-activity detector judged to be speech."""

    start: float  # seconds from the recording's start
    end: float  # seconds from the recording's start

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Word:
    """A word from the recogniser, with the diarization speaker once assigned."""

    start: float  # seconds from the recording's start
    end: float  # seconds from the recording's start
    text: str  # the word as whisper wrote it, surrounding whitespace stripped
    probability: float  # whisper's probability for the word, 0..1
    speaker: str | None = None  # diarization label (e.g. "SPEAKER_00"); None until speaker assignment

    def overlap(self, start: float, end: float) -> float:
        """Seconds this word shares with the interval [start, end]."""
        return max(0.0, min(self.end, end) - max(self.start, start))


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """A stretch of audio attributed to one diarized speaker."""

    start: float  # seconds from the recording's start
    end: float  # seconds from the recording's start
    speaker: str  # diarization label, e.g. "SPEAKER_01"


@dataclass(frozen=True, slots=True)
class Diarization:
    """Who spoke when, as the diarization pipeline found it."""

    turns: tuple[SpeakerTurn, ...]  # all turns, overlapping speech kept (this is what the RTTM holds)
    exclusive_turns: tuple[SpeakerTurn, ...]  # at most one speaker at a time: what words are assigned against


@dataclass(frozen=True, slots=True)
class Utterance:
    """One speaker's consecutive words."""

    utterance_id: str  # "<recording_id>-<index, 5 digits>", ordered by start time
    speaker: str  # diarization label shared by all its words
    start: float  # start of the first word, seconds
    end: float  # end of the last word, seconds
    text: str  # the words joined by single spaces
    words: tuple[Word, ...]  # the words, each carrying this utterance's speaker


@dataclass(frozen=True, slots=True)
class UtteranceAcoustics:
    """How one utterance sounds, measured on the 16 kHz mono decode (inputs to attribution and prosody)."""

    level_db: float  # RMS level of the utterance's loudest half of 25 ms frames, dBFS
    snr_db: float  # level above the recording's noise floor (10th percentile frame level), dB
    high_band_ratio: float  # share of energy above 3 kHz (close talkers keep it; distance and radios lose it)
    low_band_ratio: float  # share of energy below 300 Hz (radio speakers have almost none)
    pitch_hz: float | None  # median fundamental frequency of voiced frames; None when nothing was voiced
    pitch_range_st: float | None  # 10th to 90th percentile pitch span, semitones


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Wall seconds spent in each stage for one recording."""

    decode_s: float = 0.0  # ffmpeg decode to 16 kHz mono
    vad_s: float = 0.0  # silero-vad
    asr_s: float = 0.0  # whisper
    diarization_s: float = 0.0  # pyannote
    assembly_s: float = 0.0  # word→speaker assignment and utterances
    scoring_s: float = 0.0  # acoustics, role attribution and language scoring
    forward_s: float = 0.0  # inside model forward passes (VAD, whisper, pyannote): part of the stages above


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """Everything the speech stage learned about one recording."""

    recording: Recording  # the original it came from
    speech_regions: tuple[SpeechRegion, ...]  # voice activity
    diarization: Diarization  # speaker turns
    words: tuple[Word, ...]  # every recognised word, each with a speaker
    utterances: tuple[Utterance, ...]  # words grouped per speaker, covering every word exactly once
    language: str  # language whisper transcribed in
    timings: StageTimings  # where the time went
    acoustics: tuple[UtteranceAcoustics, ...] = ()  # one per utterance, same order

    @property
    def speech_s(self) -> float:
        return sum(region.duration for region in self.speech_regions)


class RecordingError(RuntimeError):
    """A problem with one recording itself (damaged, truncated, over a limit): its message is the whole reason, so
    failure reports give it without the exception's type."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that could not be processed, and why: the batch goes on without it."""

    path: str  # the original's path as found in the input
    sha256: str | None  # SHA-256 when it could be read, else None
    stage: str  # stage that failed: "ingest", "decode", "speech", "write"
    reason: str  # one line a person can act on (no traceback)
    attempts: int = 1  # how many runs have tried this file
    last_attempt_at: datetime | None = None  # when the last attempt failed, UTC


# -- attribution and scoring --------------------------------------------------------------------------------------
ROLES = ("officer", "civilian", "other_officer", "radio", "unknown")  # who a speaker is, as attribution says
TRANSCRIPT_ROLES = ("officer", "civilian", "other")  # roles a department's own transcript table may carry


@dataclass(frozen=True, slots=True)
class SpeakerRole:
    """Who a diarized speaker is."""

    speaker: str  # diarization label
    role: str  # one of :data:`ROLES`
    confidence: float  # 0..1; how sure attribution is of this role
    evidence: str  # the cues that decided it, for people ("loudest (−18 dB vs −31 dB); asked for licence")


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One utterance going into scoring: from the audio path or from a department's transcript table."""

    encounter_id: str  # the encounter (a recording id on the audio path)
    turn: int  # position in the encounter, from 1
    role: str  # officer | civilian | other_officer | radio | other | unknown
    text: str  # what was said
    utterance_id: str | None = None  # the audio path's utterance id
    speaker: str | None = None  # diarization label, or the table's speaker column
    start: float | None = None  # seconds from the recording's start, when known
    end: float | None = None  # seconds from the recording's start, when known
    acoustics: UtteranceAcoustics | None = None  # measured sound, on the audio path only
    n_words: int | None = None  # recognised words (for speech rate); None counts whitespace tokens


@dataclass(frozen=True, slots=True)
class Encounter:
    """An encounter's transcript and what is known about it."""

    encounter_id: str  # recording id, or the transcript table's encounter id
    lines: tuple[TranscriptLine, ...]  # in turn order
    officer_id: str | None = None  # camera wearer / officer, when known
    recorded_at: datetime | None = None  # start of the encounter, UTC
    recording_id: str | None = None  # the recording on the audio path
    roles: tuple[SpeakerRole, ...] = ()  # attribution, on the audio path


@dataclass(frozen=True, slots=True)
class UtteranceScore:
    """Scores of one utterance (respect and acts only for officer utterances)."""

    line: TranscriptLine  # what was scored
    respect: float | None  # corpus standard deviations; None for non-officer lines
    respect_reasons: str  # top contributions, e.g. "formal_title 'sir' +0.41; encoder +0.22"
    acts: dict[str, str]  # act name -> words that triggered it
    loudness_rel_db: float | None = None  # level relative to this officer's median in the recording
    pitch_rel_st: float | None = None  # pitch relative to this officer's median, semitones
    speech_rate_wps: float | None = None  # words per second


@dataclass(frozen=True, slots=True)
class EncounterScore:
    """Per-encounter signals."""

    encounter_id: str  # as in :class:`Encounter`
    officer_id: str | None  # camera wearer / officer
    recorded_at: datetime | None  # start, UTC
    recording_id: str | None  # recording on the audio path
    n_officer_utterances: int  # officer utterances scored
    respect: float | None  # mean officer respect
    respect_first: float | None  # mean over the first third of officer utterances
    respect_last: float | None  # mean over the last third
    respect_slope: float | None  # least-squares change in respect per officer utterance
    escalation: float  # 0..1, higher = more escalated (Rho et al. 2023 early-language signals)
    behaviours: dict[str, bool]  # the five trained behaviours (Camp et al. 2024) -> present
    reasons: tuple[str, ...]  # what drove escalation and the behaviours, with the words
    officer_speaker: str | None = None  # diarization label attributed to the officer (audio path)
    role_confidence: float | None = None  # attribution confidence for that speaker


@dataclass(frozen=True, slots=True)
class ScoredEncounter:
    """Everything scoring produced for one encounter."""

    encounter: EncounterScore  # per-encounter signals
    utterances: tuple[UtteranceScore, ...]  # per utterance, in turn order
    model_version: str  # models and rules that made these scores, with weight hashes
