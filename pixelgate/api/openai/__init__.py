"""The OpenAI-compatible surface: `protocol` (bodies), `serving` (the translation to pixelgate's
jobs), `routes` (the HTTP routes, under `/v1` and `/oai/v1`)."""
