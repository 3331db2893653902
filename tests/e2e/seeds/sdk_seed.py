"""The SDK seed's example, with pixelgate's Python SDK: a picture by prompt as a link, a
background removed from an uploaded photo, and a poster with the seed's camelCase options.

Run as a script against any pixelgate: `PIXELGATE_URL`, `PIXELGATE_API_KEY` and `PHOTO` (a
picture to cut out) set. Prints what it got as one JSON line (tests/e2e/test_seed_examples.py).
"""

from __future__ import annotations

import json
import os

import pixelgate

client = pixelgate.Client()

# generate(prompt, options) → a link to the image
hero_url = client.images.generate_url(
    "A cozy reading nook by a rainy window, warm light",
    {"modelName": "dall-e-3", "size": "1024x1792", "quality": "hd"},
)

# removeBackground(file) → a transparent PNG of the subject
with open(os.environ["PHOTO"], "rb") as photo:
    cutout = client.images.remove_background(
        photo.read(), filename="photo.jpg", content_type="image/jpeg"
    )

# the seed's options, under its own names
poster_url = client.images.generate_url(
    "A mountain lake at dawn",
    {
        "modelName": "stable-image-core",
        "aspectRatio": "16:9",
        "negativePrompt": "text, watermark",
        "stylePreset": "photographic",
        "outputFormat": "webp",
        "numberOfImagesToGenerate": 1,
    },
)

print(json.dumps({"hero": hero_url, "cutout": cutout.data[0].url, "poster": poster_url}))
