"""Reading files: which files are media, decoding them, cheap per-frame signals, playback copies, previews.

- `discovery`: media files under the media root, their partition keys and signatures, what changed.
- `decoding`: probe a file, sample frames from a video, load a photo upright.
- `signals`: perceptual hash, sharpness and change scores of a thumbnail.
- `playback`: WebM playback copies of videos a browser cannot decode.
- `previews`: contact sheets for the Dagster UI's metadata.
- `prefetch`: run a producer a few items ahead of its consumer on a thread.
"""
