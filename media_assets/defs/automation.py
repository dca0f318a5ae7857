"""Automation: the conditions under which assets follow their inputs, and the sensors that evaluate them.

- `hnsw_index` and `clusters` follow changed vectors (`INDEX_WHEN_VECTORS_CHANGE`), after the runs that
  changed them have finished, and a file that failed to ingest does not freeze them for all the others;
- a file's `faces` follow its `shots` when shots alone were re-materialized (`FACES_WHEN_SHOTS_CHANGE`);
- a file's `screen_text` follows its `shots`, its `text_vectors` its `transcripts` and `screen_text`, its
  `chapters` all three;
- `adapted_vectors` follow new or changed frame, shot and face vectors (`ADAPTED_WHEN_VECTORS_CHANGE`).

The four automation-condition sensors are on by default. The asset modules attach the conditions; the
sensors name their targets by asset key, so this module imports no asset module.
"""

from dagster import AutomationCondition, AutomationConditionSensorDefinition, DefaultSensorStatus

# Like AutomationCondition.eager(), minus its "no dependency partition is missing" clause: a media file that
# fails to ingest leaves its frame_embeddings partition missing, and must not freeze the index for all others.
INDEX_WHEN_VECTORS_CHANGE = (
    (AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("vectors changed")

# a file's faces follow its shots when the shots alone are re-materialized (from the UI, or with other
# settings): the faces' shot ids and keyframes would be stale otherwise. In an ingest run faces come right
# after shots, so this asks for nothing then.
FACES_WHEN_SHOTS_CHANGE = AutomationCondition.eager().with_label("shots changed")

# a file's screen text follows its shots (the keyframes it reads), its text vectors follow its transcript and
# screen text; in an ingest run they come right after, so these ask for nothing then
SCREEN_TEXT_WHEN_SHOTS_CHANGE = AutomationCondition.eager().with_label("keyframes changed")
TEXT_VECTORS_WHEN_TEXT_CHANGES = AutomationCondition.eager().with_label("transcript or screen text changed")
# a file's chapters follow its transcript, screen text and shots (what they are cut and summarised from)
CHAPTERS_WHEN_INPUTS_CHANGE = AutomationCondition.eager().with_label("transcript, screen text or shots changed")

ADAPTED_WHEN_VECTORS_CHANGE = (
    (AutomationCondition.any_deps_updated()).since_last_handled()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("vectors or adapter changed")


index_automation = AutomationConditionSensorDefinition(
    "index_automation",
    target=["hnsw_index"],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-indexes when frame vectors changed (after the runs that changed them have finished).",
)

clusters_automation = AutomationConditionSensorDefinition(
    "clusters_automation",
    target=["faces", "clusters"],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-finds a file's faces when its shots were re-materialized alone, and re-clusters when shots or "
    "faces changed (after the runs that changed them have finished).",
)

text_automation = AutomationConditionSensorDefinition(
    "text_automation",
    target=["screen_text", "text_vectors", "chapters"],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Re-reads a file's screen text when its shots changed, re-embeds its text when its transcript "
    "or screen text changed, and re-cuts its chapters when any of the three changed (after the runs that changed "
    "them have finished).",
)

adapted_vectors_automation = AutomationConditionSensorDefinition(
    "adapted_vectors_automation",
    target=["adapted_vectors"],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Keeps the adapted vectors in step with new or changed frame, shot and face vectors.",
)


SENSORS = [index_automation, clusters_automation, text_automation, adapted_vectors_automation]
