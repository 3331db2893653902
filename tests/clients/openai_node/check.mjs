// The official OpenAI Node SDK against pixelgate, every call it makes to the Images and Models
// APIs: `node check.mjs` with OPENAI_BASE_URL (pixelgate's OpenAI base, e.g.
// http://127.0.0.1:8000/v1), OPENAI_API_KEY (a pixelgate key) and PIXELGATE_MODEL (a local
// model) set. Prints what it saw as one JSON line; any failed check throws.

import assert from "node:assert/strict";

import OpenAI, { toFile } from "openai";

const model = process.env.PIXELGATE_MODEL ?? "local/tiny";
const client = new OpenAI({ maxRetries: 0 }); // base URL and key from the environment

/** A PNG's width and height, from its IHDR chunk. */
function pngSize(b64) {
  const bytes = Buffer.from(b64, "base64");
  assert.equal(bytes.subarray(1, 4).toString("latin1"), "PNG", "a PNG");
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

async function refusal(call) {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, String(error));
    return { status: error.status, param: error.param ?? null, message: error.error?.message };
  }
  throw new Error("expected the call to be refused");
}

const listed = [];
for await (const entry of client.models.list()) listed.push(entry);
const tiny = listed.find((entry) => entry.id === "local/tiny");
assert.ok(tiny, "local/tiny is listed");
assert.equal(tiny.object, "model");

const retrieved = await client.models.retrieve("tiny"); // an alias
assert.equal(retrieved.id, "local/tiny");
assert.equal(retrieved.object, "model");
assert.equal(retrieved.owned_by, "diffusers");
assert.ok(retrieved.created > 0);

const generated = await client.images.generate({
  model,
  prompt: "a red circle",
  size: "96x32",
  response_format: "b64_json",
});
assert.deepEqual(pngSize(generated.data[0].b64_json), [96, 32]);
assert.equal(generated.size, "96x32");

const linked = await client.images.generate({ model, prompt: "a blue square", size: "64x64" });
const media = await fetch(linked.data[0].url); // the signed link is the credential
assert.equal(media.status, 200);
assert.equal(media.headers.get("content-type"), "image/png");

const picture = Buffer.from(generated.data[0].b64_json, "base64");
const edited = await client.images.edit({
  model,
  image: await toFile(picture, "circle.png", { type: "image/png" }),
  prompt: "a green circle",
  response_format: "b64_json",
});
assert.deepEqual(pngSize(edited.data[0].b64_json), [96, 32]);

const variation = await refusal(() =>
  client.images.createVariation({
    model,
    image: toFile(picture, "circle.png", { type: "image/png" }),
  }),
);
const badSize = await refusal(() => client.images.generate({ model, prompt: "x", size: "big" }));

console.log(
  JSON.stringify({
    listed: listed.length,
    retrieved: { id: retrieved.id, owned_by: retrieved.owned_by },
    generated: generated.size,
    edited: pngSize(edited.data[0].b64_json),
    variation,
    bad_size: badSize,
  }),
);
