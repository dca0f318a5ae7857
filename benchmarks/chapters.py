#!/usr/bin/env python
"""Chapters benchmark: how well and how fast `stages.chapters.make_chapters` cuts generated lectures into
their known topics and summarises them, beside simple baselines measured in the same run.

Run from the repository root:

    python benchmarks/chapters.py            # 4 lectures (25 topics, 21 boundaries, 31 min); ~6 min the first
                                             # time (speech, videos, the ingest), ~1 min after that
    python benchmarks/chapters.py --quick    # 2 lectures (lecture-a, lecture-d: 15 min), 1 round
    python benchmarks/chapters.py --reingest # run (and time) every ingest stage again on the cached videos

**The lectures.** Sixteen topics on unrelated subjects (volcanoes, sourdough, tides, bicycles, the printing
press, honeybees, Roman aqueducts, coral reefs, jazz, composting, lighthouses, the Silk Road, marathons, the
night sky, clocks, knots), each 6-20 distinct sentences (30 s to 3 min of speech). A lecture strings 6 or 7 of
them together (`LECTURES`, 7-8.5 min; 9 topics are in two lectures, shown differently), and each topic is
shown one way: `slide` (its slide, with a known heading and two bullet lines, `speech_text.render_slide`),
`slides` (its slide, then a second "continued" slide with another heading at the sentence gap before its
middle sentence: a slide change that is NOT a topic boundary), `speaker` (a plain picture of a speaker at a
desk, drawn with OpenCV, no text; two `speaker` topics in a row share the picture, so nothing visual marks
their boundary) or `dark` (a dark frame). The sentences are spoken by espeak-ng (`speech_text.espeak_samples`,
150 words/min) with 0.5-1.1 s between them, and with probability 0.15 a long pause of 2-3.5 s instead; the gap
between two topics is drawn from the same distribution, so silence does not give the boundaries away. A topic
starts at the middle of the gap before its first sentence (the first at 0), which is also when its picture
appears. The videos (`speech_text.write_talk_video`: MPEG-4 Part 2 at 5 frames/s, AAC mono) and their truth
(JSON beside each) are cached under `--cache-dir` (default $TMPDIR/media_assets_chapters_bench), keyed by a
hash of the lecture definitions, and so is the warehouse the stages wrote, with their timings.

**The ingest**, without Dagster, as the ingest job runs it, each stage timed per file with its model loaded
beforehand: `extract_frames` (1 frame/s), `embed_frames` (CLIP with RANDOM weights, the tiny
`write_random_clip` checkpoint: this machine is offline; its time is not ViT-B/32's, see the report),
`make_shot_list`, `transcribe_media` (Whisper tiny.en), `read_screen_text` (RapidOCR), `embed_texts`
(all-MiniLM-L6-v2) and `make_chapters` (the same encoder, extractive summaries, no LLM). A rerun reuses
the cached warehouse and times only `make_chapters` again (the other stages' times are the ones measured
when the warehouse was built, and the report says when that was); `--reingest` measures them all again.

(a) **Boundaries.** Predicted boundaries = the chapters' starts except 0; truth = the topics' starts except 0.
A prediction matches a true boundary within +-10 s, one to one, greedily by distance (the closest pair
first). Precision, recall and F1 per lecture and pooled (micro: matches, predictions and true boundaries
summed over the lectures; the headline). Two baselines in the same run: fixed windows of the lecture's mean
true topic length (boundaries at k x duration / topics), and slide changes alone: every time the text on
screen changes, from the file's `screen_text` rows grouped into one reading per frame and given to the
library's own rule, `models.chapters.slide_changes` (word sets, 1 - Jaccard >= 0.5; frames without text
ignored). Target: our F1 >= 1.2 x the better baseline's.

(b) **Summaries.** ROUGE-L F1 (longest common subsequence over lower-cased word tokens `[a-z0-9]+`, of the
whole summary against the whole reference, F = 2PR / (P + R)) of each chapter's summary against the
sentences spoken in the topic that overlaps the chapter most; beside lead-3, the chapter's first three
transcript sentences as the recogniser wrote them (`transcript_segments` of the primary source, each split
by `models.summaries.split_sentences`, timed by its share of the segment's characters and given to the
chapter its middle falls in: the stage's own rule). Mean over the chapters; target: ours >= 1.0 x lead-3.

(c) **Time.** `make_chapters` per file (chapters and their extractive summaries, the video summary and the
summary text vectors), each file's best of `--rounds` (3) after one untimed warm-up call, as seconds per
hour of video and as a share of the whole ingest of the file (the seven stages above).

The per-lecture tables show each true boundary with the prediction matched to it (and the signals the
stage says put it there), the spurious predictions with what is near them, and each chapter's title and
ROUGE-L. Diagnostics, not targets: the TextTiling depth of the transcript at each true boundary in robust
deviations (z, `text_valleys`) beside the deepest valley away from every boundary, i.e. what the words alone
could find; how many of the stage's sentences are fragments (no closing mark); an extra summary baseline, the
chapter's first transcript words cut to our summary's length (lead-3 is much shorter than our summaries, and
ROUGE-L F1 rewards length when the reference is a whole topic); and where `make_chapters` spends its time
(the sentence encoder, `find_chapters`, the rest). The last line is

    ratio boundary_f1=<our pooled F1 / the better baseline's> rouge_l=<our mean ROUGE-L / lead-3's>
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: the benchmarks folder is on it too

from speech_text import (  # noqa: E402  (the generation, output and accounting helpers of the talks benchmark)
    METERS,
    SPEECH_RATE,
    VIDEO_SIZE,
    ensure_tiny_clip,
    environment,
    espeak_samples,
    fmt,
    new_meter,
    quiet_libraries,
    render_slide,
    say,
    table,
    talks_warehouse,
    write_talk_video,
)

DATA_VERSION = 1  # bump when the generation changes in a way the hash of the definitions does not see
TOLERANCE_S = 10.0
F1_TARGET = 1.2
ROUGE_TARGET = 1.0
LEAD_IN_S, TAIL_S = 1.0, 1.5  # silence before the first sentence and after the last
GAP_S = (0.5, 1.1)  # the usual pause between two sentences (uniform)
LONG_GAP_S = (2.0, 3.5)  # a long pause instead, with probability LONG_GAP_P (topic boundaries included)
LONG_GAP_P = 0.15
LEAD_SENTENCES = 3
BUSY_CORES = 0.2
VIT_B32_IMAGES_PER_S = 23.5  # `embed_frames` with the real ViT-B/32 on this machine (docs/benchmarks.md)
VISUALS = ("slide", "slides", "speaker", "dark")
QUICK_LECTURES = ("lecture-a", "lecture-d")
STAGES = ("frames", "frame_embeddings", "shots", "transcripts", "screen_text", "text_vectors")

# -- the lectures ----------------------------------------------------------------------------------------------

# Per topic ("== name"): its slide ("slide: heading | bullet | bullet"), optionally a "continued" slide shown from
# its middle sentence on ("more: ..."), and the sentences spoken in it ("- ", continued on indented lines).
TOPIC_SCRIPT = """
== volcanoes
slide: How Volcanoes Form | Magma rises through the crust | Plates collide or pull apart
- A volcano begins far below the surface, where rock melts into magma.
- Because molten rock is lighter than the solid rock around it, it slowly rises through cracks.
- Most volcanoes sit along the edges of tectonic plates.
- Where one plate slides beneath another, water released from the sinking slab lowers the melting point of the
  mantle.
- Other volcanoes, like those of Hawaii, grow above a hot spot in the middle of a plate.
- Runny basalt lava flows for many kilometres and builds broad shield volcanoes.
- Sticky lava rich in silica traps gas, and the pressure can end in a violent explosion.
- Ash from a large eruption can circle the globe and cool the climate for a year or two.
- Farmers still live on the slopes because volcanic soil is remarkably fertile.
== sourdough
slide: Sourdough Baking | A living starter of flour and water | Wild yeast and lactic bacteria
more: Shaping and Baking the Loaf | Fold, rest, then shape | Bake hot in a covered pot
- Sourdough bread is leavened by a starter instead of a packet of commercial yeast.
- A starter is simply flour and water left to ferment at room temperature for about a week.
- Wild yeasts in the mixture produce the gas that makes the dough rise.
- Lactic acid bacteria live alongside them and give the bread its gentle sour taste.
- You feed the starter every day by discarding half and adding fresh flour and water.
- When it doubles in size within a few hours of feeding, it is strong enough to bake with.
- To make the dough, mix the starter with flour, water and salt until no dry patches remain.
- Instead of kneading, many bakers stretch and fold the dough every half hour.
- The long first rise can take five or six hours in a warm kitchen.
- Next the dough is gently shaped into a tight ball without knocking out all the air.
- The shaped loaf rests overnight in the fridge inside a basket dusted with rice flour.
- The cold rest deepens the flavour and makes the loaf easier to score.
- A razor cut across the top lets the bread expand in a controlled way in the oven.
- Baking inside a heavy covered pot traps steam and produces a crackling crust.
- After twenty minutes the lid comes off so the crust can turn a deep brown.
- Let the loaf cool completely before slicing, or the crumb will be gummy.
== tides
slide: Why the Sea Rises and Falls | The pull of the moon | Spring tides and neap tides
- The tides are the slow rise and fall of the sea that happens twice on most days.
- They are caused mainly by the gravity of the moon pulling on the oceans.
- The water bulges on the side of the earth facing the moon and also on the opposite side.
- As the planet turns, a coastline passes through both bulges, so it sees two high tides.
- When the sun and moon line up, their pull combines and we get especially large spring tides.
- At the quarter moons they work against each other, and the weaker neap tides follow.
- The shape of a bay can funnel the water, and the Bay of Fundy has a range of over fifteen metres.
- Fishermen and sailors still plan their day around printed tide tables.
== bicycles
slide: A Weekly Bicycle Check | Tyres, brakes and chain | A service once a year
- Keeping a bicycle in good order takes only a few minutes each week.
- Start by checking the tyre pressure, because soft tyres are slow and puncture easily.
- Squeeze both brake levers and make sure the pads grip the rim or disc firmly.
- A dry chain wears quickly, so wipe it clean and add a drop of oil to every link.
- Listen for clicking when you pedal, which often means the gears need a small adjustment.
- Check that the quick release levers on the wheels are tightly closed before every ride.
- Once a year, a shop can replace worn cables and true the wheels.
== printing
slide: The Printing Press | Gutenberg, Mainz, around 1450 | Movable metal type
more: How Print Changed Europe | Cheap books spread new ideas | Standard spelling and maps
- Before the printing press, every book in Europe had to be copied by hand, usually by monks working in a
  scriptorium.
- A single copy of the Bible could take a skilled scribe more than a year to finish.
- Around the middle of the fifteenth century, Johannes Gutenberg began experimenting with printing in the
  German city of Mainz.
- His great idea was movable type, small metal letters that could be arranged into lines and reused again and
  again.
- He cast the letters from an alloy of lead, tin and antimony that melted easily and cooled quickly.
- Gutenberg also developed an oil based ink that stuck to metal far better than the water based inks of the
  time.
- The press itself was adapted from the screw presses that farmers used to squeeze grapes and olives.
- His most famous work is the Gutenberg Bible, and fewer than fifty copies of it survive today.
- Within fifty years, printing shops had opened in more than two hundred cities across Europe.
- Venice became a great centre of the trade, and its printers produced elegant small books that people could
  carry.
- As books became cheaper, far more ordinary people had a reason to learn to read.
- Pamphlets spread the arguments of the Reformation faster than any authority could stop them.
- Scientists could share identical diagrams and tables, so an error found in one city could be corrected
  everywhere.
- Printers chose one spelling for each word, and over time national languages became more standard.
- Maps, calendars and musical scores were printed in large numbers for the very first time.
- Governments soon worried about the power of print and began licensing presses and banning books.
- The basic design of the press changed surprisingly little for more than three centuries.
- In the nineteenth century, iron presses driven by steam engines could print thousands of sheets an hour.
- Later the rotary press fed a continuous roll of paper between cylinders, which made daily newspapers cheap.
- Many historians rank the printing press among the most important inventions of the last thousand years.
== honeybees
slide: Life in a Honeybee Colony | One queen, thousands of workers | Drones, wax and honey
- A honeybee colony is a family of up to sixty thousand insects living together in one hive.
- At its heart is a single queen, who can lay around two thousand eggs in a summer day.
- Almost all the other bees are female workers, and their jobs change as they grow older.
- Young workers clean the cells, feed the larvae and build comb from wax made in their own bodies.
- Older workers leave the hive to gather nectar and pollen from flowers up to several kilometres away.
- A forager that finds a rich patch of flowers performs a waggle dance to tell her sisters where it is.
- The angle of the dance shows the direction relative to the sun, and its length shows the distance.
- Back in the hive, nectar is passed from bee to bee and fanned with wings until most of its water evaporates.
- The thick syrup that remains is honey, and the bees seal it under a cap of wax.
- Male bees, called drones, do no work at all and exist only to mate with queens from other colonies.
- In winter the colony forms a tight cluster and shivers its flight muscles to stay warm.
- A strong hive can survive the cold months entirely on the honey it stored in summer.
== aqueducts
slide: Roman Aqueducts | Water carried by gravity alone | Arches, tunnels and channels
- The Romans built aqueducts to bring fresh water from distant springs into their cities.
- An aqueduct was mostly a covered channel that sloped very gently downhill the whole way.
- Engineers kept the fall to a few centimetres every hundred metres, which demanded careful surveying.
- Most of the route ran underground or along the ground, hidden from view.
- Only where the channel had to cross a valley did the builders raise the famous rows of arches.
- The Pont du Gard in southern France carries its channel almost fifty metres above a river.
- At the edge of the city the water flowed into a distribution tank called a castellum.
- From there lead pipes carried it to public fountains, baths and the houses of wealthy families.
- Ancient Rome was supplied by eleven aqueducts, delivering an enormous volume of water each day.
- Limestone deposits slowly narrowed the channels, so workers had to chip them clean regularly.
- Some of these aqueducts still carry water to fountains in Rome today.
== coral
slide: Coral Reefs | Tiny animals build the reef | Algae live inside the coral
more: Threats to the Reefs | Warm water causes bleaching | Overfishing and pollution
- A coral reef looks like a garden of rock, but it is built by millions of tiny animals called polyps.
- Each polyp is related to jellyfish and takes calcium from sea water to build a hard cup around itself.
- Over thousands of years these skeletons pile up into enormous limestone structures.
- Inside the tissue of most corals live microscopic algae that turn sunlight into sugar.
- The algae share that food with the coral, and they also give the reef its bright colours.
- Because the algae need light, reef building corals grow only in clear and shallow water.
- Reefs cover a tiny fraction of the ocean floor, yet a quarter of all marine species depend on them.
- Parrotfish graze on the coral and grind it up, and much of the white sand on tropical beaches passes through
  them.
- When the water becomes too warm, the coral expels its algae and turns a ghostly white.
- This bleaching is not instantly fatal, but a coral that stays bleached for weeks will starve.
- Mass bleaching events have struck the Great Barrier Reef several times in recent decades.
- Overfishing removes the grazers that keep seaweed from smothering the coral.
- Runoff from farms carries fertiliser and mud that cloud the water and feed harmful algae.
- Scientists are now growing young corals in nurseries and planting them back onto damaged reefs.
== jazz
slide: Jazz Improvisation | Playing over the chord changes | Call and response
- In jazz, musicians often invent their melodies on the spot while the band plays a familiar tune.
- The soloist follows the chord changes, choosing notes that fit each harmony as it passes.
- Many players begin by learning the solos of their heroes note for note from old records.
- Call and response, where one phrase answers another, comes from the blues and from church music.
- A good improviser leaves space, because silence makes the next phrase sound stronger.
- Every performance is different, so the same song can sound new each night.
== composting
slide: Composting at Home | Greens and browns | Air and moisture
more: Using Finished Compost | Dark, crumbly and sweet smelling | Feed beds and pots
- Composting turns kitchen scraps and garden waste into rich food for the soil.
- A good heap mixes green material, such as vegetable peelings and grass clippings, with brown material like
  dry leaves and cardboard.
- The greens supply nitrogen, while the browns supply carbon and keep the pile open.
- Bacteria and fungi do most of the work, and they need both air and moisture to thrive.
- Turning the heap with a fork every couple of weeks lets fresh oxygen reach the centre.
- A busy heap can become surprisingly hot inside, which kills many weed seeds.
- Leave out meat, dairy and cooked food, which attract rats and smell unpleasant.
- After a few months the material becomes dark, crumbly and sweet smelling.
- Spread it over flower beds or mix it into potting soil to feed your plants.
- Worms will appear on their own and keep improving the soil long after you add the compost.
== lighthouses
slide: Lighthouses | Warning ships away from danger | A light seen from far out at sea
more: Keepers and Automation | Life at a remote station | Lights now run themselves
- For thousands of years, sailors approaching a coast at night had no way of seeing the rocks that waited for
  them.
- The earliest lighthouses were simply fires burning on hilltops or on top of towers near busy harbours.
- The most famous of the ancient lights was the Pharos of Alexandria, which was counted among the wonders of
  the world.
- Later towers burned candles or oil lamps, but much of the light escaped in every direction and was wasted.
- Mirrors placed behind the flame helped a little, though they tarnished quickly in the salty air.
- The great breakthrough came in the early nineteenth century with the lens designed by the French physicist
  Augustin Fresnel.
- His lens was built from rings of glass prisms that bent the scattered light into a single powerful beam.
- A large Fresnel lens could send its beam more than thirty kilometres out to sea.
- Each lighthouse was given its own pattern of flashes, so a navigator could tell exactly which light he was
  seeing.
- In the daytime the towers were recognised instead by their shapes and by the stripes painted on them.
- Building a tower on a bare rock in the open sea was one of the hardest engineering tasks of the age.
- Workers could often land only at low tide in calm weather, and a whole season might add just a few courses
  of stone.
- Once the light was lit, keepers lived at the station and tended the lamp through every night of the year.
- They trimmed the wicks, wound the clockwork that turned the lens, and polished the brass and glass each
  morning.
- On remote rocks, the keepers were relieved by boat and could be stranded for weeks when storms blew in.
- During the twentieth century electric lamps replaced the oil, and timers and sensors replaced the keepers.
- Today almost every lighthouse runs automatically, and many of the old keepers' cottages have become museums
  or holiday homes.
- Satellite navigation has made the lights less vital, yet many countries still keep them burning as a backup.
== silkroad
slide: The Silk Road | Trade routes from China to the Mediterranean | Caravans and oasis towns
more: More Than Silk | Paper, spices and glass | Ideas and religions travelled too
- The Silk Road was not one road but a web of trade routes linking China with the Mediterranean.
- It took its name from Chinese silk, which was prized by wealthy Romans for its lightness and shine.
- Few merchants travelled the whole distance, and goods usually passed through many hands along the way.
- Camel caravans crossed deserts such as the Taklamakan, resting at oasis towns like Kashgar and Samarkand.
- These towns grew rich by offering water, markets and places to sleep to passing traders.
- Silk moved west, while gold, silver, glass and wool moved east.
- Spices, tea, horses and precious stones changed owners at every great market.
- Papermaking spread from China to the Islamic world and eventually reached Europe.
- Buddhism travelled from India into China along the same routes as the merchants.
- Travellers also carried diseases, and the Black Death may have spread partly along these paths.
- The famous Venetian traveller Marco Polo described the routes to amazed European readers.
- When sea routes around Africa and India became cheaper, the overland trade slowly declined.
- Today the name is used again for new railways and highways across central Asia.
== marathon
slide: Training for a Marathon | Build distance slowly | Rest is part of training
- Running a marathon means covering just over forty two kilometres without stopping.
- Most beginners need about four or five months of steady training to get ready.
- The heart of any plan is one long run each week that grows by a kilometre or two at a time.
- The other runs should be short and easy, at a pace where you can still hold a conversation.
- Rest days matter, because muscles and tendons grow stronger while you recover, not while you run.
- In the final three weeks you taper, cutting back your distance so your legs feel fresh on race day.
- Practise eating and drinking on your long runs, so your stomach knows what to expect.
- On the day itself, the most common mistake is starting far too fast in the excitement.
- Crossing the finish line is a wonderful feeling that many runners remember for the rest of their lives.
== nightsky
slide: Finding Your Way in the Night Sky | Constellations as a map | Planets wander among the stars
- On a clear night far from city lights, the naked eye can see a few thousand stars.
- Ancient peoples grouped the brightest of them into constellations named after heroes and animals.
- Astronomers today divide the whole sky into eighty eight official constellations with fixed borders.
- The stars of a constellation only look close together, and many of them are very far apart in space.
- In the northern hemisphere, the Plough points towards the Pole Star, which hardly moves through the night.
- Because the earth spins, the rest of the sky seems to turn slowly around that point.
- As the earth travels around the sun, different constellations appear in the evening through the year.
- Orion the hunter dominates winter evenings, while the Summer Triangle rules the warm months.
- The planets do not keep fixed places among the stars, and the word planet means wanderer.
- Venus is often the brightest point in the sky after the moon, shining low at dusk or dawn.
- Jupiter shows a steady light, and even small binoculars reveal its four largest moons.
- The faint band of the Milky Way is the combined glow of billions of distant stars in our own galaxy.
- Meteors are grains of dust burning up high in the atmosphere, and they are not stars at all.
- Let your eyes adapt to the dark for twenty minutes and many more faint stars will appear.
- A simple star chart and a red torch are all a beginner needs to start learning the sky.
== clocks
slide: Keeping Time | Sundials, water clocks and candles | Why people measured the hours
more: Mechanical Clocks | The escapement and the pendulum | Railway time and atomic clocks
- For most of history, people told the time by watching the sun, and the length of an hour changed with the
  seasons of the year.
- The ancient Egyptians set up tall stone obelisks and read the hour from the long shadow that each one cast
  across the ground.
- A sundial works the same way, but it is useless at night and on cloudy days, which are common in northern
  countries.
- Water clocks solved part of that problem by letting water drip steadily from one bowl into another that was
  marked with lines.
- In ancient Athens, a water clock limited how long a speaker could talk in the law courts, so nobody could go
  on for ever.
- Monks in medieval Europe burned candles marked with rings, because they needed to wake for prayers at fixed
  times during the night.
- The first mechanical clocks appeared in the towers of European churches and town halls near the end of the
  thirteenth century.
- Their heart was a device called the escapement, which let a falling weight turn the gears in small and
  regular steps.
- These early tower clocks were so inaccurate that they could gain or lose a quarter of an hour in a single day.
- Many of them had no hands at all and simply rang a bell every hour for the people working in the streets
  below.
- Around the year sixteen fifty, the Dutch scientist Christiaan Huygens built the first clock regulated by a
  swinging pendulum.
- A pendulum of a fixed length always takes the same time for each swing, so the new clocks kept time within a
  minute a day.
- Soon the wealthy families of Europe showed off tall case clocks with painted dials in the halls of their
  houses.
- Sailors badly needed an accurate clock, because comparing local noon with the time at home revealed how far
  east or west a ship had sailed.
- The English carpenter John Harrison spent decades building a marine clock that kept time on a rolling ship
  at sea.
- In the nineteenth century, the railways forced towns that had each kept their own local time to agree on a
  single standard.
- Time zones followed, dividing the world into bands that are mostly one hour apart from their neighbours.
- In the twentieth century, quartz crystals that vibrate thousands of times a second made cheap and accurate
  watches possible.
- Today atomic clocks count the vibrations of caesium atoms and would lose less than a second in millions of
  years.
- Every satellite navigation receiver depends on those atomic clocks, because a tiny timing error becomes a
  large error in position.
== knots
slide: Three Useful Knots | Reef knot, bowline, clove hitch | Practise with a short rope
- A few simple knots will serve you well on boats and campsites.
- The reef knot joins two ends of the same rope around a bundle.
- Remember the rule right over left, then left over right.
- The bowline makes a fixed loop that will not slip or jam.
- A clove hitch quickly ties a rope to a post or a rail.
- Practise each knot with your eyes closed until your hands remember it.
"""

# Each lecture: its topics in order, and how each is shown (VISUALS).
LECTURES: dict[str, tuple[tuple[str, str], ...]] = {
    "lecture-a": (
        ("volcanoes", "slide"),
        ("sourdough", "slides"),
        ("tides", "speaker"),
        ("bicycles", "speaker"),
        ("honeybees", "slide"),
        ("knots", "slide"),
        ("marathon", "speaker"),
    ),
    "lecture-b": (
        ("printing", "slides"),
        ("coral", "slide"),
        ("jazz", "dark"),
        ("composting", "slides"),
        ("aqueducts", "slide"),
        ("marathon", "dark"),
    ),
    "lecture-c": (
        ("clocks", "slides"),
        ("nightsky", "speaker"),
        ("silkroad", "speaker"),
        ("tides", "slide"),
        ("bicycles", "slide"),
        ("volcanoes", "dark"),
    ),
    "lecture-d": (
        ("jazz", "slide"),
        ("composting", "speaker"),
        ("aqueducts", "speaker"),
        ("coral", "slides"),
        ("honeybees", "dark"),
        ("lighthouses", "slide"),
    ),
}


@dataclass(frozen=True)
class Topic:
    name: str
    heading: str
    bullets: tuple[str, ...]
    more: tuple[str, tuple[str, ...]] | None  # the "continued" slide: heading, bullets
    sentences: tuple[str, ...]


def _slide_of(text: str) -> tuple[str, tuple[str, ...]]:
    heading, *bullets = (part.strip() for part in text.split("|"))
    return heading, tuple(bullets)


def parse_topics(script: str) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    name, slide, more, sentences = "", None, None, []

    def close() -> None:
        if name:
            if slide is None or not sentences:
                raise SystemExit(f"topic {name!r} needs a slide and sentences")
            topics[name] = Topic(name, slide[0], slide[1], more, tuple(sentences))

    for raw in script.strip().splitlines():
        line = raw.strip()
        if raw.startswith("== "):
            close()
            name, slide, more, sentences = line[3:], None, None, []
        elif line.startswith("slide: "):
            slide = _slide_of(line[len("slide: ") :])
        elif line.startswith("more: "):
            more = _slide_of(line[len("more: ") :])
        elif line.startswith("- "):
            sentences.append(line[2:])
        elif line and raw.startswith("  ") and sentences:
            sentences[-1] += " " + line
        elif line:
            raise SystemExit(f"topic {name!r}: cannot read the line {raw!r}")
    close()
    return topics


TOPICS = parse_topics(TOPIC_SCRIPT)


def check_lectures() -> list[str]:
    problems = []
    for lecture, items in LECTURES.items():
        for name, visual in items:
            if name not in TOPICS:
                problems.append(f"{lecture}: no topic {name!r}")
            elif visual not in VISUALS:
                problems.append(f"{lecture}: {name} is shown as {visual!r}, not one of {VISUALS}")
            elif visual == "slides" and TOPICS[name].more is None:
                problems.append(f"{lecture}: {name} has no continued slide ('more:')")
    seen: dict[str, str] = {}
    for topic in TOPICS.values():
        for sentence in topic.sentences:
            if sentence in seen:
                problems.append(f"the sentence {sentence!r} is in {seen[sentence]} and {topic.name}")
            seen[sentence] = topic.name
    return problems


def definitions_key() -> str:
    """What the cached videos and warehouse are made from: new words, lectures or pauses, new cache."""
    text = repr((DATA_VERSION, TOPIC_SCRIPT, LECTURES, LEAD_IN_S, TAIL_S, GAP_S, LONG_GAP_S, LONG_GAP_P))
    return f"{zlib.crc32(text.encode()):08x}"


# -- generation ------------------------------------------------------------------------------------------------


def speaker_picture() -> np.ndarray:
    """A plain picture of someone at a desk in front of a wall and a window (no text), RGB at VIDEO_SIZE."""
    import cv2

    width, height = VIDEO_SIZE
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([196, 184, 160], np.float32), np.array([150, 138, 118], np.float32)
    image = np.ascontiguousarray(np.broadcast_to(top + (bottom - top) * rows, (height, width, 3)).astype(np.uint8))
    cv2.rectangle(image, (880, 90), (1180, 380), (215, 230, 240), -1)  # the window
    cv2.rectangle(image, (880, 90), (1180, 380), (90, 80, 70), 10)
    cv2.line(image, (1030, 90), (1030, 380), (90, 80, 70), 8)
    cv2.ellipse(image, (560, 620), (230, 190), 0, 180, 360, (60, 70, 110), -1)  # shoulders
    cv2.rectangle(image, (520, 380), (600, 450), (170, 130, 110), -1)  # neck
    cv2.ellipse(image, (560, 300), (95, 120), 0, 0, 360, (185, 145, 120), -1)  # head
    cv2.ellipse(image, (560, 215), (100, 55), 0, 180, 360, (50, 40, 35), -1)  # hair
    cv2.rectangle(image, (0, 560), (width, height), (110, 80, 55), -1)  # the desk
    return image


def dark_picture() -> np.ndarray:
    width, height = VIDEO_SIZE
    return np.full((height, width, 3), (14, 14, 18), np.uint8)


@dataclass
class Lecture:
    name: str
    key: str  # partition key under the media root
    path: Path
    duration_s: float
    topics: list[dict]  # name, visual, start_s, end_s, heading (None: no slide), inside (slide changes inside)
    sentences: list[dict]  # start_s, end_s (speech onset and end), text, topic (index)
    long_pauses: list[float]  # where a long pause is (its middle)

    @property
    def boundaries(self) -> list[float]:
        return [topic["start_s"] for topic in self.topics[1:]]

    @property
    def slide_changes_inside(self) -> list[float]:
        return [t for topic in self.topics for t in topic["inside"]]

    def reference(self, index: int) -> str:
        return " ".join(s["text"] for s in self.sentences if s["topic"] == index)


def _loud_span(speech: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(speech) > 0.02)
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, len(speech))


def build_lecture(name: str, media_root: Path, speech_dir: Path, dark_slides: bool) -> Lecture:
    """The lecture's video and its truth (topic, sentence and pause times) as JSON beside it."""
    key = f"lectures/{name}.mp4"
    path = media_root / key
    truth_path = path.with_suffix(".json")
    if path.exists() and truth_path.exists():
        truth = json.loads(truth_path.read_text())
        return Lecture(name, key, path, truth["duration_s"], truth["topics"], truth["sentences"], truth["long_pauses"])
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(zlib.crc32(name.encode()))
    speaker, dark = speaker_picture(), dark_picture()
    pieces: list[tuple[int, np.ndarray]] = []
    pictures: list[tuple[float, np.ndarray]] = []
    topics, sentences, long_pauses = [], [], []
    shown = None  # what is on screen: ("slide", topic index, part) or the visual's name
    end = LEAD_IN_S  # where the last sentence's speech ended (the first starts here)
    for index, (topic_name, visual) in enumerate(LECTURES[name]):
        topic = TOPICS[topic_name]
        middle = len(topic.sentences) // 2
        inside = []
        for number, text in enumerate(topic.sentences):
            if index == 0 and number == 0:
                gap, at = 0.0, LEAD_IN_S
            else:
                long = rng.random() < LONG_GAP_P
                gap = rng.uniform(*(LONG_GAP_S if long else GAP_S))
                at = end + gap
                if long:
                    long_pauses.append(round(end + gap / 2, 3))
            cut = 0.0 if index == 0 and number == 0 else round(end + gap / 2, 3)  # where a new picture starts
            if number == 0:
                topics.append(
                    {
                        "name": topic_name,
                        "visual": visual,
                        "start_s": cut,
                        "heading": topic.heading if visual.startswith("slide") else None,
                        "inside": inside,
                    }
                )
                wanted = ("slide", index, 0) if visual.startswith("slide") else visual
                if wanted != shown:
                    if visual.startswith("slide"):
                        picture = render_slide(topic.heading, list(topic.bullets), dark_slides)
                    else:
                        picture = speaker if visual == "speaker" else dark
                    pictures.append((cut, picture))
                    shown = wanted
            elif visual == "slides" and number == middle:
                heading, bullets = topic.more
                pictures.append((cut, render_slide(heading, list(bullets), dark_slides)))
                shown = ("slide", index, 1)
                inside.append(cut)
            speech = espeak_samples(text, speech_dir)
            first, last = _loud_span(speech)
            offset = int(round(at * SPEECH_RATE)) - first
            pieces.append((offset, speech))
            end = at + (last - first) / SPEECH_RATE
            sentences.append({"start_s": round(at, 3), "end_s": round(end, 3), "text": text, "topic": index})
    duration = float(np.ceil(end + TAIL_S))
    for number, topic in enumerate(topics):
        topic["end_s"] = topics[number + 1]["start_s"] if number + 1 < len(topics) else duration
    samples = np.zeros(int(round(duration * SPEECH_RATE)), np.float32)
    for offset, speech in pieces:
        lo = max(offset, 0)
        samples[lo : offset + len(speech)] += speech[lo - offset : len(samples) - offset]
    write_talk_video(path, samples, pictures, duration)
    truth = {"duration_s": duration, "topics": topics, "sentences": sentences, "long_pauses": long_pauses}
    truth_path.write_text(json.dumps(truth, indent=1))
    return Lecture(name, key, path, duration, topics, sentences, long_pauses)


def ensure_lectures(cache: Path, names: list[str]) -> tuple[Path, list[Lecture]]:
    media_root = cache / f"lectures-{definitions_key()}" / "media"
    lectures = []
    for number, name in enumerate(LECTURES):
        if name in names:
            lectures.append(build_lecture(name, media_root, cache / "speech", dark_slides=number % 2 == 1))
    return media_root, lectures


# -- the ingest ------------------------------------------------------------------------------------------------


def load_models(cache: Path, need_ingest: bool) -> tuple[dict, dict]:
    """The models the stages use, loaded once before anything is timed; (models, load seconds)."""
    from media_assets.models.text import TextEncoder

    models, loads = {}, {}
    started = time.perf_counter()
    models["text"] = TextEncoder.load()
    models["text"].encode(["warm up the encoder"])
    loads["all-MiniLM-L6-v2"] = time.perf_counter() - started
    if need_ingest:
        from media_assets.models.asr import SpeechRecognizer
        from media_assets.models.clip import ClipEncoder
        from media_assets.models.ocr import TextReader

        started = time.perf_counter()
        models["clip"] = ClipEncoder.load(str(ensure_tiny_clip(cache)), device="cpu")
        loads["CLIP (tiny, random)"] = time.perf_counter() - started
        started = time.perf_counter()
        models["asr"] = SpeechRecognizer.load()
        loads["Whisper tiny.en"] = time.perf_counter() - started
        started = time.perf_counter()
        models["ocr"] = TextReader.load()
        loads["RapidOCR"] = time.perf_counter() - started
    return models, loads


def ingest(warehouse, lecture: Lecture, models: dict) -> dict:
    """Every stage before the chapters on one lecture, each timed; the seconds by stage."""
    from media_assets.media.discovery import stat_media_file
    from media_assets.stages.frame_embeddings import embed_frames
    from media_assets.stages.frames import extract_frames
    from media_assets.stages.screen_text import read_screen_text
    from media_assets.stages.shots import make_shot_list
    from media_assets.stages.text_vectors import embed_texts
    from media_assets.stages.transcripts import transcribe_media

    media_file = stat_media_file(lecture.path, warehouse.media_root)
    media_id = media_file.media_id
    steps = {
        "frames": lambda: extract_frames(warehouse, media_file),
        "frame_embeddings": lambda: embed_frames(warehouse, media_id, models["clip"]),
        "shots": lambda: make_shot_list(warehouse, media_id),
        "transcripts": lambda: transcribe_media(warehouse, media_file, recognizer=models["asr"]),
        "screen_text": lambda: read_screen_text(warehouse, media_id, reader=models["ocr"]),
        "text_vectors": lambda: embed_texts(warehouse, media_id, models["text"]),
    }
    seconds, results = {}, {}
    meter = new_meter(f"ingest {lecture.name}")
    for stage, step in steps.items():
        with meter.measure():
            started = time.perf_counter()
            results[stage] = step()
            seconds[stage] = time.perf_counter() - started
    return {
        "media_id": media_id,
        "seconds": seconds,
        "frames": results["frames"].kept,
        "others_cores": meter.others_cores,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def ensure_ingest(root: Path, media_root: Path, lectures: list[Lecture], models_for, reingest: bool):
    """The warehouse with every lecture ingested, and each lecture's ingest record (its stage timings, when
    they were measured, whether in this run)."""
    warehouse = talks_warehouse(root / "warehouse", media_root)
    records_path = root / "ingest.json"
    records = json.loads(records_path.read_text()) if records_path.exists() else {}
    for lecture in lectures:
        if lecture.name in records and not reingest:
            records[lecture.name]["this_run"] = False
            continue
        say(f"  ingesting {lecture.name} ({lecture.duration_s:.0f} s) ...")
        record = ingest(warehouse, lecture, models_for())
        record["this_run"] = True
        records[lecture.name] = record
        records_path.write_text(json.dumps({k: {**v, "this_run": False} for k, v in records.items()}, indent=1))
    return warehouse, {lecture.name: records[lecture.name] for lecture in lectures}


# -- the chapters, timed -----------------------------------------------------------------------------------------


@contextmanager
def parts_timer(encoder, spent: dict):
    """Add the time `make_chapters` spends in the sentence encoder and in `find_chapters` to `spent`."""
    import media_assets.stages.chapters as stage

    original_encode, original_find = encoder.encode, getattr(stage, "find_chapters", None)

    def encode(texts, *args, **kwargs):
        spent["texts"] = spent.get("texts", 0) + len(texts)
        spent["calls"] = spent.get("calls", 0) + 1
        started = time.perf_counter()
        try:
            return original_encode(texts, *args, **kwargs)
        finally:
            spent["encode"] = spent.get("encode", 0.0) + time.perf_counter() - started

    def find_chapters(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original_find(*args, **kwargs)
        finally:
            spent["find_chapters"] = spent.get("find_chapters", 0.0) + time.perf_counter() - started

    encoder.encode = encode
    if original_find is not None:
        stage.find_chapters = find_chapters
    try:
        yield
    finally:
        del encoder.encode  # the instance attribute: the class's method shows again
        if original_find is not None:
            stage.find_chapters = original_find


def time_chapters(warehouse, lectures: list[Lecture], records: dict, encoder, rounds: int) -> dict:
    """`make_chapters` on each lecture: one untimed warm-up call, then `rounds` timed calls; each lecture's
    best round, its parts (encoder, segmentation, the rest) in that round, and the last call's result."""
    from media_assets.stages.chapters import make_chapters

    make_chapters(warehouse, records[lectures[0].name]["media_id"], encoder)  # warm-up: tokenizer, tables, LanceDB
    meter = new_meter("chapters")
    out = {}
    for lecture in lectures:
        media_id = records[lecture.name]["media_id"]
        times, parts, result = [], [], None
        for _ in range(rounds):
            spent: dict[str, float] = {}
            with meter.measure(), parts_timer(encoder, spent):
                started = time.perf_counter()
                result = make_chapters(warehouse, media_id, encoder)
                times.append(time.perf_counter() - started)
            parts.append(spent)
        best = int(np.argmin(times))
        out[lecture.name] = {"times": times, "best": times[best], "parts": parts[best], "result": result}
    out["_meter"] = meter
    return out


# -- scores ----------------------------------------------------------------------------------------------------


def match(predicted: list[float], truth: list[float], tolerance: float = TOLERANCE_S) -> dict[int, int]:
    """One-to-one matches within `tolerance`, the closest pair first: {truth index: predicted index}."""
    pairs = sorted(
        (abs(p - t), ti, pi) for ti, t in enumerate(truth) for pi, p in enumerate(predicted) if abs(p - t) <= tolerance
    )
    matched, used = {}, set()
    for _, ti, pi in pairs:
        if ti not in matched and pi not in used:
            matched[ti] = pi
            used.add(pi)
    return matched


@dataclass
class Counts:
    hits: int = 0
    predicted: int = 0
    truth: int = 0

    def add(self, other: Counts) -> None:
        self.hits += other.hits
        self.predicted += other.predicted
        self.truth += other.truth

    @property
    def precision(self) -> float:
        return self.hits / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.hits / self.truth if self.truth else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def counts_of(predicted: list[float], truth: list[float]) -> Counts:
    return Counts(len(match(predicted, truth)), len(predicted), len(truth))


def fixed_windows(lecture: Lecture) -> list[float]:
    """Baseline: a boundary every mean true topic length (duration / topics)."""
    length = lecture.duration_s / len(lecture.topics)
    return [k * length for k in range(1, len(lecture.topics)) if k * length < lecture.duration_s]


def screen_readings(warehouse, media_id: int) -> list[tuple[float, list[str]]]:
    """The file's `screen_text` rows as one reading per frame read: (the earliest start_s, its lines)."""
    from media_assets.store import catalog

    rows = catalog.read_partition(warehouse, "screen_text", media_id)
    by_frame: dict[int, list[dict]] = {}
    for row in rows.to_pylist() if rows is not None else []:
        if (row["text"] or "").strip():
            by_frame.setdefault(int(row["frame_id"]), []).append(row)
    return sorted(
        ((min(r["start_s"] for r in group), [r["text"] for r in group]) for group in by_frame.values()),
        key=lambda reading: reading[0],
    )


def slide_change_boundaries(warehouse, media_id: int) -> list[float]:
    """Baseline: every change of the text on screen (the library's rule, `models.chapters.slide_changes`)."""
    from media_assets.models.chapters import slide_changes

    return [time_s for time_s, _ in slide_changes(screen_readings(warehouse, media_id)) if time_s > 0]


WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> tuple[float, float, float]:
    """ROUGE-L (precision, recall, F1) of the word tokens' longest common subsequence."""
    cand, ref = words_of(candidate), words_of(reference)
    if not cand or not ref:
        return 0.0, 0.0, 0.0
    common = lcs_length(cand, ref)
    p, r = common / len(cand), common / len(ref)
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def transcript_sentences(warehouse, media_id: int) -> list[dict]:
    """The stored transcript's sentences as the stage sees them (its primary source, segments it calls silence
    left out), each timed by its share of its segment's characters."""
    from media_assets.models.asr import is_silence
    from media_assets.models.summaries import split_sentences
    from media_assets.store.transcripts import primary_source, read_transcript

    transcript = read_transcript(warehouse, media_id)
    source = primary_source(transcript)
    sentences = []
    for segment in transcript.segments:
        if segment["source"] != source or is_silence(segment.get("no_speech_prob"), segment.get("avg_logprob")):
            continue
        start, end = float(segment["start_s"]), float(segment["end_s"])
        pieces = split_sentences(segment["text"] or "")
        total, at = sum(len(p) for p in pieces) or 1, 0
        for piece in pieces:
            lo, hi = start + (end - start) * at / total, start + (end - start) * (at + len(piece)) / total
            sentences.append({"start_s": lo, "end_s": hi, "text": piece})
            at += len(piece)
    return sentences


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def most_overlapping_topic(lecture: Lecture, start_s: float, end_s: float) -> int:
    spans = [overlap((start_s, end_s), (t["start_s"], t["end_s"])) for t in lecture.topics]
    return int(np.argmax(spans))


def normalised(text: str) -> str:
    return " ".join(words_of(text))


def text_valleys(sentences: list[dict], encoder, truth: list[float]) -> dict:
    """Diagnostic (untimed): how deep the transcript's TextTiling valley is at each true boundary, beside the
    deepest one away from every boundary. z = (depth - the file's median depth) / (1.4826 MAD), the
    scale-free depth `models.chapters` scores, with its `depth_scores` at the default block size, over the
    sentences as the stage cuts them; each gap at the middle of its silence."""
    from media_assets.models.chapters import ChapterSettings, depth_scores

    if len(sentences) < 3:
        return {"at_truth": [None] * len(truth), "away": None, "away_at": None}
    vectors = np.asarray(encoder.encode([s["text"] for s in sentences]), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    depth = depth_scores(vectors, ChapterSettings().block_sentences)
    median = float(np.median(depth))
    spread = 1.4826 * float(np.median(np.abs(depth - median))) or float(np.mean(np.abs(depth - median))) or 1.0
    z = (depth - median) / spread
    gaps = np.array([(a["end_s"] + b["start_s"]) / 2 for a, b in zip(sentences[:-1], sentences[1:], strict=True)])
    at_truth = []
    for time_s in truth:
        near = np.flatnonzero(np.abs(gaps - time_s) <= TOLERANCE_S)
        at_truth.append(float(z[near].max()) if len(near) else None)
    away = np.ones(len(gaps), bool)
    for time_s in truth:
        away &= np.abs(gaps - time_s) > TOLERANCE_S
    if not away.any():
        return {"at_truth": at_truth, "away": None, "away_at": None}
    best = int(np.flatnonzero(away)[np.argmax(z[away])])
    return {"at_truth": at_truth, "away": float(z[best]), "away_at": float(gaps[best]), "away_all": z[away].tolist()}


def score_lecture(warehouse, lecture: Lecture, media_id: int, chapters: list[dict], encoder) -> dict:
    """Boundaries (ours and the baselines) and every chapter's summary against its topic's sentences."""
    from media_assets.models.summaries import split_sentences

    truth = lecture.boundaries
    predicted = {
        "ours": [float(c["start_s"]) for c in sorted(chapters, key=lambda c: c["index"])[1:]],
        "fixed windows": fixed_windows(lecture),
        "slide changes": slide_change_boundaries(warehouse, media_id),
    }
    counts = {method: counts_of(times, truth) for method, times in predicted.items()}
    sentences = transcript_sentences(warehouse, media_id)
    slide_lines = {normalised(line) for topic in TOPICS.values() for line in (topic.heading, *topic.bullets)}
    slide_lines |= {normalised(line) for t in TOPICS.values() if t.more for line in (t.more[0], *t.more[1])}
    rows = []
    for chapter in sorted(chapters, key=lambda c: c["index"]):
        start, end = float(chapter["start_s"]), float(chapter["end_s"])
        topic = most_overlapping_topic(lecture, start, end)
        reference = lecture.reference(topic)
        inside = [s["text"] for s in sentences if start <= (s["start_s"] + s["end_s"]) / 2 < end]
        lead = " ".join(inside[:LEAD_SENTENCES])
        summary = chapter["summary"] or ""
        pieces = split_sentences(summary)
        shown = sum(normalised(piece) in slide_lines for piece in pieces)
        heading = lecture.topics[topic]["heading"]
        rows.append(
            {
                "index": chapter["index"],
                "start_s": start,
                "end_s": end,
                "title": chapter["title"],
                "method": chapter["method"],
                "sources": list(chapter["sources"] or []),
                "topic": topic,
                "covers": overlap((start, end), (lecture.topics[topic]["start_s"], lecture.topics[topic]["end_s"]))
                / max(end - start, 1e-9),
                "ours": rouge_l(summary, reference),
                "lead": rouge_l(lead, reference),
                "lead_same": rouge_l(" ".join(words_of(" ".join(inside))[: len(words_of(summary))]), reference),
                "summary_words": len(words_of(summary)),
                "lead_words": len(words_of(lead)),
                "sentences": len(inside),
                "screen_pieces": shown,
                "pieces": len(pieces),
                "heading": heading,
                "title_is_heading": heading is not None and normalised(chapter["title"] or "") == normalised(heading),
            }
        )
    valleys = text_valleys(sentences, encoder, truth)
    fragments = sum(not re.search(r"[.!?…][\"')\]]*$", s["text"].strip()) for s in sentences)
    return {
        "predicted": predicted,
        "counts": counts,
        "chapters": rows,
        "valleys": valleys,
        "sentences": len(sentences),
        "fragments": fragments,
    }


# -- report ----------------------------------------------------------------------------------------------------


def clock(seconds: float) -> str:
    tenths = int(round(seconds * 10))
    return f"{tenths // 600}:{tenths % 600 / 10:04.1f}"


def cue_at(lecture: Lecture, number: int) -> str:
    """What the picture does at the start of topic `number` (>= 1), and a long pause there."""
    before, after = lecture.topics[number - 1]["visual"], lecture.topics[number]["visual"]
    kind = {"slide": "slide", "slides": "slide", "speaker": "speaker", "dark": "dark"}
    if kind[before] == kind[after] == "slide":
        cue = "new slide"
    elif kind[before] == kind[after]:
        cue = f"{kind[after]} stays: nothing visual"
    else:
        cue = f"{kind[before]} -> {kind[after]}"
    start = lecture.topics[number]["start_s"]
    if any(abs(p - start) < 0.01 for p in lecture.long_pauses):
        cue += ", long pause"
    return cue


def near_note(lecture: Lecture, time_s: float) -> str:
    """Where a spurious boundary is: in which topic, and what is near it."""
    topic = next(
        i for i, t in enumerate(lecture.topics) if t["start_s"] <= time_s < t["end_s"] or i == len(lecture.topics) - 1
    )
    span = lecture.topics[topic]
    notes = [f"{span['name']} +{time_s - span['start_s']:.0f} s of {span['end_s'] - span['start_s']:.0f}"]
    inside = [t for t in lecture.slide_changes_inside if abs(t - time_s) <= TOLERANCE_S]
    if inside:
        notes.append(f"continued slide at {clock(inside[0])}")
    pauses = [p for p in lecture.long_pauses if abs(p - time_s) <= 3.0]
    if pauses:
        notes.append(f"long pause at {clock(pauses[0])}")
    nearest = min(lecture.boundaries, key=lambda b: abs(b - time_s)) if lecture.boundaries else None
    if nearest is not None:
        notes.append(f"nearest true {clock(nearest)} ({time_s - nearest:+.0f} s)")
    return "; ".join(notes)


def report_lecture(lecture: Lecture, scores: dict, chapters: list[dict]) -> None:
    truth = lecture.boundaries
    predicted = scores["predicted"]
    matches = {method: match(times, truth) for method, times in predicted.items()}
    sources = {float(c["start_s"]): ",".join(c["sources"] or []) for c in chapters}
    say()
    topics = ", ".join(f"{t['name']} ({t['visual']}, {t['end_s'] - t['start_s']:.0f} s)" for t in lecture.topics)
    say(f"-- {lecture.name}: {clock(lecture.duration_s)}, {len(lecture.topics)} topics: {topics}")
    rows = []
    for number, time_s in enumerate(truth, start=1):
        cells = [clock(time_s), f"{lecture.topics[number - 1]['name']} -> {lecture.topics[number]['name']}"]
        cells.append(cue_at(lecture, number))
        for method in ("ours", "slide changes", "fixed windows"):
            index = matches[method].get(number - 1)
            if index is None:
                cells.append("MISSED")
            else:
                at = predicted[method][index]
                cells.append(f"{clock(at)} {at - time_s:+.1f}")
        index = matches["ours"].get(number - 1)
        cells.append(sources.get(predicted["ours"][index], "") if index is not None else "")
        cells.append(fmt(scores["valleys"]["at_truth"][number - 1], 1))
        rows.append(cells)
    table(["true", "topics", "cue", "ours", "slide changes", "fixed", "our sources", "text z"], rows)
    if scores["valleys"]["away"] is not None:
        say(
            f"  text z: the deepest TextTiling valley within +-{TOLERANCE_S:.0f} s of each true boundary; away from "
            f"every boundary the deepest is {scores['valleys']['away']:.1f} at {clock(scores['valleys']['away_at'])}"
        )
    say(
        f"  transcript: {scores['sentences']} sentences as the stage cuts them ({len(lecture.sentences)} spoken), "
        f"{scores['fragments']} of them without a closing mark (a sentence the recogniser's segments cut in two)"
    )
    spurious = [
        (at, sources.get(at, "")) for i, at in enumerate(predicted["ours"]) if i not in set(matches["ours"].values())
    ]
    for at, why in spurious:
        say(f"  spurious (ours) {clock(at)} [{why}]: {near_note(lecture, at)}")
    extra = [at for i, at in enumerate(predicted["slide changes"]) if i not in set(matches["slide changes"].values())]
    if extra:
        say("  spurious (slide changes) " + ", ".join(clock(at) for at in extra))
    rows = []
    for row in scores["chapters"]:
        topic = lecture.topics[row["topic"]]
        rows.append(
            [
                str(row["index"]),
                f"{clock(row['start_s'])}-{clock(row['end_s'])}",
                f"{topic['name']} {100 * row['covers']:.0f}%",
                (row["title"] or "")[:44] + (" [=heading]" if row["title_is_heading"] else ""),
                row["method"],
                f"{row['ours'][2]:.3f}",
                f"{row['lead'][2]:.3f}",
                f"{row['summary_words']}/{row['lead_words']}",
                f"{row['screen_pieces']}/{row['pieces']}",
            ]
        )
    table(["#", "span", "topic (share)", "title", "method", "ROUGE-L", "lead-3", "words", "shown"], rows)


def report_boundaries(lectures: list[Lecture], scores: dict) -> float:
    methods = ("ours", "fixed windows", "slide changes")
    pooled = {method: Counts() for method in methods}
    rows = []
    for lecture in lectures:
        counts = scores[lecture.name]["counts"]
        cells = [lecture.name, str(len(lecture.boundaries))]
        for method in methods:
            pooled[method].add(counts[method])
            c = counts[method]
            cells.append(f"{c.hits}/{c.predicted} {c.precision:.2f} {c.recall:.2f} {c.f1:.2f}")
        rows.append(cells)
    rows.append(
        ["pooled", str(pooled["ours"].truth)]
        + [f"{c.hits}/{c.predicted} {c.precision:.2f} {c.recall:.2f} {c.f1:.2f}" for c in pooled.values()]
    )
    say()
    say(
        f"== (a) boundaries: +-{TOLERANCE_S:.0f} s, one to one, closest first; per method: matched/predicted "
        "precision recall F1"
    )
    table(["lecture", "true", "ours (make_chapters)", "fixed windows", "slide changes"], rows)
    better = max(("fixed windows", "slide changes"), key=lambda m: pooled[m].f1)
    ratio = pooled["ours"].f1 / pooled[better].f1 if pooled[better].f1 > 0 else float("nan")
    say(
        f"pooled F1: ours {pooled['ours'].f1:.3f}, fixed windows {pooled['fixed windows'].f1:.3f}, slide changes "
        f"{pooled['slide changes'].f1:.3f}; ours / the better baseline ({better}) = {ratio:.2f}"
    )
    say(f"target: boundary F1 >= {F1_TARGET} x the better baseline ({'met' if ratio >= F1_TARGET else 'MISSED'})")
    at_truth = [z for lecture in lectures for z in scores[lecture.name]["valleys"]["at_truth"] if z is not None]
    away = [z for lecture in lectures for z in scores[lecture.name]["valleys"].get("away_all", [])]
    above = sum(
        z is not None and v["away"] is not None and z > v["away"]
        for lecture in lectures
        for v in (scores[lecture.name]["valleys"],)
        for z in v["at_truth"]
    )
    if at_truth and away:
        say(
            f"the text alone (diagnostic): TextTiling z at the {len(at_truth)} true boundaries median "
            f"{np.median(at_truth):.1f} (min {min(at_truth):.1f}, max {max(at_truth):.1f}); at the {len(away)} gaps "
            f"more than {TOLERANCE_S:.0f} s from any boundary median {np.median(away):.1f}, 95th percentile "
            f"{np.percentile(away, 95):.1f}, max {max(away):.1f}; {above} of {len(at_truth)} true boundaries are "
            "deeper than every valley away from the boundaries of their file"
        )
    return ratio


def report_summaries(lectures: list[Lecture], scores: dict) -> float:
    rows = [row for lecture in lectures for row in scores[lecture.name]["chapters"] if row["method"] != "visual"]
    say()
    say(
        f"== (b) summaries: ROUGE-L against the sentences spoken in the chapter's topic, mean over {len(rows)} chapters"
    )
    if not rows:
        say("no chapter with words")
        return float("nan")
    table_rows = []
    for name, key, words in (
        ("ours (make_chapters, extractive)", "ours", "summary_words"),
        ("lead-3", "lead", "lead_words"),
        ("extra: the chapter's first words, as many as ours", "lead_same", "summary_words"),
    ):
        table_rows.append(
            [
                name,
                f"{np.mean([r[key][2] for r in rows]):.3f}",
                f"{np.mean([r[key][0] for r in rows]):.3f}",
                f"{np.mean([r[key][1] for r in rows]):.3f}",
                f"{np.mean([r[words] for r in rows]):.0f}",
            ]
        )
    table(["", "ROUGE-L F1", "precision", "recall", "words"], table_rows)
    ours = float(np.mean([r["ours"][2] for r in rows]))
    lead = float(np.mean([r["lead"][2] for r in rows]))
    wins = sum(r["ours"][2] > r["lead"][2] for r in rows)
    shown = sum(r["screen_pieces"] for r in rows)
    pieces = sum(r["pieces"] for r in rows)
    with_heading = [r for r in rows if r["heading"] is not None]
    say(
        f"ours beats lead-3 on {wins} of {len(rows)} chapters; {shown} of the summaries' {pieces} sentences are "
        "slide lines (never spoken: they count against precision); titles equal to the slide heading of the "
        f"chapter's topic: {sum(r['title_is_heading'] for r in with_heading)} of {len(with_heading)} chapters "
        "whose topic has a slide"
    )
    ratio = ours / lead if lead > 0 else float("nan")
    say(f"target: ROUGE-L >= {ROUGE_TARGET} x lead-3: {ratio:.2f} ({'met' if ratio >= ROUGE_TARGET else 'MISSED'})")
    return ratio


def report_time(lectures: list[Lecture], records: dict, timed: dict, loads: dict) -> None:
    say()
    say(
        f"== (c) time: make_chapters per file (best of {len(timed[lectures[0].name]['times'])} after a warm-up) "
        "against the whole ingest of the file (stage times in s)"
    )
    headers = ["lecture", "video", *STAGES, "chapters", "total", "share", "s/h video"]
    rows = []
    sums = {key: 0.0 for key in (*STAGES, "chapters", "video")}
    for lecture in lectures:
        seconds = records[lecture.name]["seconds"]
        best = timed[lecture.name]["best"]
        total = sum(seconds[s] for s in STAGES) + best
        for stage in STAGES:
            sums[stage] += seconds[stage]
        sums["chapters"] += best
        sums["video"] += lecture.duration_s
        rows.append(
            [
                lecture.name,
                f"{lecture.duration_s:.0f}",
                *(f"{seconds[s]:.2f}" for s in STAGES),
                f"{best:.2f}",
                f"{total:.1f}",
                f"{100 * best / total:.1f}%",
                f"{3600 * best / lecture.duration_s:.1f}",
            ]
        )
    total = sum(sums[s] for s in STAGES) + sums["chapters"]
    rows.append(
        [
            "all",
            f"{sums['video']:.0f}",
            *(f"{sums[s]:.2f}" for s in STAGES),
            f"{sums['chapters']:.2f}",
            f"{total:.1f}",
            f"{100 * sums['chapters'] / total:.1f}%",
            f"{3600 * sums['chapters'] / sums['video']:.1f}",
        ]
    )
    table(headers, rows)
    this_run = all(records[lecture.name]["this_run"] for lecture in lectures)
    when = sorted({records[lecture.name]["measured_at"] for lecture in lectures})
    others = [records[lecture.name]["others_cores"] for lecture in lectures]
    others = [o for o in others if o is not None and o == o]
    say(
        "the ingest stages' times: "
        + (
            "measured in this run"
            if this_run
            else f"from the cached warehouse, measured {', '.join(when)} (--reingest)"
        )
        + (f"; others used {np.mean(others):.2f} cores meanwhile" if others else "")
    )
    frames = sum(records[lecture.name]["frames"] or 0 for lecture in lectures)
    vit = frames / VIT_B32_IMAGES_PER_S
    real_total = total - sums["frame_embeddings"] + vit
    say(
        f"frame_embeddings ran the tiny random CLIP; with ViT-B/32 ({VIT_B32_IMAGES_PER_S} images/s here, "
        f"docs/benchmarks.md) its {frames} frames would take ~{vit:.0f} s and the chapters' share would be "
        f"~{100 * sums['chapters'] / real_total:.1f}% (an estimate, not measured)"
    )
    parts = {"encode": 0.0, "find_chapters": 0.0, "texts": 0, "calls": 0}
    for lecture in lectures:
        for key in parts:
            parts[key] += timed[lecture.name]["parts"].get(key, 0)
    rest = sums["chapters"] - parts["encode"] - parts["find_chapters"]
    units = sum(
        timed[lecture.name]["result"].sentences + timed[lecture.name]["result"].screen_lines for lecture in lectures
    )
    say(
        f"make_chapters, in its best rounds: sentence encoder {parts['encode']:.2f} s ({parts['texts']} texts in "
        f"{parts['calls']} calls; the files have {units} sentences and screen lines), find_chapters "
        f"{parts['find_chapters']:.3f} s, the rest (reading, titles, summaries, writing rows and vectors) "
        f"{rest:.2f} s; others used {fmt(timed['_meter'].others_cores)} cores meanwhile"
    )
    spread = [f"{lecture.name} {statistics.median(timed[lecture.name]['times']):.2f}" for lecture in lectures]
    say("median of the rounds: " + ", ".join(spread))
    say("model loads (before any timing): " + ", ".join(f"{name} {s:.1f} s" for name, s in loads.items()))


# -- main ------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{len(QUICK_LECTURES)} lectures, 1 round")
    parser.add_argument("--rounds", type=int, default=3, help="timed make_chapters calls per lecture (default 3)")
    parser.add_argument("--reingest", action="store_true", help="run and time every ingest stage again")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "media_assets_chapters_bench")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    started = time.perf_counter()
    quiet_libraries()
    for name in (
        "MEDIA_ASSETS_WAREHOUSE",
        "MEDIA_ASSETS_MEDIA_ROOT",
        "MEDIA_ASSETS_VECTORS_URI",
        "MEDIA_ASSETS_CLIP_MODEL",
        "MEDIA_ASSETS_TEXT_MODEL",
        "MEDIA_ASSETS_TEXT_QUANTIZATION",
        "MEDIA_ASSETS_SUMMARY_MODEL",
    ):
        os.environ.pop(name, None)  # this benchmark says where everything is; extractive summaries only
    environment()
    problems = check_lectures()
    if problems:
        raise SystemExit("the lecture definitions are wrong:\n  " + "\n  ".join(problems))
    names = list(QUICK_LECTURES) if args.quick else list(LECTURES)
    say(
        f"mode: {'quick' if args.quick else 'default'}; lectures {', '.join(names)}; {args.rounds} timed round(s); "
        f"cache {args.cache_dir} (definitions {definitions_key()})"
    )
    say()
    say("== setup")
    t0 = time.perf_counter()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    media_root, lectures = ensure_lectures(args.cache_dir, names)
    video = sum(lecture.duration_s for lecture in lectures)
    boundaries = sum(len(lecture.boundaries) for lecture in lectures)
    say(
        f"  {len(lectures)} lectures ({video:.0f} s, {sum(len(lec.topics) for lec in lectures)} topics, "
        f"{boundaries} boundaries, {sum(len(lec.sentences) for lec in lectures)} sentences) in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    at_boundaries = sum(any(abs(p - b) < 0.01 for p in lec.long_pauses) for lec in lectures for b in lec.boundaries)
    gaps = sum(len(lec.sentences) - 1 for lec in lectures)
    pauses = sum(len(lec.long_pauses) for lec in lectures)
    say(
        f"  long pauses (2-3.5 s): {at_boundaries} of the {boundaries} topic boundaries, "
        f"{pauses - at_boundaries} of the {gaps - boundaries} gaps inside topics"
    )
    root = media_root.parent
    records_path = root / "ingest.json"
    done = json.loads(records_path.read_text()) if records_path.exists() else {}
    need_ingest = args.reingest or any(lecture.name not in done for lecture in lectures)
    models, loads = load_models(args.cache_dir, need_ingest)
    warehouse, records = ensure_ingest(root, media_root, lectures, lambda: models, args.reingest)
    say(f"  setup done in {time.perf_counter() - t0:.0f} s")
    say("== make_chapters, timed ...")
    timed = time_chapters(warehouse, lectures, records, models["text"], args.rounds)
    scores = {
        lecture.name: score_lecture(
            warehouse,
            lecture,
            records[lecture.name]["media_id"],
            timed[lecture.name]["result"].chapters,
            models["text"],
        )
        for lecture in lectures
    }
    say()
    say("== per lecture: true boundaries and the predictions matched to them (time, offset in s); chapters")
    for lecture in lectures:
        report_lecture(lecture, scores[lecture.name], timed[lecture.name]["result"].chapters)
    f1_ratio = report_boundaries(lectures, scores)
    rouge_ratio = report_summaries(lectures, scores)
    report_time(lectures, records, timed, loads)
    say()
    say(
        f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total benchmark time "
        f"{time.perf_counter() - started:.0f} s"
    )
    busy = {name: m.others_cores for name, m in METERS.items() if m.others_cores == m.others_cores}
    busy = {name: value for name, value in busy.items() if value > BUSY_CORES}
    if busy:
        say(
            f"WARNING: other processes used more than {BUSY_CORES} of this machine's {os.cpu_count()} cores during "
            + ", ".join(f"{name} ({value:.2f})" for name, value in busy.items())
            + ": those times are unreliable; rerun on an idle machine"
        )
    say(f"ratio boundary_f1={f1_ratio:.2f} rouge_l={rouge_ratio:.2f}")


if __name__ == "__main__":
    main()
