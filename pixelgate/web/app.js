// pixelgate's web page: a plain client of the native API. The API key lives in
// sessionStorage only (gone when the tab closes) and goes in the Authorization header.
"use strict";

const KEY = "pixelgate.apiKey";
const $ = (id) => document.getElementById(id);
const state = { models: [], job: null, stream: null, hasMask: false, galleryAfter: null };

// -- talking to the API ---------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, param) {
    super(message);
    this.code = code;
    this.param = param;
  }
  get text() {
    return `${this.code}: ${this.message}` + (this.param ? ` (${this.param})` : "");
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, ...extra };
}

// The whole answer, for lists: `data` with `has_more` and `last_id` (the next page's cursor).
async function request(method, path, body) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError("CONNECTION_ERROR", "The server could not be reached", null);
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok || !payload || payload.status !== "ok") {
    const error = (payload && payload.error) || {};
    throw new ApiError(error.code || `HTTP_${response.status}`, error.message || response.statusText, error.param || null);
  }
  return payload;
}

async function api(method, path, body) {
  return (await request(method, path, body)).data;
}

// Server-Sent Events over fetch: EventSource cannot send the Authorization header.
async function followEvents(jobId, onEvent, signal) {
  const response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers: headers(), signal });
  if (!response.ok) {
    const payload = await response.json().catch(() => ({}));
    const error = payload.error || {};
    throw new ApiError(error.code || `HTTP_${response.status}`, error.message || "No event stream", error.param || null);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) {
        const event = { type, data: JSON.parse(data) };
        if (onEvent(event) === "stop") {
          reader.cancel();
          return;
        }
      }
    }
  }
}

function toBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// -- signing in -------------------------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  clearError("signin-error");
  try {
    state.models = await api("GET", "/v1/models?modality=image");
  } catch (err) {
    sessionStorage.removeItem(KEY);
    throw err;
  }
  $("signin").hidden = true;
  $("signed-in").hidden = false;
  $("app").hidden = false;
  fillModelLists();
  refreshGallery();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  location.reload();
}

// -- the model form ---------------------------------------------------------------------------

const GENERATES = ["generate", "edit", "inpaint"];

function fillModelLists() {
  const fill = (select, wanted) => {
    select.replaceChildren();
    for (const model of state.models) {
      if (!model.capabilities.some((c) => wanted.includes(c))) continue;
      const option = new Option(model.available ? model.id : `${model.id} (unavailable)`, model.id);
      option.disabled = !model.available;
      if (!model.available && model.unavailable_reason) option.title = model.unavailable_reason;
      select.append(option);
    }
    const first = [...select.options].find((o) => !o.disabled);
    if (first) select.value = first.value;
  };
  fill($("model"), GENERATES);
  fill($("cutout-model"), ["remove-background"]);
  buildOptions();
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

// A property's own schema, without the `null` branch of an optional value.
function plain(schema) {
  if (schema.anyOf) {
    const branch = schema.anyOf.find((s) => s.type !== "null");
    return { ...branch, default: schema.default, description: schema.description };
  }
  return schema;
}

// Range and step from the schema, narrowed by the model's limits where they apply.
function bounds(name, schema, limits) {
  let min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum : undefined);
  let max = schema.maximum;
  let step = schema.type === "integer" ? 1 : "any";
  if (name === "width" || name === "height") {
    min = limits.min_size;
    max = limits.max_size;
    step = limits.size_multiple;
  } else if (name === "num_steps") {
    max = limits.max_steps;
  } else if (name === "n") {
    max = limits.max_n;
  }
  return { min, max, step };
}

function buildOptions() {
  const model = currentModel();
  const box = $("option-fields");
  box.replaceChildren();
  if (!model) return;
  $("model-about").textContent = model.description || "";
  const schema = model.options_schema;
  const properties = schema.properties || {};
  $("prompt-field").hidden = !("prompt" in properties);
  const editable = model.capabilities.includes("edit") || model.capabilities.includes("inpaint");
  $("input-image-fields").hidden = !editable;
  if (!editable) clearImage();
  for (const [name, raw] of Object.entries(properties)) {
    if (name === "prompt" || name === "user") continue; // user: for API callers' end users
    const spec = plain(raw);
    const fallback = model.defaults[name] ?? spec.default ?? raw.default;
    const id = `opt-${name}`;
    const field = document.createElement("div");
    field.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = name.replace(/_/g, " ");
    let input;
    const hint = [];
    const choices = spec.enum || (spec.const !== undefined ? [spec.const] : null);
    if (choices) {
      input = document.createElement("select");
      if (fallback === undefined || fallback === null) input.append(new Option("(none)", ""));
      for (const choice of choices) input.append(new Option(String(choice), String(choice)));
      input.value = fallback === undefined || fallback === null ? "" : String(fallback);
      input.dataset.kind = spec.type === "integer" ? "integer" : "string";
    } else if (spec.type === "boolean") {
      field.classList.add("check");
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = Boolean(fallback);
      input.dataset.kind = "boolean";
    } else if (spec.type === "integer" || spec.type === "number") {
      input = document.createElement("input");
      input.type = "number";
      const { min, max, step } = bounds(name, spec, model.limits);
      if (min !== undefined) input.min = String(min);
      if (max !== undefined) input.max = String(max);
      input.step = String(step);
      if (fallback !== undefined && fallback !== null) input.value = String(fallback);
      input.dataset.kind = spec.type;
      if (min !== undefined || max !== undefined) {
        const range = `${min ?? "…"} to ${max ?? "…"}`;
        hint.push(step !== 1 && step !== "any" ? `${range}, multiples of ${step}` : range);
      }
    } else {
      input = document.createElement("input");
      input.type = "text";
      if (fallback !== undefined && fallback !== null) input.value = String(fallback);
      input.dataset.kind = "string";
      if (spec.maxLength) input.maxLength = spec.maxLength;
    }
    input.id = id;
    input.name = name;
    input.dataset.option = name;
    hint.push(fallback === undefined || fallback === null ? "default: none" : `default: ${fallback}`);
    const note = document.createElement("p");
    note.className = "hint";
    note.id = `${id}-hint`;
    note.textContent = hint.join("; ");
    input.setAttribute("aria-describedby", note.id);
    if (input.type === "checkbox") field.append(input, label, note);
    else field.append(label, input, note);
    box.append(field);
  }
  syncSizeFields();
}

function readOptions() {
  const options = {};
  for (const input of document.querySelectorAll("[data-option]")) {
    if (input.disabled) continue;
    const name = input.dataset.option;
    const kind = input.dataset.kind;
    if (kind === "boolean") {
      options[name] = input.checked;
      continue;
    }
    if (input.value === "") continue;
    options[name] = kind === "integer" || kind === "number" ? Number(input.value) : input.value;
  }
  return options;
}

// An input image sets the size: width and height are then the model's to choose.
function syncSizeFields() {
  const hasImage = !$("canvas-stack").hidden;
  for (const name of ["width", "height"]) {
    const input = $(`opt-${name}`);
    if (input) input.disabled = hasImage;
  }
}

// -- the image and its mask -------------------------------------------------------------------

async function loadImage(file) {
  const bitmap = await createImageBitmap(file);
  const image = $("image-canvas");
  const mask = $("mask-canvas");
  for (const canvas of [image, mask]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  image.getContext("2d").drawImage(bitmap, 0, 0);
  mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
  state.hasMask = false;
  $("canvas-stack").hidden = false;
  $("mask-tools").hidden = false;
  syncSizeFields();
}

function clearImage() {
  $("input-image").value = "";
  $("canvas-stack").hidden = true;
  $("mask-tools").hidden = true;
  state.hasMask = false;
  syncSizeFields();
}

function paintable(canvas) {
  let drawing = false;
  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) * canvas.width) / rect.width,
      ((event.clientY - rect.top) * canvas.height) / rect.height,
    ];
  };
  const dab = (event) => {
    const [x, y] = at(event);
    const context = canvas.getContext("2d");
    const radius = (Number($("brush").value) * canvas.width) / canvas.getBoundingClientRect().width / 2;
    context.fillStyle = "#fff";
    context.beginPath();
    context.arc(x, y, Math.max(1, radius), 0, Math.PI * 2);
    context.fill();
    state.hasMask = true;
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    dab(event);
  });
  canvas.addEventListener("pointermove", (event) => drawing && dab(event));
  const stop = () => (drawing = false);
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
}

function canvasBlob(canvas) {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The mask as the API wants it: white repaints, black keeps.
async function maskBlob() {
  const painted = $("mask-canvas");
  const out = document.createElement("canvas");
  out.width = painted.width;
  out.height = painted.height;
  const context = out.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, out.width, out.height);
  context.drawImage(painted, 0, 0);
  return canvasBlob(out);
}

// -- generating ---------------------------------------------------------------------------------

function showError(id, error) {
  const box = $(id);
  box.textContent = error instanceof ApiError ? error.text : String(error);
  box.hidden = false;
}

function clearError(id) {
  $(id).hidden = true;
  $(id).textContent = "";
}

function setBusy(busy) {
  $("generate").disabled = busy;
  $("cancel").disabled = !busy;
}

function imageFigure(image, caption, extraClass) {
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = image.url || `data:image/png;base64,${image.b64_json}`;
  img.alt = caption;
  if (extraClass) img.className = extraClass;
  const link = document.createElement("a");
  link.href = img.src;
  link.download = `${image.file_id}.png`;
  link.textContent = "Download";
  const text = document.createElement("figcaption");
  text.textContent = caption;
  figure.append(img, text, link);
  return figure;
}

async function generate(event) {
  event.preventDefault();
  clearError("error");
  const model = currentModel();
  if (!model) return;
  const body = { model: model.id, async: true, ...readOptions() };
  if (!$("prompt-field").hidden) body.prompt = $("prompt").value;
  let path = "/v1/inference/images/generate";
  if (!$("canvas-stack").hidden) {
    path = "/v1/inference/images/edit";
    body.input_image = await toBase64(await canvasBlob($("image-canvas")));
    if (state.hasMask) body.mask_image = await toBase64(await maskBlob());
  }
  setBusy(true);
  $("progress").value = 0;
  $("status").textContent = "Submitting…";
  try {
    const job = await api("POST", path, body);
    state.job = job.id;
    $("status").textContent = `Job ${job.id}: queued`;
    await follow(job.id);
  } catch (err) {
    if (err.name !== "AbortError") {
      showError("error", err);
      $("status").textContent = "";
    }
  } finally {
    setBusy(false);
    state.job = null;
  }
}

async function follow(jobId) {
  const controller = new AbortController();
  state.stream = controller;
  await followEvents(
    jobId,
    (event) => {
      if (event.type === "running") {
        $("status").textContent = `Job ${jobId}: running`;
      } else if (event.type === "progress") {
        const { step, total } = event.data;
        $("progress").max = total;
        $("progress").value = step;
        $("status").textContent = `Job ${jobId}: step ${step} of ${total}`;
      } else if (event.type === "succeeded") {
        $("progress").value = $("progress").max;
        $("status").textContent = `Job ${jobId}: done`;
        const results = $("results");
        results.replaceChildren();
        for (const image of event.data.job.result.data) {
          results.append(imageFigure(image, `seed ${image.seed ?? "–"}`));
        }
        refreshGallery();
        return "stop";
      } else if (event.type === "failed") {
        const error = event.data.job.error || {};
        showError("error", new ApiError(error.code, error.message, error.param));
        $("status").textContent = `Job ${jobId}: failed`;
        return "stop";
      } else if (event.type === "canceled") {
        $("status").textContent = `Job ${jobId}: canceled`;
        return "stop";
      }
      return undefined;
    },
    controller.signal,
  );
}

async function cancel() {
  if (!state.job) return;
  $("cancel").disabled = true;
  try {
    const job = await api("POST", `/v1/jobs/${encodeURIComponent(state.job)}/cancel`);
    $("status").textContent = `Job ${job.id}: ${job.status === "canceled" ? "canceled" : "canceling…"}`;
  } catch (err) {
    showError("error", err);
  }
}

// -- background removal -------------------------------------------------------------------------

async function removeBackground(event) {
  event.preventDefault();
  clearError("cutout-error");
  const file = $("cutout-image").files[0];
  const body = { model: $("cutout-model").value };
  if (file) body.image = await toBase64(file);
  $("cutout-run").disabled = true;
  $("cutout-status").textContent = "Removing the background…";
  try {
    const result = await api("POST", "/v1/inference/images/remove-background", body);
    const box = $("cutout-results");
    box.replaceChildren(...result.data.map((image) => imageFigure(image, "Cut-out")));
    $("cutout-status").textContent = "Done";
    refreshGallery();
  } catch (err) {
    showError("cutout-error", err);
    $("cutout-status").textContent = "";
  } finally {
    $("cutout-run").disabled = false;
  }
}

// -- the gallery --------------------------------------------------------------------------------

// The caller's stored files, newest first, a page at a time ("Load more" asks for the page
// after the last file shown); each can be deleted.
const GALLERY_PAGE = 12;

function refreshGallery() {
  return loadGallery(true);
}

// `fresh`: the first page replaces what is shown (once it has arrived, so two refreshes at
// once never show a file twice); else the page after the last file shown is added.
async function loadGallery(fresh) {
  const params = new URLSearchParams({ limit: String(GALLERY_PAGE) });
  if (!fresh && state.galleryAfter) params.set("after", state.galleryAfter);
  let page;
  try {
    page = await request("GET", `/v1/files?${params}`);
  } catch (err) {
    showError("gallery-error", err);
    return;
  }
  clearError("gallery-error");
  const items = page.data.map(galleryItem);
  if (fresh) $("gallery").replaceChildren(...items);
  else $("gallery").append(...items);
  state.galleryAfter = page.last_id;
  $("more-gallery").hidden = !page.has_more;
}

function galleryItem(file) {
  const item = document.createElement("li");
  item.dataset.fileId = file.id;
  const caption = [file.model, file.prompt].filter(Boolean).join(" · ") || file.id;
  // on a checkerboard, so a cut-out's transparency shows; an opaque image hides it
  const figure = imageFigure({ url: file.url, file_id: file.id }, caption, "cutout");
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "small";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${caption}`);
  remove.addEventListener("click", () => deleteFile(file.id, item));
  item.append(...figure.childNodes, remove);
  return item;
}

async function deleteFile(fileId, item) {
  if (!window.confirm("Delete this image? Its links stop working.")) return;
  try {
    await api("DELETE", `/v1/files/${encodeURIComponent(fileId)}`);
    item.remove();
    clearError("gallery-error");
  } catch (err) {
    showError("gallery-error", err);
  }
}

// -- tabs -----------------------------------------------------------------------------------------

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
}

// -- wiring ---------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      showError("signin-error", err);
    }
  });
  $("signout").addEventListener("click", signOut);
  $("model").addEventListener("change", buildOptions);
  $("generate-form").addEventListener("submit", generate);
  $("cancel").addEventListener("click", cancel);
  $("cutout-form").addEventListener("submit", removeBackground);
  $("refresh-gallery").addEventListener("click", refreshGallery);
  $("more-gallery").addEventListener("click", () => loadGallery(false));
  $("input-image").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) loadImage(file).catch((err) => showError("error", err));
  });
  $("clear-mask").addEventListener("click", () => {
    const mask = $("mask-canvas");
    mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
    state.hasMask = false;
  });
  $("remove-image").addEventListener("click", clearImage);
  paintable($("mask-canvas"));
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) selectTab(tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length]);
    });
  }
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved).catch(() => {});
});
