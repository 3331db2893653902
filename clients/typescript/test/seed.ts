/** The SDK seed's example, with this client: a picture by prompt as a link, a background
 * removed from an uploaded photo, and a poster with the seed's camelCase options. The Python
 * test tests/e2e/test_seed_examples.py runs `node dist/test/seed.js` with PIXELGATE_URL,
 * PIXELGATE_API_KEY and PHOTO set; it prints what it got as one JSON line. */

import { readFile } from "node:fs/promises";

import { Pixelgate } from "../src/index.js";

const client = new Pixelgate({
  baseUrl: process.env.PIXELGATE_URL ?? "http://127.0.0.1:8000",
  apiKey: process.env.PIXELGATE_API_KEY,
});

// generate(prompt, options) → a link to the image
const heroUrl = await client.generate("A cozy reading nook by a rainy window, warm light", {
  modelName: "dall-e-3",
  size: "1024x1792",
  quality: "hd",
});

// removeBackground(file) → a transparent PNG of the subject
const file = new File([await readFile(process.env.PHOTO ?? "photo.jpg")], "photo.jpg", {
  type: "image/jpeg",
});
const cutout = await client.removeBackground(file);

// the seed's options, under its own names
const posterUrl = await client.generate("A mountain lake at dawn", {
  modelName: "stable-image-core",
  aspectRatio: "16:9",
  negativePrompt: "text, watermark",
  stylePreset: "photographic",
  outputFormat: "webp",
  numberOfImagesToGenerate: 1,
});

console.log(JSON.stringify({ hero: heroUrl, cutout: cutout.data[0]?.url, poster: posterUrl }));
