"""Ways in for people: `cli` (`media-assets`), `server` (the HTTP API and the page in `web/`)."""
