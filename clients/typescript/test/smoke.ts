/** Drives a live server with the client (the Python test tests/clients/test_typescript.py
 * starts one): `node dist/test/smoke.js` with PIXELGATE_URL, PIXELGATE_API_KEY and PIXELGATE_PHOTO (a
 * picture to cut out) set. Prints
 * what it saw as one JSON line; any failed check throws. */

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

import { Pixelgate, PixelgateError, type JobEvent } from "../src/index.js";

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

function png(b64: string | null | undefined): Buffer {
  assert.ok(b64, "an image inline");
  const bytes = Buffer.from(b64, "base64");
  assert.deepEqual(bytes.subarray(0, 4), PNG, "a PNG");
  return bytes;
}

const baseUrl = process.env.PIXELGATE_URL ?? "http://127.0.0.1:8000";
const client = new Pixelgate({ baseUrl, apiKey: process.env.PIXELGATE_API_KEY });
const tiny = { model: "local/tiny", width: 64, height: 64, num_steps: 2 } as const;

// generate, waiting for the image
const generated = await client.generate({
  ...tiny,
  prompt: "a red circle",
  seed: 7,
  response_format: "b64_json",
});
assert.equal(generated.data[0]?.seed, 7);
assert.deepEqual(generated.cost, { amount: "0.00", currency: "USD" }); // local/tiny is free
const picture = png(generated.data[0]?.b64_json);

// an async job, followed over Server-Sent Events to its end
const submitted = await client.submit({ ...tiny, prompt: "a blue square", seed: 8 });
assert.ok(["queued", "running", "succeeded"].includes(submitted.status), submitted.status);
const seen: JobEvent[] = [];
const finished = await client.followJob(submitted.id, (event) => seen.push(event));
assert.equal(finished.status, "succeeded");
assert.equal(finished.result?.data[0]?.seed, 8);
assert.equal(seen.at(-1)?.type, "succeeded");
assert.deepEqual(seen.at(-1)?.data.cost, finished.cost);
assert.equal(finished.cost?.currency, "USD");

// edits: base64 in JSON, and the same picture uploaded (multipart)
const editedJson = await client.edit({
  ...tiny,
  prompt: "a green circle",
  input_image: picture.toString("base64"),
  response_format: "b64_json",
});
png(editedJson.data[0]?.b64_json);
const editedUpload = await client.edit({
  ...tiny,
  prompt: "a green circle",
  image: new Blob([new Uint8Array(picture)], { type: "image/png" }),
  response_format: "b64_json",
});
png(editedUpload.data[0]?.b64_json);

// background removal, uploaded
const photo = await readFile(process.env.PIXELGATE_PHOTO ?? "photo.png");
const cutOut = await client.removeBackground(new Blob([new Uint8Array(photo)]), {
  response_format: "b64_json",
});
const cutOutBytes = png(cutOut.data[0]?.b64_json);

// upscaling: the picture generated above, uploaded, 4x by Lanczos
const upscaled = await client.upscale(new Blob([new Uint8Array(picture)], { type: "image/png" }), {
  factor: 4,
  response_format: "b64_json",
});
const large = png(upscaled.data[0]?.b64_json);
assert.equal(large.readUInt32BE(16), 256, "4x the width");
const upscaledJson = await client.upscale(picture.toString("base64"), { factor: 2 });
assert.equal(upscaledJson.model, "pixelgate/lanczos");

// pixelgate's errors, as errors
const refused = await client.generate({ ...tiny, prompt: "x", width: 1000 }).catch((e) => e);
assert.ok(refused instanceof PixelgateError);
assert.equal(refused.code, "VALIDATION_ERROR");

console.log(
  JSON.stringify({
    events: seen.map((event) => event.type),
    job: finished.id,
    cut_out_b64: cutOutBytes.toString("base64"),
    error: { status: refused.status, code: refused.code, param: refused.param },
  }),
);
