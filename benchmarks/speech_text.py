#!/usr/bin/env python
"""Speech and screen-text benchmark: the transcription and OCR paths against their bare models, retrieval by
what is said, shown and seen, and fused `GET /search` latency.

Run from the repository root:

    python benchmarks/speech_text.py            # 10 generated talks (3 slides each, ~5 min of speech);
                                                # /search on 100k frames + 50k text rows (~8 min on 2 cores,
                                                # ~2 min more the first time: talks, models, warehouse)
    python benchmarks/speech_text.py --quick    # 4 talks, one round, /search on 10k frames + 5k text rows
    python benchmarks/speech_text.py --parts ab    # only some parts (a asr, b ocr, c retrieval, d latency)

**The talks.** Ten talks on unrelated subjects (volcanoes, bees, chess, sailing, coffee, railways,
photography, bicycles, whales, castles), three slides each. A slide (1280x720, Pillow's bundled font, title
64 px and two bullet lines 40 px; light or dark) is shown while two sentences are spoken by espeak-ng (150
words/min, 0.6 s after the slide appears, 0.8 s apart): the first says the slide's title, the second says
something no slide shows; one bullet line is never said. They are muxed (PyAV: MPEG-4 Part 2 video at 5
frames/s, 4 Mb/s; AAC mono 44.1 kHz) into one .mp4 per talk, cached under `--cache-dir` (default
$TMPDIR/media_assets_speech_text_bench). Each talk goes through the library's stages without Dagster, as
the ingest job runs them: `extract_frames` (1 frame/s, 512-px thumbnails), `embed_frames` (CLIP with RANDOM
weights, `write_random_clip(size="tiny")`: this machine is offline, so the visual modality carries no
signal and is a control), `make_shot_list`, `transcribe_media` (Whisper tiny.en, the packaged default),
`read_screen_text` (RapidOCR PP-OCRv6 small, the packaged default) and `embed_texts` (all-MiniLM-L6-v2).

(a) **Transcription**: `transcribe_media` on each file (decode the audio with PyAV, Silero VAD, Whisper,
the `transcript_segments`/`transcript_words` rows) against bare faster-whisper in the same process:
`WhisperModel(<the same model folder>, <the same device and compute type>).transcribe(<the same audio>,
beam_size=5, word_timestamps=True, vad_filter=True, condition_on_previous_text=False)` with its segments
(a generator) read to the end. The anchor is given the samples `decode_audio` made of the file (decoded
outside the timing), so it hears exactly what ours hears; an extra row gives it the file instead
(faster-whisper's own PyAV decoding and resampling: slightly different samples, so a slightly different
transcript). They take turns file by file (the order alternating); each file's best of `--rounds` (2)
rounds counts, summed over the files (medians shown beside). Throughput is seconds of
audio per second of wall time (x realtime). ratio asr = ours / the anchor's throughput (target >= 0.9). WER
of the stored transcript against the spoken sentences (lower case, punctuation off, word-level Levenshtein,
summed over the files) beside the anchor's: a wiring check, they must match (and the texts word for word).
The text vectors (`embed_texts`: windows, MiniLM, the LanceDB write and its full-text index) are timed
separately against the bare `TextEncoder.encode` of the same texts.

(b) **Screen text**: `read_screen_text` over each file's chosen frames (keyframes, slide changes; a slide
held on screen is read once), timed per frame it actually OCR'd, against bare RapidOCR on exactly the
thumbnails it OCR'd (captured in an untimed first pass through a recording reader): `RapidOCR(params=<our
settings>)(bgr)` (the anchor: detection at the image's own size up to 1024 px, no angle classifier) and
`RapidOCR()(bgr)` with its default settings (the short side scaled up to 736 px, angle classifier on;
only its log level changed), so the table shows where the speed comes from. ratio ocr = our frames/s /
bare-with-our-settings frames/s (target >= 0.9). Character error rate per slide against the rendered text
(title and bullets in reading order, whitespace collapsed, bullet glyphs dropped, case kept), for the stored
rows and for both bare settings. `--ocr-rounds` (3) rounds, each file's best.

(c) **Retrieval**: 9 queries per talk, 3 per group: `said` (words of the second sentence, on no slide),
`shown` (a bullet line, said nowhere: "words nobody said"), `both` (the slide's title, shown and said);
checked at start-up (content words, light stemming). recall@5 of `SearchClient.search(query, mode=m, k=5)`
for the single modalities speech, screen_text and visual (random CLIP), keyword (BM25) as an extra, and
fused `balanced`: a query is found when one of its 5 moments is in its talk and overlaps the slide its
answer is said or shown on with temporal IoU >= 0.5 (a moment spanning the whole talk does not point at a
slide; a transcript window of three sentences over a slide and a half does). Fused must be at least
the best single modality (speech, screen_text, visual) on every group; then again with one modality
carrying nothing, in copies of the warehouse: without the screen-text rows, and without the transcript rows
(fused may then fall at most 0.05 below the best). ratio fused_recall5 = fused recall@5 / the best single
modality's, over all queries of the full warehouse.

(d) **Latency**: `GET /search?q=...&mode=balanced&k=20` through `python -m media_assets.apps.cli serve`
(uvicorn on a loopback port, an httpx client with keep-alive), distinct queries, p50/p95, target p95 <=
50 ms, on a cached synthetic warehouse: 100k frames (200 files x 500 frames, 512-d vectors shaped like
CLIP's, `write_synthetic_library`) with our HNSW index (`update_frame_index`), and 50k text rows (per file
75 transcript windows over 150 segments of 3.3 s with their ~1,500 timed words, and 175 screen-text spans,
written with `write_synthetic_text` and cut by the stage's own `transcript_windows`/`screen_text_spans`;
texts are sentences of Python's language reference (pydoc's topics), vectors the all-MiniLM-L6-v2 vectors
of a pool of ~1,800 of them, summed per window; queries are 2-4 consecutive words of held-out sentences).
--quick: 20 files, 10k frames, 5k text rows. The CLIP text tower is the ViT-B/32 architecture with random
weights and a word-level vocabulary (about one token per word, as CLIP's BPE gives common English;
benchmarks/search.py does the same). Two servers take turns in blocks of 25 queries: the defaults
(float32 text tower, torch's threads) and int8 on one thread (MEDIA_ASSETS_TEXT_QUANTIZATION=int8,
OMP_NUM_THREADS=1); `--queries` (200) distinct queries each. In this process (int8, one thread), 100 of the
same queries split into their parts (`SearchClient` internals, in the order `search` runs them), then the
public `search` call and its results' JSON on 100 other distinct queries, so the HTTP server's own share
shows.

Every measurement reports the cores other processes used meanwhile (/proc/stat minus this process and its
servers); a warning is printed when that was more than 0.2 cores. The last line is

    ratio asr=<x> ocr=<y> fused_recall5=<z>
"""

from __future__ import annotations

import argparse
import fractions
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import wave
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA_VERSION = 1  # bump when the talks or their encoding change: cached talks are rebuilt
LATENCY_VERSION = 2  # bump when the synthetic /search warehouse changes
SPEECH_RATE = 16_000
AUDIO_RATE = 44_100
VIDEO_SIZE = (1280, 720)
VIDEO_FPS = 5
LEAD_S, GAP_S, TAIL_S = 0.6, 0.8, 0.8  # silence before the first sentence of a slide, between, after the last
WORDS_PER_MINUTE = 150
RECALL_K = 5
HIT_IOU = 0.5
HTTP_K = 20
LATENCY_TARGET_MS = 50.0
ASR_TARGET = OCR_TARGET = 0.9
FUSED_SLACK = 0.05
BLOCK = 25
BUSY_CORES = 0.2
SINGLE_MODES = ("speech", "screen_text", "visual")
EXTRA_MODES = ("keyword",)
FUSED_MODE = "balanced"
GROUPS = ("said", "shown", "both")
QUICK_TALKS = ("volcanoes", "beekeeping", "chess", "sailing")
SERVER_CONFIGS = (("default", None, None), ("int8, 1 thread", "int8", 1))  # (label, quantization, threads)

# -- the talks -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slide:
    title: str  # shown, and said in the first sentence
    bullets: tuple[str, str]  # shown
    said: tuple[str, str]  # the two sentences spoken while the slide is shown
    said_query: str  # words of the second sentence that no slide shows
    shown_query: str  # a bullet line that nobody says


# Per talk ("== name"), per slide: the title and bullet lines shown; the two sentences said (the first says the
# title); the said query (words of the second sentence, on no slide) and the shown query (a bullet, said nowhere).
TALK_SCRIPT = """
== volcanoes
How volcanoes form | Tectonic plates collide | Magma rises through cracks
  Today we learn how volcanoes form deep below the ground.
  Heat from the mantle melts stone into a glowing liquid.
  said: heat melts stone into a glowing liquid | shown: tectonic plates collide
Eruptions | Explosive or effusive | Gas content matters
  Some eruptions are gentle, but others are terribly violent.
  Sticky lava traps bubbles until the summit blows apart.
  said: sticky lava traps bubbles | shown: explosive or effusive
Living nearby | Evacuation routes marked in red | Seismometers watch the crater
  Millions of people are living nearby and farm the rich soil.
  Scientists listen for tiny tremors before anything happens.
  said: scientists listen for tiny tremors | shown: evacuation routes marked in red
== beekeeping
Keeping honey bees | One queen per colony | Workers live six weeks
  Welcome to this short guide on keeping honey bees at home.
  A healthy hive in summer houses tens of thousands of busy insects.
  said: tens of thousands of busy insects | shown: one queen per colony
Inside the hive | Wax frames hold the comb | Brood sits in the center
  Let us look inside the hive to see how it works.
  Foragers perform a waggle dance to share where flowers grow.
  said: waggle dance to share where flowers grow | shown: wax frames hold the comb
Harvest time | Extractor spins the frames | Varroa mite treatment
  At harvest time we collect the honey from the top boxes.
  Leave enough stores so the bees survive the long winter.
  said: leave enough stores to survive the winter | shown: varroa mite treatment
== chess
Opening principles | Control the center | Develop knights before bishops
  Let us review the opening principles every beginner should know.
  Tuck your king into the corner early to avoid surprise attacks.
  said: tuck your king into the corner | shown: develop knights before bishops
Middlegame tactics | Pins and forks | Discovered attacks
  Middlegame tactics decide most games between club players.
  A bold sacrifice can sometimes force checkmate in a few moves.
  said: bold sacrifice to force checkmate | shown: pins and forks
Endgames | Opposition decides pawn endings | Rook behind the passed pawn
  Endgames reward patience more than any other phase.
  With only a few pieces left, the king becomes a strong fighter.
  said: king becomes a strong fighter | shown: rook behind the passed pawn
== sailing
Learning to sail | Check wind direction first | Wear a buoyancy vest
  This morning we are learning to sail a small dinghy.
  Feel the breeze on your cheeks to know where it blows from.
  said: feel the breeze on your cheeks | shown: wear a buoyancy vest
Points of sail | Close hauled | Broad reach
  There are several points of sail, each with its own trim.
  To turn, push the tiller away and duck under the boom.
  said: push the tiller and duck under the boom | shown: close hauled broad reach
Safety at sea | Man overboard drill | Radio channel sixteen
  Safety at sea starts long before you leave the harbor.
  Tell someone on shore when you expect to return.
  said: tell someone on shore when you expect to return | shown: man overboard drill
== coffee
Roasting coffee beans | Sourced from Ethiopia | Light, medium or dark
  In this session we try roasting coffee beans in a simple pan.
  The raw seeds smell like grass before the heat changes them.
  said: raw seeds smell like grass | shown: sourced from ethiopia
First crack | Cooling tray ready | Stir constantly
  Soon you will hear the first crack coming from the pan.
  The beans pop loudly, a bit like popcorn at the cinema.
  said: pop loudly like popcorn | shown: cooling tray ready
Making a cup | Grind just before brewing | Water at 94 degrees
  Making a cup is the last step, and the easiest one to get wrong.
  A paper filter gives a clean and bright taste.
  said: paper filter gives a clean bright taste | shown: grind just before brewing
== railways
The first railways | Steam locomotives | Iron rails replaced wooden tracks
  Our story begins with the first railways in northern England.
  Horses once pulled wagons of coal along simple paths.
  said: horses pulled wagons of coal | shown: iron rails replaced wooden tracks
Building the network | Tunnels and viaducts | Navvies dug by hand
  Building the network took armies of laborers and decades of work.
  Crews blasted through hills with gunpowder and shovels.
  said: blasted through hills with gunpowder and shovels | shown: tunnels and viaducts
Standard time | Timetables needed one clock | Greenwich Mean Time adopted
  Standard time arrived because trains ran on strict schedules.
  Every town used to have its own local noon.
  said: every town used to have its own local noon | shown: timetables needed one clock
== photography
Exposure basics | Aperture and shutter speed | ISO sensitivity
  Let us start with exposure basics for your new camera.
  A few settings decide how bright the picture turns out.
  said: settings decide how bright the picture turns out | shown: aperture and shutter speed
Composition | Rule of thirds | Leading lines
  Good composition guides the eye of the viewer.
  Place the horizon low to make the sky feel enormous.
  said: place the horizon low to make the sky feel enormous | shown: rule of thirds leading lines
Soft light | Golden hour after sunrise | Avoid harsh midday sun
  Soft light flatters faces far more than a flash does.
  Clouds act like a giant diffuser over the landscape.
  said: clouds act like a giant diffuser | shown: golden hour after sunrise
== bicycles
Fixing a flat tire | Tire levers | Spare inner tube
  Today I will show you fixing a flat tire at the roadside.
  Let the remaining air out and lift the wheel off the bike.
  said: lift the wheel off the bike | shown: spare inner tube
Finding the puncture | Pump it up | Check the rim tape
  Finding the puncture is easier than most riders think.
  A thorn or a shard of glass is often still stuck in the rubber.
  said: thorn or shard of glass stuck in the rubber | shown: check the rim tape
Chain care | Degrease every month | Lubricate each link
  Chain care keeps the drivetrain smooth and quiet.
  Wipe away the extra oil so dirt does not collect.
  said: wipe away the extra oil so dirt does not collect | shown: degrease every month
== whales
Humpback whale migration | Polar summers for food | Breeding in warm water
  Each year the humpback whale migration covers huge distances.
  They travel from icy seas to tropical lagoons to give birth.
  said: travel to tropical lagoons to give birth | shown: breeding in warm water
Whale song | Only males sing | Songs change each season
  Whale song is among the most complex sounds in nature.
  Underwater microphones record themes that repeat again and again.
  said: underwater microphones record themes | shown: only males sing
Cooperative feeding | Nets made of air | Krill swarms near the surface
  Cooperative feeding lets a group trap far more prey.
  They rise with mouths wide open and swallow the catch.
  said: swallow the catch with mouths wide | shown: krill swarms near the surface
== castles
Medieval castles | Keeps on high crags | Timber gave way to masonry
  Welcome to our tour of medieval castles across Europe.
  Lords chose rocky hills so that attackers had to climb.
  said: lords chose rocky hills | shown: timber gave way to masonry
Defenses | Moat and drawbridge | Arrow slits
  The defenses were designed to slow every attacker down.
  Guards poured boiling oil on anyone who stormed the gate.
  said: boiling oil poured at the gate | shown: moat and drawbridge
Daily life | Great hall feasts | Blacksmith and stables
  Daily life inside the walls was busy and crowded.
  Winter nights were cold, and the fire never went out.
  said: winter nights were cold and the fire never went out | shown: blacksmith and stables
"""


def parse_talks(script: str) -> dict[str, tuple[Slide, ...]]:
    talks: dict[str, list[Slide]] = {}
    name, lines = "", []
    for raw in script.strip().splitlines():
        line = raw.strip()
        if line.startswith("== "):
            name = line[3:]
            talks[name] = []
            continue
        lines.append(line)
        if len(lines) == 4:
            title, *bullets = (part.strip() for part in lines[0].split("|"))
            asked = dict(part.strip().split(": ", 1) for part in lines[3].split("|"))
            talks[name].append(Slide(title, tuple(bullets), (lines[1], lines[2]), asked["said"], asked["shown"]))
            lines = []
    return {key: tuple(slides) for key, slides in talks.items()}


TALKS = parse_talks(TALK_SCRIPT)

# Function words do not count when checking that a query's words are (or are not) said or shown.
FUNCTION_WORDS = frozenset(
    "how what when where which who why your you we our us do does did from so off up down each every one own its "
    "more most far very too away just before after through out over under near only them they him her his she he "
    "i me my can could will would should all any some few many much other others than here those let am been "
    "being".split()
)


def content_words(text: str) -> set[str]:
    from media_assets.search.fusion import STOP_WORDS, stem

    return {
        stem(word)
        for word in re.findall(r"[a-z0-9]+", text.lower())
        if word not in STOP_WORDS and word not in FUNCTION_WORDS
    }


def check_talks(talks: dict[str, tuple[Slide, ...]]) -> list[str]:
    """What makes a query not belong to its group: a said query's words on a slide, a shown query's words
    said, a title not said."""
    shown, said = set(), set()
    for slides in talks.values():
        for slide in slides:
            shown |= content_words(" ".join((slide.title, *slide.bullets)))
            said |= content_words(" ".join(slide.said))
    problems = []
    for name, slides in talks.items():
        for index, slide in enumerate(slides):
            where = f"{name} slide {index + 1}"
            words = content_words(slide.said_query)
            if not words <= content_words(slide.said[1]) or words & shown:
                problems.append(f"{where}: said query {slide.said_query!r} (shown: {sorted(words & shown)})")
            words = content_words(slide.shown_query)
            if not words <= content_words(" ".join(slide.bullets)) or words & said:
                problems.append(f"{where}: shown query {slide.shown_query!r} (said: {sorted(words & said)})")
            if not content_words(slide.title) <= content_words(slide.said[0]):
                problems.append(f"{where}: the title {slide.title!r} is not said")
    return problems


@dataclass(frozen=True)
class Query:
    text: str
    group: str  # 'said' | 'shown' | 'both'
    talk: str
    slide: int


def make_queries(talks: dict[str, tuple[Slide, ...]]) -> list[Query]:
    queries = []
    for name, slides in talks.items():
        for index, slide in enumerate(slides):
            queries += [
                Query(slide.said_query, "said", name, index),
                Query(slide.shown_query, "shown", name, index),
                Query(slide.title.lower(), "both", name, index),
            ]
    return queries


# -- output ----------------------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    say(line)
    say("-" * len(line))
    for row in rows:
        say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))))


def quiet_libraries() -> None:
    import logging

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in ("media_assets", "faster_whisper", "RapidOCR", "rapidocr", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


# -- CPU accounting --------------------------------------------------------------------------------------------


def _machine_busy_s() -> float | None:
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Meter:
    """Wall time, this process's CPU time (and that of `pids`, its servers) and the machine's busy time over
    the measured blocks; `others_cores` is what the rest of the machine used meanwhile."""

    pids: tuple[int, ...] = ()
    wall_s: float = 0.0
    own_s: float = 0.0
    busy_s: float = 0.0
    broken: bool = False

    @contextmanager
    def measure(self):
        busy0, own0 = _machine_busy_s(), self._own()
        wall0 = time.perf_counter()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - wall0
            busy1 = _machine_busy_s()
            self.own_s += self._own() - own0
            if busy0 is None or busy1 is None:
                self.broken = True
            else:
                self.busy_s += busy1 - busy0

    def _own(self) -> float:
        return time.process_time() + sum(_process_cpu_s(pid) for pid in self.pids)

    @property
    def others_cores(self) -> float:
        if self.broken or self.wall_s <= 0:
            return float("nan")
        return max(0.0, self.busy_s - self.own_s) / self.wall_s

    @property
    def own_cores(self) -> float:
        return self.own_s / self.wall_s if self.wall_s > 0 else float("nan")


@dataclass
class Timed:
    """One method's seconds per file and round, with its CPU meter. `best` sums each file's fastest round
    (a burst of background load costs one round of one file, not the whole measurement)."""

    label: str
    meter: Meter = field(default_factory=Meter)
    times: dict[str, list[float]] = field(default_factory=dict)

    def add(self, item: str, seconds: float) -> None:
        self.times.setdefault(item, []).append(seconds)

    @property
    def rounds(self) -> int:
        return max((len(v) for v in self.times.values()), default=0)

    @property
    def best(self) -> float:
        return sum(min(v) for v in self.times.values())

    @property
    def median(self) -> float:
        return sum(statistics.median(v) for v in self.times.values())

    def round_total(self, number: int) -> float:
        return sum(v[number] for v in self.times.values() if len(v) > number)


METERS: dict[str, Meter] = {}  # every measurement's meter by name, for the closing warning


def new_meter(name: str, pids: tuple[int, ...] = ()) -> Meter:
    meter = METERS[name] = Meter(pids)
    return meter


# -- generated talks -------------------------------------------------------------------------------------------


def resample(samples: np.ndarray, rate: int, wanted: int) -> np.ndarray:
    if rate == wanted:
        return samples.astype(np.float32)
    times = np.arange(int(len(samples) * wanted / rate)) / wanted
    return np.interp(times, np.arange(len(samples)) / rate, samples).astype(np.float32)


def espeak_samples(text: str, folder: Path) -> np.ndarray:
    """`text` spoken by espeak-ng (cached as a WAV file), as mono float32 at 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{zlib.crc32(text.encode()):08x}-{len(text)}.wav"
    if not path.exists():
        partial = path.with_suffix(".partial")
        subprocess.run(
            ["espeak-ng", "-s", str(WORDS_PER_MINUTE), "-w", str(partial), text], check=True, capture_output=True
        )
        os.replace(partial, path)
    with wave.open(str(path), "rb") as fh:
        rate, channels = fh.getframerate(), fh.getnchannels()
        pcm = np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return resample(pcm, rate, SPEECH_RATE)


def render_slide(title: str, bullets: list[str], dark: bool) -> np.ndarray:
    """A slide (title and bullet lines, Pillow's bundled font) at VIDEO_SIZE, as RGB."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = VIDEO_SIZE
    background, ink = ((20, 24, 40), (240, 240, 240)) if dark else ((250, 250, 245), (30, 30, 30))
    image = Image.new("RGB", VIDEO_SIZE, background)
    draw = ImageDraw.Draw(image)
    draw.text((int(width * 0.06), int(height * 0.10)), title, font=ImageFont.load_default(size=64), fill=ink)
    font = ImageFont.load_default(size=40)
    y = int(height * 0.10 + 2.2 * 64)
    for bullet in bullets:
        draw.text((int(width * 0.085), y), "\u2022 " + bullet, font=font, fill=ink)
        y += 2 * 40
    return np.ascontiguousarray(np.asarray(image))


def _audio_frame(chunk: np.ndarray, fmt_name: str, at: int):
    import av

    data = chunk[None, :]
    if fmt_name.startswith("s16"):
        data = (data * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt_name, layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, at, fractions.Fraction(1, AUDIO_RATE)
    return frame


def write_talk_video(path: Path, samples: np.ndarray, pictures: list[tuple[float, np.ndarray]], seconds: float):
    """An .mp4 (MPEG-4 Part 2 at VIDEO_FPS, AAC mono 44.1 kHz, interleaved) showing `pictures` (start time,
    RGB) over the 16 kHz `samples`."""
    import bisect

    import av

    pcm = np.clip(resample(samples, SPEECH_RATE, AUDIO_RATE), -1.0, 1.0)
    width, height = VIDEO_SIZE
    starts = [start for start, _ in pictures]
    partial = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(partial), "w") as container:
        video = container.add_stream("mpeg4", rate=VIDEO_FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = 4_000_000  # small glyphs stay legible
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        size = audio.codec_context.frame_size or 1024
        audio_format = audio.codec_context.format.name
        written = 0
        frames = max(int(round(seconds * VIDEO_FPS)), 1)
        for i in range(frames):
            rgb = pictures[max(bisect.bisect_right(starts, i / VIDEO_FPS + 1e-9) - 1, 0)][1]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
            until = len(pcm) if i == frames - 1 else min(len(pcm), int(round((i + 1) / VIDEO_FPS * AUDIO_RATE)))
            while until - written >= size or (i == frames - 1 and written < until):
                chunk = pcm[written : written + size]
                for packet in audio.encode(_audio_frame(chunk, audio_format, written)):
                    container.mux(packet)
                written += len(chunk)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    os.replace(partial, path)


@dataclass
class Talk:
    name: str
    key: str  # partition key under the media root
    path: Path
    duration_s: float
    slides: list[dict]  # start_s, end_s, title, bullets
    sentences: list[dict]  # start_s, end_s (speech onset and end), text, slide

    @property
    def reference(self) -> str:
        return " ".join(sentence["text"] for sentence in self.sentences)

    def slide_lines(self, index: int) -> list[str]:
        return [self.slides[index]["title"], *self.slides[index]["bullets"]]

    def middle_of_slide(self, index: int) -> float:
        return (self.slides[index]["start_s"] + self.slides[index]["end_s"]) / 2


def build_talk(name: str, slides: tuple[Slide, ...], media_root: Path, speech_dir: Path, dark: bool) -> Talk:
    """The talk's video and its truth (slide and sentence times) as JSON beside it."""
    key = f"talks/{name}.mp4"
    path = media_root / key
    truth_path = path.with_suffix(".json")
    if path.exists() and truth_path.exists():
        truth = json.loads(truth_path.read_text())
        return Talk(name, key, path, truth["duration_s"], truth["slides"], truth["sentences"])
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces, sentences, slide_rows, now = [], [], [], 0.0
    for index, slide in enumerate(slides):
        start, at = now, now + LEAD_S
        for text in slide.said:
            speech = espeak_samples(text, speech_dir)
            loud = np.flatnonzero(np.abs(speech) > 0.02)
            pieces.append((int(round(at * SPEECH_RATE)), speech))
            sentences.append(
                {
                    "start_s": round(at + loud[0] / SPEECH_RATE, 3),
                    "end_s": round(at + loud[-1] / SPEECH_RATE, 3),
                    "text": text,
                    "slide": index,
                }
            )
            at += len(speech) / SPEECH_RATE + GAP_S
        now = float(math.ceil(at - GAP_S + TAIL_S))
        slide_rows.append({"start_s": start, "end_s": now, "title": slide.title, "bullets": list(slide.bullets)})
    samples = np.zeros(int(round(now * SPEECH_RATE)), np.float32)
    for offset, speech in pieces:
        samples[offset : offset + len(speech)] = speech[: len(samples) - offset]
    pictures = [(row["start_s"], render_slide(row["title"], row["bullets"], dark)) for row in slide_rows]
    write_talk_video(path, samples, pictures, now)
    truth_path.write_text(json.dumps({"duration_s": now, "slides": slide_rows, "sentences": sentences}, indent=1))
    return Talk(name, key, path, now, slide_rows, sentences)


def ensure_talks(cache: Path, names: list[str]) -> tuple[Path, list[Talk]]:
    media_root = cache / f"talks-v{DATA_VERSION}-{zlib.crc32(TALK_SCRIPT.encode()):08x}"  # new words: new talks
    talks = []
    for number, name in enumerate(TALKS):
        if name in names:
            talks.append(build_talk(name, TALKS[name], media_root, cache / "speech", dark=number % 2 == 1))
    return media_root, talks


def talks_warehouse(root: Path, media_root: Path):
    from media_assets.warehouse import Warehouse

    return Warehouse.at(root, media_root=media_root, vectors_uri=str(root / "vectors")).ensure()


def ingest_talks(warehouse, talks: list[Talk], clip) -> dict:
    """Frames, frame vectors and shots of every talk (what the transcripts and screen-text stages read)."""
    from media_assets.media.discovery import stat_media_file
    from media_assets.stages.frame_embeddings import embed_frames
    from media_assets.stages.frames import extract_frames
    from media_assets.stages.shots import make_shot_list

    files = {}
    for talk in talks:
        media_file = stat_media_file(talk.path, warehouse.media_root)
        extract_frames(warehouse, media_file)
        embed_frames(warehouse, media_file.media_id, clip)
        make_shot_list(warehouse, media_file.media_id)
        files[talk.name] = media_file
    return files


# -- error rates -----------------------------------------------------------------------------------------------


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences (of words or characters)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def spoken_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("-", " "))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    ref = spoken_words(reference)
    return edit_distance(ref, spoken_words(hypothesis)), len(ref)


def screen_line(text: str) -> str:
    """A line as the character error rate compares it: bullet glyphs and other leading marks off, whitespace
    collapsed."""
    return " ".join(re.sub(r"^[^\w]+", "", text.strip()).split())


def char_errors(reference_lines: list[str], lines: list[str]) -> tuple[int, int]:
    ref = " ".join(screen_line(line) for line in reference_lines)
    hyp = " ".join(part for part in (screen_line(line) for line in lines) if part)
    return edit_distance(ref, hyp), len(ref)


def reading_order(box, height: float = 1.0, width: float = 1.0) -> tuple[float, float]:
    xs, ys = [float(v) for v in box[0::2]], [float(v) for v in box[1::2]]
    return round(min(ys) / height, 2), min(xs) / width


# -- (a) transcription -----------------------------------------------------------------------------------------


def bare_transcribe(model, audio) -> str:
    """faster-whisper with the stage's options, its segments read to the end."""
    segments, _ = model.transcribe(
        audio, language=None, beam_size=5, word_timestamps=True, vad_filter=True, condition_on_previous_text=False
    )
    return " ".join(segment.text.strip() for segment in segments if segment.text.strip())


def measure_asr(talks: list[Talk], warehouse, files: dict, rounds: int) -> dict:
    from faster_whisper import WhisperModel

    from media_assets.media.audio import decode_audio
    from media_assets.models.asr import SpeechRecognizer
    from media_assets.stages.transcripts import TranscriptSettings, read_transcript, transcribe_media

    settings = TranscriptSettings()
    recognizer = SpeechRecognizer.load(settings.model, settings.device, settings.compute_type)
    bare = WhisperModel(recognizer.model_path, device=recognizer.device, compute_type=recognizer.compute_type)
    samples = {talk.name: decode_audio(talk.path).samples for talk in talks}
    audio_s = sum(len(s) for s in samples.values()) / SPEECH_RATE
    first = talks[0]  # warm-up, not timed: CTranslate2's, the VAD's and PyAV's first calls
    transcribe_media(warehouse, files[first.name], settings)
    bare_transcribe(bare, str(first.path))
    bare_transcribe(bare, samples[first.name])
    runs = {
        "ours": Timed("ours: transcripts.transcribe_media (the file)", meter=new_meter("(a) ours")),
        "bare": Timed("anchor: WhisperModel.transcribe (its samples)", meter=new_meter("(a) anchor")),
        "file": Timed("extra: WhisperModel.transcribe (the file)", meter=new_meter("(a) bare on the file")),
    }
    texts: dict[str, dict[str, str]] = {"bare": {}, "file": {}}
    results = {}
    for number in range(rounds):
        for index, talk in enumerate(talks):
            order = list(runs) if (index + number) % 2 == 0 else list(runs)[::-1]
            for name in order:
                with runs[name].meter.measure():
                    started = time.perf_counter()
                    if name == "ours":
                        results[talk.name] = transcribe_media(warehouse, files[talk.name], settings)
                    elif name == "bare":
                        texts["bare"][talk.name] = bare_transcribe(bare, samples[talk.name])
                    else:
                        texts["file"][talk.name] = bare_transcribe(bare, str(talk.path))
                    runs[name].add(talk.name, time.perf_counter() - started)
        say(
            f"  round {number + 1}: "
            + ", ".join(f"{name} {audio_s / run.round_total(number):.1f}x realtime" for name, run in runs.items())
        )
    texts["ours"] = {talk.name: read_transcript(warehouse, files[talk.name].media_id).text for talk in talks}
    wer = {}
    for name, by_talk in texts.items():
        errors = [word_errors(talk.reference, by_talk[talk.name]) for talk in talks]
        wer[name] = sum(e for e, _ in errors) / max(sum(n for _, n in errors), 1)
    same = sum(spoken_words(texts["ours"][t.name]) == spoken_words(texts["bare"][t.name]) for t in talks)
    return {
        "runs": runs,
        "audio_s": audio_s,
        "wer": wer,
        "same_text": same,
        "model_id": recognizer.model_id,
        "device": f"{recognizer.device}/{recognizer.compute_type}",
        "segments": sum(r.segments for r in results.values()),
        "words": sum(r.words for r in results.values()),
        "texts": texts,
    }


def measure_text_vectors(talks: list[Talk], warehouse, files: dict, rounds: int) -> dict:
    """`embed_texts` per file against the bare encoder on the same texts (an extra, not in the last line)."""
    from media_assets.models.text import TextEncoder
    from media_assets.stages.text_vectors import embed_texts
    from media_assets.store.text_vectors import TextVectorStore

    encoder = TextEncoder.load()
    embed_texts(warehouse, files[talks[0].name].media_id, encoder)  # warm-up (and the table's creation)
    ours = Timed("ours: text_vectors.embed_texts", meter=new_meter("text vectors, ours"))
    bare = Timed("anchor: TextEncoder.encode (same texts)", meter=new_meter("text vectors, anchor"))
    rows = 0
    texts = {}
    for number in range(rounds):
        rows = 0
        for talk in talks:
            media_id = files[talk.name].media_id
            with ours.meter.measure():
                started = time.perf_counter()
                result = embed_texts(warehouse, media_id, encoder)
                ours.add(talk.name, time.perf_counter() - started)
            rows += result.total
            if talk.name not in texts:
                data = TextVectorStore(warehouse).dataset().to_table(filter=f"media_id = {media_id}")
                texts[talk.name] = data["text"].to_pylist()
            with bare.meter.measure():
                started = time.perf_counter()
                encoder.encode(texts[talk.name])
                bare.add(talk.name, time.perf_counter() - started)
        if number == 0:
            kinds = TextVectorStore(warehouse).dataset().to_table(columns=["kind"])["kind"].to_pylist()
    return {"ours": ours, "bare": bare, "rows": rows, "kinds": {k: kinds.count(k) for k in sorted(set(kinds))}}


# -- (b) screen text -------------------------------------------------------------------------------------------


def recording_reader(inner):
    """A TextReader that hands every image to `inner` and keeps a copy: which thumbnails the stage OCR'd."""
    from media_assets.models.ocr import TextReader

    class Recording(TextReader):
        def __init__(self):
            super().__init__(inner.settings, model_id=inner.model_id, device=inner.device)
            self.images: list[np.ndarray] = []

        def read_lines(self, bgr):
            self.images.append(bgr.copy())
            return inner.read_lines(bgr)

    return Recording()


RAPID_KEYS = (
    "Global.log_level",
    "Global.text_score",
    "Global.use_cls",
    "Det.limit_type",
    "Det.limit_side_len",
    "EngineConfig.onnxruntime.use_cuda",
    "EngineConfig.onnxruntime.intra_op_num_threads",
)


def rapid_params_of(engine) -> dict:
    """The settings of a RapidOCR instance that make it ours (read from the reader's own engine)."""
    params = {}
    for key in RAPID_KEYS:
        value = engine.cfg
        for part in key.split("."):
            value = value[part]
        params[key] = value
    return params


def rapid_lines(output, height: int, width: int) -> list[str]:
    boxes, texts = getattr(output, "boxes", None), getattr(output, "txts", None)
    if boxes is None or texts is None:
        return []
    pairs = [
        (reading_order(np.asarray(b).reshape(-1), height, width), str(t)) for b, t in zip(boxes, texts, strict=True)
    ]
    return [text for _, text in sorted(pairs, key=lambda pair: pair[0]) if text.strip()]


def frame_times_of(warehouse, media_id: int, images: list[np.ndarray]) -> list[float | None]:
    """The timestamp of the sampled frame each image is the thumbnail of."""
    import cv2

    from media_assets.store import catalog

    frames = sorted(catalog.read_partition(warehouse, "frames", media_id).to_pylist(), key=lambda r: r["seq"])
    thumbnails = [(row["timestamp_s"], cv2.imread(str(warehouse.root / row["thumbnail_path"]))) for row in frames]
    times = []
    for image in images:
        times.append(
            next(
                (
                    t
                    for t, thumb in thumbnails
                    if thumb is not None and thumb.shape == image.shape and np.array_equal(thumb, image)
                ),
                None,
            )
        )
    return times


def measure_ocr(talks: list[Talk], warehouse, files: dict, rounds: int) -> dict:
    from rapidocr import RapidOCR

    from media_assets.models.ocr import TextReader
    from media_assets.stages.screen_text import read_screen_text
    from media_assets.store import catalog

    reader = TextReader.load()  # the reader read_screen_text loads by default (cached per process)
    recorder = recording_reader(reader)
    captured, times = {}, {}
    for talk in talks:  # untimed: which thumbnails does the stage OCR?
        recorder.images.clear()
        read_screen_text(warehouse, files[talk.name].media_id, reader=recorder)
        captured[talk.name] = list(recorder.images)
        times[talk.name] = frame_times_of(warehouse, files[talk.name].media_id, captured[talk.name])
    ours_params = rapid_params_of(reader.engine)
    engines = {
        "same": RapidOCR(params=ours_params),
        "default": RapidOCR(params={"Global.log_level": "error"}),
    }
    sample = next(image for images in captured.values() for image in images)
    for engine in engines.values():  # warm-up: onnxruntime's first runs at these shapes
        engine(sample)
        engine(sample)
    runs = {
        "ours": Timed("ours: screen_text.read_screen_text", meter=new_meter("(b) ours")),
        "same": Timed("anchor: RapidOCR(params=ours)(thumbnail)", meter=new_meter("(b) anchor")),
        "default": Timed("extra: RapidOCR()(thumbnail), its defaults", meter=new_meter("(b) RapidOCR defaults")),
    }
    outputs: dict[str, dict[str, list]] = {"same": {}, "default": {}}
    frames_read = chosen = 0
    for number in range(rounds):
        frames_read = chosen = 0
        for index, talk in enumerate(talks):
            order = list(runs) if (index + number) % 2 == 0 else list(runs)[::-1]
            for name in order:
                with runs[name].meter.measure():
                    started = time.perf_counter()
                    if name == "ours":
                        result = read_screen_text(warehouse, files[talk.name].media_id)
                    else:
                        outputs[name][talk.name] = [engines[name](image) for image in captured[talk.name]]
                    runs[name].add(talk.name, time.perf_counter() - started)
            frames_read += result.frames_read
            chosen += result.frames_chosen
    images = sum(len(v) for v in captured.values())
    # character error rate per slide: the stored rows shown at the slide's middle; for the bare calls, the
    # first OCR'd thumbnail sampled while the slide was on screen
    cer = {name: [0, 0] for name in ("ours", "same", "default")}
    missing = 0
    for talk in talks:
        rows = catalog.read_partition(warehouse, "screen_text", files[talk.name].media_id).to_pylist()
        for index in range(len(talk.slides)):
            middle = talk.middle_of_slide(index)
            shown = [r for r in rows if r["start_s"] <= middle < r["end_s"]]
            lines = [r["text"] for r in sorted(shown, key=lambda r: reading_order(r["box"]))]
            errors, length = char_errors(talk.slide_lines(index), lines)
            cer["ours"][0] += errors
            cer["ours"][1] += length
            slide = talk.slides[index]
            at = [i for i, t in enumerate(times[talk.name]) if t is not None and slide["start_s"] <= t < slide["end_s"]]
            for name in ("same", "default"):
                if at:
                    image = captured[talk.name][at[0]]
                    lines = rapid_lines(outputs[name][talk.name][at[0]], *image.shape[:2])
                else:
                    lines, missing = [], missing + (name == "same")
                errors, length = char_errors(talk.slide_lines(index), lines)
                cer[name][0] += errors
                cer[name][1] += length
    return {
        "runs": runs,
        "frames_read": frames_read,
        "frames_chosen": chosen,
        "images": images,
        "cer": {name: e / max(n, 1) for name, (e, n) in cer.items()},
        "slides_without_a_read_frame": missing,
        "params": ours_params,
        "model_id": reader.model_id,
        "thumbnail": "x".join(str(v) for v in sample.shape[1::-1]),
    }


# -- (c) retrieval ---------------------------------------------------------------------------------------------


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal intersection over union of two time ranges."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def found_in(moments, key: str, span: tuple[float, float]) -> bool:
    """Whether one of the first RECALL_K moments is in the talk and points at the slide (IoU >= HIT_IOU)."""
    return any(m.partition_key == key and iou((m.start_s, m.end_s), span) >= HIT_IOU for m in list(moments)[:RECALL_K])


def describe_miss(query: Query, talk: Talk, moments) -> str:
    """A missed query, the slide it wanted and its first moment with what each modality put in it."""
    slide = talk.slides[query.slide]
    top = moments[0] if len(moments) else None
    if top is None:
        return f"{query.text!r}: nothing"
    parts = " + ".join(f"{r.modality} {r.start_s:.0f}-{r.end_s:.0f} ({r.evidence:.2f})" for r in top.why)
    return (
        f"{query.text!r} wants {talk.name} {slide['start_s']:.0f}-{slide['end_s']:.0f}s, first moment "
        f"{top.partition_key.split('/')[-1]} {top.start_s:.1f}-{top.end_s:.1f}s = {parts}"
    )


def without_kind(warehouse, scratch: Path, kind: str, media_ids: list[int]):
    """A copy of the warehouse whose text_vectors lack one kind of row."""
    from media_assets.store.text_vectors import TextVectorStore
    from media_assets.warehouse import Warehouse

    root = scratch / f"without-{kind}"
    shutil.copytree(warehouse.root, root)
    copy = Warehouse.at(root, media_root=warehouse.media_root, vectors_uri=str(root / "vectors"))
    store = TextVectorStore(copy)
    for media_id in media_ids:
        store.delete_media(media_id, kinds=[kind])
    return copy


def measure_retrieval(talks: list[Talk], warehouse, files: dict, queries: list[Query], scratch: Path) -> dict:
    from media_assets.search.client import SearchClient
    from media_assets.store.text_vectors import TextVectorStore

    by_name = {talk.name: talk for talk in talks}
    media_ids = [files[t.name].media_id for t in talks]
    scenarios = {
        "full": warehouse,
        "no screen text": without_kind(warehouse, scratch, "screen_text", media_ids),
        "no transcripts": without_kind(warehouse, scratch, "transcript", media_ids),
    }
    modes = (*SINGLE_MODES, *EXTRA_MODES, FUSED_MODE)
    recall: dict[str, dict[str, dict[str, float]]] = {}
    lengths: dict[str, list[float]] = {mode: [] for mode in modes}
    misses: dict[str, list[str]] = {}
    rows = {}
    meter = new_meter("(c) searches")
    searches = 0
    started = time.perf_counter()
    for scenario, where in scenarios.items():
        client = SearchClient(where, device="cpu")
        rows[scenario] = TextVectorStore(where).count()
        recall[scenario] = {}
        for mode in modes:
            hits: dict[str, list[bool]] = {group: [] for group in GROUPS}
            for query in queries:
                talk = by_name[query.talk]
                with meter.measure():
                    moments = client.search(query.text, mode=mode, k=RECALL_K)
                searches += 1
                slide = talk.slides[query.slide]
                hit = found_in(moments, talk.key, (slide["start_s"], slide["end_s"]))
                hits[query.group].append(hit)
                if scenario == "full" and len(moments):
                    lengths[mode].append(moments[0].end_s - moments[0].start_s)
                if scenario == "full" and mode == FUSED_MODE and not hit:
                    misses.setdefault(query.group, []).append(describe_miss(query, talk, moments))
            recall[scenario][mode] = {group: float(np.mean(v)) for group, v in hits.items()}
            recall[scenario][mode]["all"] = float(np.mean([h for v in hits.values() for h in v]))
    return {
        "recall": recall,
        "lengths": lengths,
        "misses": misses,
        "rows": rows,
        "searches": searches,
        "search_ms": 1e3 * meter.wall_s / max(searches, 1),
        "elapsed_s": time.perf_counter() - started,
        "meter": meter,
    }


# -- (d) /search latency ---------------------------------------------------------------------------------------

FILE_S = 500.0  # the synthetic files' length: 500 frames at 1 frame/s
SEGMENTS_PER_FILE = 150  # 3.3 s each, sentences of at most SEGMENT_CHARS: ~1,500 words per file (~180 words/min)
SEGMENT_CHARS = 110
SCREEN_LINES_PER_FILE = 175  # 2-6 words each, 3 s on screen; with ~75 transcript windows, 250 text rows per file
SCREEN_LINE_S = 3.0
POOL_SENTENCES = 3000
TOKEN_BUDGET = 40_000  # CLIP ViT-B/32's text embedding has 49,408 rows


def documentation_sentences() -> list[str]:
    """Sentences of Python's language reference (pydoc's topics), in a fixed order."""
    from pydoc_data.topics import topics

    sentences: dict[str, None] = {}
    for name in sorted(topics):
        for piece in re.split(r"(?<=[.!?])\s+|\n\s*\n", topics[name]):
            sentence = " ".join(piece.split())
            letters = sum(character.isalpha() for character in sentence)
            if 30 <= len(sentence) <= 200 and letters > 0.7 * len(sentence):
                sentences[sentence] = None
    return list(sentences)


def split_sentences(sentences: list[str]) -> tuple[list[str], list[str]]:
    """(the pool the text rows are made of, held-out sentences the queries come from)."""
    rng = np.random.default_rng(5)
    order = rng.permutation(len(sentences))
    pool_size = min(POOL_SENTENCES, int(0.8 * len(sentences)))
    return [sentences[i] for i in order[:pool_size]], [sentences[i] for i in order[pool_size:]]


def query_words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]{3,}", text.lower())


def latency_queries(held_out: list[str], count: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """`count` distinct queries of 2-4 consecutive words of held-out documentation sentences."""
    rng = np.random.default_rng(seed)
    texts: dict[str, None] = {}
    while len(texts) < count:
        words = query_words_of(held_out[int(rng.integers(len(held_out)))])
        if len(words) < 2:
            continue
        n = int(rng.integers(2, 5))
        start = int(rng.integers(0, max(len(words) - n, 0) + 1))
        text = " ".join(words[start : start + n])
        if text not in exclude:
            texts[text] = None
    return list(texts)


def word_tokenizer(words: list[str]):
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet plus `words`, each merged into one token
    (as benchmarks/search.py builds it)."""
    from transformers import CLIPTokenizer

    from media_assets.demo.random_clip import _byte_alphabet

    alphabet = _byte_alphabet()
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    seen = set()
    for word in sorted(words, key=lambda w: (-len(w), w)):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        current = parts[0]
        for part in parts[1:]:
            if (current, part) not in seen:
                seen.add((current, part))
                merges.append((current, part))
            current += part
            vocab.setdefault(current, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tokenizer_words(held_out: list[str]) -> list[str]:
    """The held-out sentences' words, most frequent first, as many as fit the token budget."""
    counts: dict[str, int] = {}
    for sentence in held_out:
        for word in query_words_of(sentence):
            counts[word] = counts.get(word, 0) + 1
    chosen, tokens = [], 512
    for word in sorted(counts, key=lambda w: (-counts[w], w)):
        tokens += len(word)
        if tokens > TOKEN_BUDGET:
            break
        chosen.append(word)
    return chosen


def ensure_latency_model(cache: Path, words: list[str]) -> Path:
    """The ViT-B/32 architecture with random weights and a word-level vocabulary (cached)."""
    from transformers import AutoProcessor, CLIPProcessor

    from media_assets.demo.random_clip import write_random_clip

    folder = cache / f"clip-vit-b-32-random-words-{zlib.crc32(' '.join(words).encode()):08x}"
    marker = folder / "benchmark-complete"
    if marker.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    say(f"  writing a random-weights ViT-B/32 checkpoint to {folder} ...")
    write_random_clip(folder, size="vit-b-32", seed=0)
    image_processor = AutoProcessor.from_pretrained(folder).image_processor
    tokenizer = word_tokenizer(words)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"].update(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id
    )
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    marker.write_text("ok\n")
    return folder


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


def synthetic_frames(files: int, per_file: int, topics: int = 300, dim: int = 512, seed: int = 0):
    """Frame vectors shaped like CLIP image embeddings: a shared cone, a few topics per file, shots of 5-60
    frames, per-frame noise (benchmarks/search.py's recipe without its text ties)."""
    rng = np.random.default_rng(seed)
    cone = unit_rows(rng.standard_normal((1, dim)))[0]
    topic_image = unit_rows(rng.standard_normal((topics, dim)))
    library = {}
    for number in range(files):
        favourites = rng.choice(topics, size=int(rng.integers(3, 9)), replace=False)
        rows = np.empty((per_file, dim), np.float32)
        start = 0
        while start < per_file:
            length = min(int(rng.integers(5, 61)), per_file - start)
            topic = favourites[rng.integers(len(favourites))]
            shot = unit_rows(rng.standard_normal((1, dim)))[0]
            noise = unit_rows(rng.standard_normal((length, dim)))
            rows[start : start + length] = 0.6 * cone + 0.6 * topic_image[topic] + 0.35 * shot + 0.25 * noise
            start += length
        library[f"videos/file{number:04d}.mp4"] = unit_rows(rows)
    return library


def write_file_text(warehouse, key: str, media_id: int, rng, pool: list[str], pool_vectors: np.ndarray, model_id):
    """One file's transcript (segments with timed words), screen text and their text_vectors rows."""
    from media_assets.demo.synthetic_library import write_synthetic_text
    from media_assets.ids import FRAME_SEQ_BITS, segment_id_for
    from media_assets.stages.text_vectors import screen_text_spans, transcript_windows
    from media_assets.store import catalog
    from media_assets.store.text_vectors import TextVectorStore, text_row_id

    mask = (1 << FRAME_SEQ_BITS) - 1
    short = np.array([i for i, sentence in enumerate(pool) if len(sentence) <= SEGMENT_CHARS])
    said = rng.choice(short, size=SEGMENTS_PER_FILE)
    step = FILE_S / SEGMENTS_PER_FILE
    segments = [(round(n * step, 2), round((n + 1) * step - 0.2, 2), pool[p]) for n, p in enumerate(said)]
    seconds = np.sort(rng.choice(int(FILE_S - SCREEN_LINE_S), size=SCREEN_LINES_PER_FILE, replace=False))
    shown = rng.integers(len(pool), size=SCREEN_LINES_PER_FILE)
    screen = []
    for second, p in zip(seconds.tolist(), shown.tolist(), strict=True):
        words = pool[p].split()
        screen.append((float(second), float(second) + SCREEN_LINE_S, " ".join(words[: int(rng.integers(2, 7))])))
    write_synthetic_text(warehouse, key, segments=segments, screen=screen)
    word_rows = []
    for n, (start, end, text) in enumerate(segments):
        tokens = text.split()
        step = (end - start) / len(tokens)
        word_rows += [
            {
                "media_id": media_id,
                "segment_id": segment_id_for(media_id, n),
                "start_s": start + i * step,
                "end_s": start + (i + 1) * step,
                "word": token,
                "probability": 0.9,
            }
            for i, token in enumerate(tokens)
        ]
    catalog.replace_partition(warehouse, "transcript_words", media_id, word_rows)
    windows = transcript_windows(catalog.read_partition(warehouse, "transcript_segments", media_id))
    spans = screen_text_spans(catalog.read_partition(warehouse, "screen_text", media_id))
    rows, vectors = [], []
    for kind, items, picks, ids in (
        ("transcript", windows, said, "segment_ids"),
        ("screen_text", spans, shown, "text_ids"),
    ):
        for index, item in enumerate(items):
            rows.append(
                {
                    "text_id": text_row_id(media_id, kind, index),
                    "kind": kind,
                    "item_id": item["item_id"],
                    "start_s": item["start_s"],
                    "end_s": item["end_s"],
                    "text": item["text"],
                }
            )
            vectors.append(pool_vectors[[picks[i & mask] for i in item[ids]]].sum(axis=0))
    TextVectorStore(warehouse).replace_media(
        media_id, rows, unit_rows(np.asarray(vectors)), model_id=model_id, run_id="synthetic"
    )
    return len(rows)


def ensure_latency_warehouse(cache: Path, model_dir: Path, files: int, per_file: int, pool: list[str]):
    """The cached warehouse of (d): frames, frame vectors, the HNSW index and text rows; built when missing."""
    from media_assets.demo.synthetic_library import write_synthetic_library
    from media_assets.ids import media_id_for
    from media_assets.models.text import TextEncoder
    from media_assets.stages.hnsw_index import IndexParams, update_frame_index
    from media_assets.warehouse import Warehouse

    root = cache / f"latency-f{files}x{per_file}-v{LATENCY_VERSION}-{model_dir.name}"
    marker = root / "benchmark-complete.json"
    if marker.exists():
        return Warehouse.at(root, vectors_uri=str(root / "vectors")), json.loads(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    warehouse = Warehouse.at(root, vectors_uri=str(root / "vectors")).ensure()
    say(f"  building {root} ({files} files x {per_file} frames, text rows of {len(pool)} sentences) ...")
    started = time.perf_counter()
    write_synthetic_library(warehouse, synthetic_frames(files, per_file), step_s=1.0, model_id=str(model_dir))
    frames_s = time.perf_counter() - started
    report = update_frame_index(warehouse, IndexParams())
    say(f"    frames and vectors in {frames_s:.0f} s; HNSW index of {report.node_count} in {report.elapsed_s:.0f} s")
    started = time.perf_counter()
    encoder = TextEncoder.load()
    pool_vectors = encoder.encode(pool)
    rng = np.random.default_rng(7)
    text_rows = 0
    for number in range(files):
        key = f"videos/file{number:04d}.mp4"
        text_rows += write_file_text(warehouse, key, media_id_for(key), rng, pool, pool_vectors, encoder.model_id)
    text_s = time.perf_counter() - started
    say(f"    {text_rows} text rows (and their catalog rows) in {text_s:.0f} s")
    info = {
        "frames": files * per_file,
        "files": files,
        "text_rows": text_rows,
        "index_build_s": report.elapsed_s,
        "text_s": text_s,
        "frames_s": frames_s,
    }
    marker.write_text(json.dumps(info))
    return warehouse, info


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m media_assets.apps.cli serve` in its own session on a loopback port, the configuration in
    its environment; stopped by its pid."""

    def __init__(self, warehouse, label: str, quantization: str | None, threads: int | None, log_dir: Path):
        import httpx

        self.label = label
        self.port = free_port()
        env = dict(os.environ, PYTHONWARNINGS="ignore", TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
        for name in ("MEDIA_ASSETS_CLIP_MODEL", "MEDIA_ASSETS_TEXT_MODEL", "MEDIA_ASSETS_TEXT_QUANTIZATION"):
            env.pop(name, None)  # the models are the ones the vectors were made with
        env["MEDIA_ASSETS_VECTORS_URI"] = warehouse.vectors_uri
        repo = str(Path(__file__).resolve().parents[1])  # the server runs this checkout's package, as we do
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
        if quantization is not None:
            env["MEDIA_ASSETS_TEXT_QUANTIZATION"] = quantization
        if threads is not None:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        else:
            env.pop("OMP_NUM_THREADS", None)
            env.pop("MKL_NUM_THREADS", None)
        self.log_path = log_dir / f"server-{re.sub(r'[^a-z0-9]+', '-', label)}.log"
        self.log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "media_assets.apps.cli", "serve", "--warehouse", str(warehouse.root)]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120.0)

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server ({self.label}) exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server ({self.label}) did not answer within {timeout_s:.0f} s")
            time.sleep(0.25)

    def search(self, text: str) -> tuple[float, int]:
        started = time.perf_counter()
        response = self.http.get("/search", params={"q": text, "mode": FUSED_MODE, "k": HTTP_K})
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise AssertionError(f"/search?q={text!r}: {response.status_code} {response.text[:300]}")
        return 1e3 * elapsed, len(response.json()["results"])

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and nothing else
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def split_search(client, query: str, k: int) -> dict[str, float]:
    """One balanced search, as `SearchClient._fused_search` runs it, timed by part (ms)."""
    from media_assets.search import fusion
    from media_assets.search.client import SearchFilter

    weights = fusion.mode_weights(FUSED_MODE)
    pool = min(1000, max(100, 10 * k))
    filters = SearchFilter()
    t0 = time.perf_counter()
    client.text_vector(query)
    t1 = time.perf_counter()
    client.text_encoder.query_vector(query)
    t2 = time.perf_counter()
    found = client._visual_candidates(query, pool, filters)
    t3 = time.perf_counter()
    found += client._text_vector_candidates(query, pool, weights, None)
    t4 = time.perf_counter()
    found += client._keyword_candidates(query, pool, None)
    t5 = time.perf_counter()
    table_now = client.frames.get()
    segments: dict = {}
    groups = fusion.fuse(found, weights)[:k]
    [client._fused_moment(group, weights, query, table_now, segments) for group in groups]
    t6 = time.perf_counter()
    return {
        "CLIP text tower": 1e3 * (t1 - t0),
        "MiniLM query vector": 1e3 * (t2 - t1),
        "visual: ANN, moments, background": 1e3 * (t3 - t2),
        "speech + screen text: exact, background": 1e3 * (t4 - t3),
        "keyword: BM25 (LanceDB FTS)": 1e3 * (t5 - t4),
        "fuse + moments' reasons (catalog reads)": 1e3 * (t6 - t5),
        "sum of the parts": 1e3 * (t6 - t0),
    }


def measure_latency(cache: Path, quick: bool, queries_n: int, log_dir: Path) -> dict:
    import torch

    from media_assets.search.client import SearchClient

    files, per_file = (20, 500) if quick else (200, 500)
    sentences = documentation_sentences()
    pool, held_out = split_sentences(sentences)
    model_dir = ensure_latency_model(cache, tokenizer_words(held_out))
    warehouse, info = ensure_latency_warehouse(cache, model_dir, files, per_file, pool)
    texts = latency_queries(held_out, queries_n, seed=1)
    warmup = latency_queries(held_out, 8, seed=2, exclude=set(texts))
    say(f"  warehouse: {info['frames']} frames, {info['text_rows']} text rows; {len(texts)} distinct queries")
    servers: list[Server] = []
    series: dict[str, list[float]] = {}
    meters: dict[str, Meter] = {}
    counts: list[int] = []
    try:
        for label, quantization, threads in SERVER_CONFIGS:
            servers.append(Server(warehouse, label, quantization, threads, log_dir))
        for server in servers:
            server.wait_ready()
            for text in warmup:  # load the models, the index, the frame table and the text rows
                server.search(text)
        pids = tuple(server.process.pid for server in servers)
        for server in servers:
            series[server.label] = []
            meters[server.label] = new_meter(f"(d) server {server.label}", pids)
        for block, begin in enumerate(range(0, len(texts), BLOCK)):
            for server in servers if block % 2 == 0 else servers[::-1]:
                with meters[server.label].measure():
                    for text in texts[begin : begin + BLOCK]:
                        ms, count = server.search(text)
                        series[server.label].append(ms)
                        counts.append(count)
    finally:
        for server in servers:
            server.stop()
    # in this process: the same queries by part, with the second configuration (int8 text tower, 1 thread)
    parts: dict[str, list[float]] = {}
    split_error = ""
    split_meter = new_meter("(d) in-process parts")
    threads = torch.get_num_threads()
    fresh = latency_queries(held_out, min(len(texts), 100), seed=3, exclude=set(texts) | set(warmup))
    try:
        torch.set_num_threads(1)
        client = SearchClient(warehouse, text_quantization="int8", device="cpu")
        for text in warmup:
            split_search(client, text, HTTP_K)
        with split_meter.measure():
            for text in texts[: min(len(texts), 100)]:
                for name, ms in split_search(client, text, HTTP_K).items():
                    parts.setdefault(name, []).append(ms)
            for text in fresh:  # the public call on other distinct queries (nothing cached), and its results as JSON
                t0 = time.perf_counter()
                found = client.search(text, mode=FUSED_MODE, k=HTTP_K)
                t1 = time.perf_counter()
                json.dumps(found.to_dicts(), default=str)
                t2 = time.perf_counter()
                parts.setdefault("SearchClient.search, the whole call", []).append(1e3 * (t1 - t0))
                parts.setdefault("its results: to_dicts + json.dumps", []).append(1e3 * (t2 - t1))
        index, state = client.index.get()
        index_state = state if index is None else f"HNSW, {len(index)} nodes"
    except Exception as exc:  # the client's internals moved: the end-to-end numbers stand without the split
        split_error = f"{type(exc).__name__}: {exc}"
        index_state = "?"
    finally:
        torch.set_num_threads(threads)
    return {
        "info": info,
        "series": series,
        "meters": meters,
        "parts": parts,
        "split_meter": split_meter,
        "split_error": split_error,
        "results_per_query": float(np.mean(counts)) if counts else float("nan"),
        "index_state": index_state,
        "queries": len(texts),
        "model_dir": model_dir,
    }


# -- environment -----------------------------------------------------------------------------------------------


def cpu_facts() -> tuple[str, list[str]]:
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return model, sorted(flag for flag in flags if flag.startswith("avx512"))


def version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "missing"


def environment() -> None:
    import cv2
    import torch

    import media_assets

    model, avx512 = cpu_facts()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    say("== environment")
    say(f"python {platform.python_version()} on {platform.platform()}")
    say(f"cpu: {model or 'unknown'}; os.cpu_count()={os.cpu_count()}, usable={affinity}")
    say(f"AVX-512: {'yes (' + ' '.join(avx512) + ')' if avx512 else 'no'}")
    say(
        f"threads: torch {torch.get_num_threads()} (interop {torch.get_num_interop_threads()}), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS', 'unset')}, cv2 {cv2.getNumThreads()}; "
        "CTranslate2 (faster-whisper cpu_threads=0: its default), onnxruntime intra-op -1 (RapidOCR: its "
        "default, one per core; the VAD: faster-whisper's own session options)"
    )
    say(
        "versions: "
        + ", ".join(
            f"{name} {version_of(name)}"
            for name in (
                "faster-whisper",
                "ctranslate2",
                "onnxruntime",
                "rapidocr",
                "sentence-transformers",
                "torch",
                "lancedb",
                "av",
            )
        )
        + f"; espeak-ng {'found' if shutil.which('espeak-ng') else 'MISSING'}; media_assets from "
        f"{Path(media_assets.__file__).parent}"
    )
    load = os.getloadavg()
    say(f"load average at start: {' '.join(f'{x:.2f}' for x in load)}")
    if load[0] > BUSY_CORES + 0.5:
        say(f"WARNING: the machine is busy at start (1-min load {load[0]:.2f}): expect noisy numbers")


# -- main ------------------------------------------------------------------------------------------------------


def ensure_tiny_clip(cache: Path) -> Path:
    from media_assets.demo.random_clip import write_random_clip

    folder = cache / "clip-tiny-random"
    marker = folder / "benchmark-complete"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_random_clip(folder, size="tiny", seed=0)
        marker.write_text("ok\n")
    return folder


def report_asr(asr: dict, text_vectors: dict | None) -> float:
    runs, audio_s = asr["runs"], asr["audio_s"]
    anchor = runs["bare"].best
    ratio = anchor / runs["ours"].best
    say()
    say(
        f"== (a) transcription: {audio_s:.0f} s of speech in {len(asr['texts']['ours'])} files, "
        f"{asr['model_id']} on {asr['device']}; each file's best of {runs['ours'].rounds} round(s)"
    )
    rows = []
    for name in ("bare", "ours", "file"):
        run = runs[name]
        rows.append(
            [
                run.label,
                f"{run.best:.2f}",
                f"{audio_s / run.best:.1f}x",
                f"{audio_s / run.median:.1f}x",
                fmt(run.meter.own_cores),
                fmt(run.meter.others_cores),
                f"{anchor / run.best:.3f}",
                f"{100 * asr['wer'][name]:.1f}%",
            ]
        )
    table(["", "best s", "realtime", "median", "own cores", "others", "÷ anchor", "WER"], rows)
    same = asr["same_text"]
    files = len(asr["texts"]["ours"])
    say(
        f"ours wrote {asr['segments']} segments and {asr['words']} words; stored transcript = bare transcript "
        f"word for word in {same} of {files} files ({'wiring ok' if same == files else 'WIRING DIFFERS'}); "
        f"WER against the espeak-ng sentences"
    )
    if text_vectors is not None:
        ours, bare = text_vectors["ours"], text_vectors["bare"]
        rows = text_vectors["rows"]
        kinds = ", ".join(f"{n} {k}" for k, n in text_vectors["kinds"].items())
        say(
            f"text vectors (separately): embed_texts {rows} rows ({kinds}) "
            f"in {ours.best:.2f} s = {rows / ours.best:.0f} rows/s; the bare TextEncoder.encode of the same texts "
            f"{bare.best:.2f} s ({rows / bare.best:.0f} rows/s): ÷ anchor {bare.best / ours.best:.2f} "
            f"(others {fmt(ours.meter.others_cores)})"
        )
    say(f"target: asr >= {ASR_TARGET} ({'met' if ratio >= ASR_TARGET else 'MISSED'})")
    return ratio


def report_ocr(ocr: dict) -> float:
    runs = ocr["runs"]
    read, images = ocr["frames_read"], ocr["images"]
    per_frame = {"ours": runs["ours"].best / max(read, 1)}
    for name in ("same", "default"):
        per_frame[name] = runs[name].best / max(images, 1)
    ratio = per_frame["same"] / per_frame["ours"]
    say()
    say(
        f"== (b) screen text: {ocr['frames_chosen']} frames chosen, {read} OCR'd ({images} thumbnails "
        f"{ocr['thumbnail']} captured for the bare calls), {ocr['model_id']}; each file's best of "
        f"{runs['ours'].rounds} round(s)"
    )
    rows = []
    for name in ("same", "ours", "default"):
        run = runs[name]
        median = run.median / max(read if name == "ours" else images, 1)
        rows.append(
            [
                run.label,
                f"{run.best:.2f}",
                f"{1e3 * per_frame[name]:.0f}",
                f"{1 / per_frame[name]:.2f}",
                f"{1 / median:.2f}",
                fmt(run.meter.own_cores),
                fmt(run.meter.others_cores),
                f"{per_frame['same'] / per_frame[name]:.3f}",
                f"{100 * ocr['cer'][name]:.2f}%",
            ]
        )
    table(["", "best s", "ms/frame", "frames/s", "median f/s", "own cores", "others", "÷ anchor", "CER"], rows)
    params = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in ocr["params"].items() if "log_level" not in k)
    say(f"our RapidOCR settings (read from the stage's reader): {params}")
    say(
        "ms/frame: ours per frame actually OCR'd (the whole stage: thumbnails read, same-image checks, rows "
        "written), the bare calls per thumbnail; CER per slide against the rendered text"
        + (
            f"; {ocr['slides_without_a_read_frame']} slides had no OCR'd thumbnail"
            if ocr["slides_without_a_read_frame"]
            else ""
        )
    )
    say(f"target: ocr >= {OCR_TARGET} ({'met' if ratio >= OCR_TARGET else 'MISSED'})")
    return ratio


def report_retrieval(retrieval: dict, queries: list[Query], talks: int) -> float:
    recall = retrieval["recall"]
    modes = (*SINGLE_MODES, *EXTRA_MODES, FUSED_MODE)
    counts = {group: sum(q.group == group for q in queries) for group in GROUPS}
    say()
    say(
        f"== (c) retrieval: recall@{RECALL_K}, {len(queries)} queries over {talks} talks "
        f"({', '.join(f'{n} {g}' for g, n in counts.items())}); visual = CLIP with RANDOM weights (offline): no signal"
    )
    headers = ["warehouse / mode", *GROUPS, "all", "top-1 s"]
    rows = []
    checks = []
    for scenario, by_mode in recall.items():
        for mode in modes:
            label = f"{scenario} / {mode}" + (" (fused)" if mode == FUSED_MODE else "")
            length = retrieval["lengths"][mode] if scenario == "full" else []
            rows.append(
                [
                    label,
                    *(f"{by_mode[mode][g]:.2f}" for g in (*GROUPS, "all")),
                    fmt(np.median(length) if length else None, 1),
                ]
            )
        slack = 0.0 if scenario == "full" else FUSED_SLACK
        for group in (*GROUPS, "all"):
            best_mode = max(SINGLE_MODES, key=lambda m, g=group, b=by_mode: b[m][g])
            best = by_mode[best_mode][group]
            fused = by_mode[FUSED_MODE][group]
            if fused + 1e-9 < best - slack:
                allowed = f" - {slack}" if slack else ""
                checks.append(f"{scenario}, {group}: fused {fused:.2f} < {best_mode} {best:.2f}{allowed}")
    table(headers, rows)
    say(
        "rows of text_vectors: "
        + ", ".join(f"{s} {n}" for s, n in retrieval["rows"].items())
        + f"; {retrieval['searches']} searches, {retrieval['search_ms']:.0f} ms each on average "
        f"(others {fmt(retrieval['meter'].others_cores)}); top-1 s: median length of the first moment"
    )
    say(
        f"found: one of the {RECALL_K} moments is in the query's talk and overlaps the slide the answer is said or "
        f"shown on with temporal IoU >= {HIT_IOU} (a whole-talk moment does not point at a slide)"
    )
    say("fused misses (the first moment's members: modality, time range, evidence; speech shows the segment said):")
    for group, missed in retrieval["misses"].items():
        for line in missed:
            say(f"  {group}: {line}")
    full = recall["full"]
    best_mode = max(SINGLE_MODES, key=lambda m: full[m]["all"])
    ratio = full[FUSED_MODE]["all"] / full[best_mode]["all"] if full[best_mode]["all"] > 0 else float("nan")
    keyword = full["keyword"]["all"]
    say(
        f"fused {full[FUSED_MODE]['all']:.3f} vs the best single modality ({best_mode}) {full[best_mode]['all']:.3f}; "
        f"keyword (BM25, not a modality of the target) {keyword:.3f}"
    )
    say(
        "targets: fused >= best single modality on every group of the full warehouse, and >= best - "
        f"{FUSED_SLACK} with one modality emptied: " + ("met" if not checks else "MISSED: " + "; ".join(checks))
    )
    return ratio


def report_latency(latency: dict) -> None:
    info = latency["info"]
    say()
    say(
        f"== (d) GET /search?mode={FUSED_MODE}&k={HTTP_K} through `media-assets serve`: {info['frames']} frames "
        f"({info['files']} files), {info['text_rows']} text rows, index {latency['index_state']}; "
        f"{latency['queries']} distinct queries per server, {latency['results_per_query']:.1f} moments each"
    )
    rows = []
    for label, values in latency["series"].items():
        values = np.asarray(values)
        p50, p95 = np.percentile(values, [50, 95])
        rows.append(
            [
                label,
                str(len(values)),
                f"{p50:.1f}",
                f"{p95:.1f}",
                f"{values.mean():.1f}",
                f"{values.max():.1f}",
                fmt(latency["meters"][label].others_cores),
                f"p95 <= {LATENCY_TARGET_MS:.0f} ms: {'met' if p95 <= LATENCY_TARGET_MS else 'MISSED'}",
            ]
        )
    table(["server", "n", "p50_ms", "p95_ms", "mean_ms", "max_ms", "others", "target"], rows)
    say(
        "default: float32 CLIP text tower, torch's own threads; int8, 1 thread: MEDIA_ASSETS_TEXT_QUANTIZATION=int8, "
        "OMP_NUM_THREADS=1; both load all-MiniLM-L6-v2 for the text modalities"
    )
    if latency["parts"]:
        say()
        say("the same queries in this process (int8 text tower, 1 torch thread), by part of SearchClient.search:")
        rows = []
        for name, values in latency["parts"].items():
            values = np.asarray(values)
            p50, p95 = np.percentile(values, [50, 95])
            rows.append([name, f"{p50:.1f}", f"{p95:.1f}", f"{values.mean():.1f}"])
        table(["part", "p50_ms", "p95_ms", "mean_ms"], rows)
        say(
            f"others meanwhile: {fmt(latency['split_meter'].others_cores)} cores (measured after the servers: "
            "compare with them only when both ran on a quiet machine)"
        )
    elif latency["split_error"]:
        say(f"(the split by part was skipped: {latency['split_error']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 talks, 1 round; /search on 10k frames, 60 queries")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (a) and the text vectors (default 2)")
    parser.add_argument("--ocr-rounds", type=int, default=3, help="rounds of (b) (default 3)")
    parser.add_argument("--queries", type=int, default=200, help="distinct /search queries per server (default 200)")
    parser.add_argument("--parts", default="abcd", help="a asr, b ocr, c retrieval, d latency (default: abcd)")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "media_assets_speech_text_bench"
    )
    args = parser.parse_args()
    parts = set(args.parts.replace(",", "").lower())
    if not parts or parts - set("abcd"):
        parser.error("--parts takes letters among a, b, c, d")
    if args.quick:
        args.rounds, args.ocr_rounds, args.queries = 1, 1, min(args.queries, 60)
    if min(args.rounds, args.ocr_rounds, args.queries) < 1:
        parser.error("--rounds, --ocr-rounds and --queries must be positive")
    started = time.perf_counter()
    quiet_libraries()
    for name in (
        "MEDIA_ASSETS_WAREHOUSE",
        "MEDIA_ASSETS_MEDIA_ROOT",
        "MEDIA_ASSETS_VECTORS_URI",
        "MEDIA_ASSETS_CLIP_MODEL",
        "MEDIA_ASSETS_TEXT_MODEL",
        "MEDIA_ASSETS_TEXT_QUANTIZATION",
    ):
        os.environ.pop(name, None)  # this benchmark says where everything is
    environment()
    problems = check_talks(TALKS)
    if problems:
        raise SystemExit("the talks' queries do not fit their groups:\n  " + "\n  ".join(problems))
    names = list(QUICK_TALKS) if args.quick else list(TALKS)
    chosen = {name: TALKS[name] for name in names}
    queries = make_queries(chosen)
    say(
        f"mode: {'quick' if args.quick else 'default'}; {len(names)} talks; rounds: {args.rounds} for (a), "
        f"{args.ocr_rounds} for (b); parts {''.join(sorted(parts))}; cache {args.cache_dir}"
    )
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="media_assets_speech_text_"))
    ratios = {"asr": float("nan"), "ocr": float("nan"), "fused_recall5": float("nan")}
    try:
        if parts & set("abc"):
            say()
            say("== setup")
            t0 = time.perf_counter()
            media_root, talks = ensure_talks(args.cache_dir, names)
            audio = sum(t.duration_s for t in talks)
            slides = sum(len(t.slides) for t in talks)
            say(f"  {len(talks)} talks ({audio:.0f} s, {slides} slides) in {time.perf_counter() - t0:.0f} s")
            from media_assets.models.clip import ClipEncoder

            warehouse = talks_warehouse(scratch / "warehouse", media_root)
            t0 = time.perf_counter()
            clip = ClipEncoder.load(str(ensure_tiny_clip(args.cache_dir)), device="cpu")
            files = ingest_talks(warehouse, talks, clip)
            say(
                f"  frames, frame vectors (tiny random CLIP) and shots of the talks in {time.perf_counter() - t0:.0f} s"
            )
            asr = ocr = retrieval = text_vectors = None
            if "a" in parts:
                say("== (a) transcription: ours and bare faster-whisper taking turns ...")
                asr = measure_asr(talks, warehouse, files, args.rounds)
                text_vectors_due = True
            else:
                from media_assets.stages.transcripts import transcribe_media

                for talk in talks:
                    transcribe_media(warehouse, files[talk.name])
                text_vectors_due = False
            if "b" in parts:
                say("== (b) screen text: ours and bare RapidOCR taking turns ...")
                ocr = measure_ocr(talks, warehouse, files, args.ocr_rounds)
            else:
                from media_assets.stages.screen_text import read_screen_text

                for talk in talks:
                    read_screen_text(warehouse, files[talk.name].media_id)
            if text_vectors_due:
                text_vectors = measure_text_vectors(talks, warehouse, files, args.rounds)
            else:
                from media_assets.models.text import TextEncoder
                from media_assets.stages.text_vectors import embed_texts

                for talk in talks:
                    embed_texts(warehouse, files[talk.name].media_id, TextEncoder.load())
            if "c" in parts:
                say(f"== (c) retrieval: {len(queries)} queries x modes x 3 warehouses ...")
                retrieval = measure_retrieval(talks, warehouse, files, queries, scratch)
            if asr is not None:
                ratios["asr"] = report_asr(asr, text_vectors)
            if ocr is not None:
                ratios["ocr"] = report_ocr(ocr)
            if retrieval is not None:
                ratios["fused_recall5"] = report_retrieval(retrieval, queries, len(talks))
        if "d" in parts:
            say()
            say("== (d) /search latency: the synthetic warehouse and two servers ...")
            log_dir = args.cache_dir / "logs"
            log_dir.mkdir(exist_ok=True)
            latency = measure_latency(args.cache_dir, args.quick, args.queries, log_dir)
            report_latency(latency)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say()
    others = {name: m.others_cores for name, m in METERS.items() if m.others_cores == m.others_cores}
    say(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total benchmark time "
        f"{time.perf_counter() - started:.0f} s"
    )
    busy = {name: value for name, value in others.items() if value > BUSY_CORES}
    if busy:
        say(
            f"WARNING: other processes used more than {BUSY_CORES} of this machine's {os.cpu_count()} cores during "
            + ", ".join(f"{name} ({value:.2f})" for name, value in busy.items())
            + f" (mean over all measurements {np.mean(list(others.values())):.2f}): those numbers are unreliable; "
            "rerun on an idle machine"
        )
    say(f"ratio asr={ratios['asr']:.2f} ocr={ratios['ocr']:.2f} fused_recall5={ratios['fused_recall5']:.2f}")


if __name__ == "__main__":
    main()
