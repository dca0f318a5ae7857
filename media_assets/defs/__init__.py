"""The Dagster layer: thin assets, sensors and resources over the library (see `media_assets.definitions`)."""
