// pixelgate's studio: a plain client of the native API (see api.js for the key and requests).
import { $, ApiError, api, clearError, plainWords, request, showError, smallButton, toBase64, watchJob, wireSignIn } from "/web/api.js";
import { fillUpscaleModels, upscaleResult, wireUpscale } from "/web/upscale.js";

const SAVED = "pixelgate.studio.results"; // the session's jobs and their settings, no key
const KEEP_JOBS = 12;
const state = {
  models: [],
  job: null,
  stream: null,
  hasMask: false,
  inputFileId: null,
  maskMode: "paint",
  undo: [],
  galleryAfter: null,
};

// -- signing in -------------------------------------------------------------------------------

// After the key is accepted: the models, then the gallery and this session's results.
async function start() {
  state.models = await api("GET", "/v1/models?modality=image");
  fillModelLists();
  refreshGallery();
  restoreResults();
}

// -- the model form ---------------------------------------------------------------------------

const GENERATES = ["generate", "edit", "inpaint"];
const EDIT_ONLY = ["strength"]; // options that mean something only with an input image
const HIDDEN = ["prompt", "user"]; // the prompt has its own field; user: for API callers' end users

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
  fillUpscaleModels(state.models);
  buildOptions();
}

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

// A property's own schema, without the `null` branch of an optional value.
function plain(schema) {
  if (schema.anyOf) {
    const branch = schema.anyOf.find((s) => s.type !== "null");
    return { ...branch, ...schema, anyOf: undefined };
  }
  return schema;
}

// Range and step from the schema, narrowed by the model's limits where they apply.
function bounds(name, schema, limits) {
  let min = schema.minimum ?? schema.exclusiveMinimum;
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

// "Width (px)": the catalog's title with its unit, where the title does not already say it.
function unitOf(spec) {
  const unit = spec["x-unit"];
  return unit && !(spec.title || "").toLowerCase().includes(unit) ? unit : null;
}

function titleOf(name, spec) {
  const title = spec.title || name.replace(/_/g, " ");
  const unit = unitOf(spec);
  return unit ? `${title} (${unit})` : title;
}

function optionSpecs(model) {
  return Object.entries(model.options_schema.properties || {}).map(([name, raw]) => [name, plain(raw)]);
}

function buildOptions() {
  const model = currentModel();
  const box = $("option-fields");
  box.replaceChildren();
  clearFieldErrors();
  if (!model) return;
  $("model-about").textContent = model.description || "";
  const properties = model.options_schema.properties || {};
  $("prompt-field").hidden = !("prompt" in properties);
  const editable = model.capabilities.includes("edit") || model.capabilities.includes("inpaint");
  $("input-image-fields").hidden = !editable;
  if (!editable) clearImage();
  for (const [name, spec] of optionSpecs(model)) {
    if (HIDDEN.includes(name)) continue;
    box.append(optionField(model, name, spec));
  }
  syncTaskFields();
}

function optionField(model, name, spec) {
  const fallback = model.defaults[name] ?? spec.default;
  const id = `opt-${name}`;
  const field = document.createElement("div");
  field.className = "field";
  field.dataset.field = name;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = titleOf(name, spec);
  let input;
  const hint = [];
  if (spec.description) hint.push(spec.description);
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
    input.inputMode = spec.type === "integer" ? "numeric" : "decimal";
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
  note.textContent = hint.join(" · ");
  input.setAttribute("aria-describedby", note.id);
  if (input.type === "checkbox") field.append(input, label, note);
  else field.append(label, input, note);
  return field;
}

function readOptions() {
  const options = {};
  for (const input of document.querySelectorAll("[data-option]")) {
    if (input.disabled || input.closest("[hidden]")) continue;
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

// An input image sets the size (width and height are then the model's to choose) and brings
// the options only an edit has; without one, those are hidden.
function syncTaskFields() {
  const editing = !$("canvas-stack").hidden;
  for (const name of ["width", "height"]) {
    const input = $(`opt-${name}`);
    if (input) input.disabled = editing;
  }
  for (const name of EDIT_ONLY) {
    const field = document.querySelector(`[data-field="${name}"]`);
    if (field) field.hidden = !editing;
  }
}

// -- errors next to their fields ------------------------------------------------------------

// The form control an error's `param` names, if the form has one.
function fieldFor(param) {
  if (!param) return null;
  if (param === "prompt") return $("prompt");
  if (["image", "input_image", "input_image_file_id", "mask", "mask_image"].includes(param)) return $("input-image");
  return $(`opt-${param}`);
}

function markField(error) {
  const input = fieldFor(error.param);
  if (!input || input.closest("[hidden]")) return false;
  input.setAttribute("aria-invalid", "true");
  const note = document.createElement("p");
  note.className = "field-error";
  note.id = `${input.id}-error`;
  note.textContent = plainWords(error);
  input.closest(".field, .drop-zone").append(note);
  input.setAttribute("aria-describedby", `${note.id} ${input.getAttribute("aria-describedby") || ""}`.trim());
  return true;
}

function clearFieldErrors() {
  for (const note of document.querySelectorAll(".field-error")) note.remove();
  for (const input of document.querySelectorAll('[aria-invalid="true"]')) {
    input.removeAttribute("aria-invalid");
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.endsWith("-error"));
    input.setAttribute("aria-describedby", described.join(" "));
  }
}

function showGenerateError(error) {
  clearFieldErrors();
  showError("error", error);
  if (error instanceof ApiError && markField(error)) {
    $("error").textContent = `Please check ${fieldTitle(error.param)}: ${plainWords(error)}`;
    fieldFor(error.param).focus(); // on a phone the field is far above the result
  }
}

function fieldTitle(param) {
  const input = fieldFor(param);
  const label = input && document.querySelector(`label[for="${input.id}"]`);
  return label ? label.textContent : param;
}

// -- the image and its mask -------------------------------------------------------------------

const MASK_COLOR = [255, 48, 96]; // shown over the image; sent as white

async function loadImage(source, fileId = null) {
  const bitmap = await createImageBitmap(source);
  const image = $("image-canvas");
  const mask = $("mask-canvas");
  for (const canvas of [image, mask]) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  image.getContext("2d").drawImage(bitmap, 0, 0);
  mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
  state.hasMask = false;
  state.undo = [];
  state.inputFileId = fileId;
  $("undo-mask").disabled = true;
  $("editing-file").hidden = !fileId;
  $("editing-file").textContent = fileId ? `Editing a result (${fileId}), sent by reference.` : "";
  $("canvas-stack").hidden = false;
  $("mask-tools").hidden = false;
  syncTaskFields();
}

function clearImage() {
  $("input-image").value = "";
  $("canvas-stack").hidden = true;
  $("mask-tools").hidden = true;
  $("editing-file").hidden = true;
  state.hasMask = false;
  state.inputFileId = null;
  syncTaskFields();
}

function maskContext() {
  return $("mask-canvas").getContext("2d", { willReadFrequently: true });
}

function remember() {
  const mask = $("mask-canvas");
  state.undo.push(maskContext().getImageData(0, 0, mask.width, mask.height));
  if (state.undo.length > 30) state.undo.shift();
  $("undo-mask").disabled = false;
}

function maskIsPainted() {
  const mask = $("mask-canvas");
  const pixels = maskContext().getImageData(0, 0, mask.width, mask.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}

function undoMask() {
  const last = state.undo.pop();
  if (last) maskContext().putImageData(last, 0, 0);
  $("undo-mask").disabled = state.undo.length === 0;
  state.hasMask = maskIsPainted();
}

function invertMask() {
  remember();
  const mask = $("mask-canvas");
  const context = maskContext();
  const data = context.getImageData(0, 0, mask.width, mask.height);
  const pixels = data.data;
  for (let i = 0; i < pixels.length; i += 4) {
    [pixels[i], pixels[i + 1], pixels[i + 2]] = MASK_COLOR;
    pixels[i + 3] = pixels[i + 3] > 127 ? 0 : 255;
  }
  context.putImageData(data, 0, 0);
  state.hasMask = maskIsPainted();
}

function clearMask() {
  remember();
  const mask = $("mask-canvas");
  maskContext().clearRect(0, 0, mask.width, mask.height);
  state.hasMask = false;
}

function setMaskMode(mode) {
  state.maskMode = mode;
  $("mode-paint").setAttribute("aria-pressed", String(mode === "paint"));
  $("mode-erase").setAttribute("aria-pressed", String(mode === "erase"));
}

function paintable(canvas) {
  let drawing = false;
  let previous = null;
  const at = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [((event.clientX - rect.left) * canvas.width) / rect.width, ((event.clientY - rect.top) * canvas.height) / rect.height];
  };
  const stroke = (event) => {
    const point = at(event);
    const context = maskContext();
    const width = (Number($("brush").value) * canvas.width) / canvas.getBoundingClientRect().width;
    context.globalCompositeOperation = state.maskMode === "erase" ? "destination-out" : "source-over";
    context.strokeStyle = context.fillStyle = `rgb(${MASK_COLOR.join(",")})`;
    context.lineWidth = Math.max(1, width);
    context.lineCap = context.lineJoin = "round";
    context.beginPath();
    if (previous) {
      context.moveTo(...previous);
      context.lineTo(...point);
      context.stroke();
    } else {
      context.arc(point[0], point[1], Math.max(0.5, width / 2), 0, Math.PI * 2);
      context.fill();
    }
    context.globalCompositeOperation = "source-over";
    previous = point;
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    previous = null;
    remember();
    canvas.setPointerCapture(event.pointerId);
    stroke(event);
  });
  canvas.addEventListener("pointermove", (event) => drawing && stroke(event));
  const stop = () => {
    if (!drawing) return;
    drawing = false;
    state.hasMask = maskIsPainted();
  };
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
  const data = maskContext().getImageData(0, 0, painted.width, painted.height);
  const pixels = data.data;
  for (let i = 0; i < pixels.length; i += 4) {
    const value = pixels[i + 3] > 127 ? 255 : 0;
    pixels[i] = pixels[i + 1] = pixels[i + 2] = value;
    pixels[i + 3] = 255;
  }
  context.putImageData(data, 0, 0);
  return canvasBlob(out);
}

function imageFromFiles(files) {
  return [...(files || [])].find((file) => file.type.startsWith("image/"));
}

function takeImage(file) {
  if (!file) return;
  $("tab-generate").click();
  loadImage(file).catch((err) => showError("error", err));
}

// -- results ------------------------------------------------------------------------------------

function savedResults() {
  try {
    return JSON.parse(localStorage.getItem(SAVED) || "[]");
  } catch {
    return [];
  }
}

function saveResults(entries) {
  localStorage.setItem(SAVED, JSON.stringify(entries.slice(0, KEEP_JOBS)));
}

function rememberJob(entry) {
  saveResults([entry, ...savedResults().filter((e) => e.job !== entry.job)]);
}

function forgetJob(jobId) {
  saveResults(savedResults().filter((e) => e.job !== jobId));
}

// "a-red-circle-seed-7.png": a name a person recognises in their downloads folder.
export function downloadName(prompt, seed, extension) {
  const words = (prompt || "image").toLowerCase().normalize("NFKD").replace(/[^\w\s-]/g, "").trim().split(/[\s_-]+/).filter(Boolean);
  let stem = "";
  for (const word of words) {
    if ((stem + "-" + word).length > 60) break;
    stem = stem ? `${stem}-${word}` : word;
  }
  return `${stem || "image"}${seed !== undefined && seed !== null ? `-seed-${seed}` : ""}.${extension}`;
}

function extensionOf(format) {
  return { jpeg: "jpg", "image/jpeg": "jpg", webp: "webp", "image/webp": "webp" }[format] || "png";
}

// What made an image, briefly: the size, then the options set away from the model's defaults.
function describeOptions(entry, seed) {
  const model = state.models.find((m) => m.id === entry.model);
  const specs = model ? Object.fromEntries(optionSpecs(model)) : {};
  const options = entry.options || {};
  const parts = [];
  if (options.width && options.height) parts.push(`${options.width}×${options.height} px`);
  for (const [name, value] of Object.entries(options)) {
    if (["seed", "width", "height"].includes(name) || value === "" || value === null) continue;
    const spec = specs[name] || {};
    if (model && value === (model.defaults[name] ?? spec.default)) continue;
    const unit = unitOf(spec);
    parts.push(`${spec.title || name} ${value}${unit && !unit.includes(" ") ? ` ${unit}` : ""}`);
  }
  if (seed !== undefined && seed !== null) parts.push(`seed ${seed}`);
  return parts.join(" · ");
}

// One result: the image (opens the lightbox), what made it, and what to do with it.
// `reusable`: the settings can go back into the generate form (not a cut-out's).
function resultCard(entry, image, index, reusable = true) {
  const item = document.createElement("li");
  item.className = "card";
  item.dataset.fileId = image.file_id;
  const figure = document.createElement("figure");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "thumb";
  open.setAttribute("aria-label", `Open image ${index + 1}: ${entry.prompt || entry.model}`);
  const img = document.createElement("img");
  img.src = image.url || `data:image/png;base64,${image.b64_json}`;
  img.alt = entry.prompt || "Generated image";
  open.append(img);
  const caption = document.createElement("figcaption");
  const prompt = document.createElement("p");
  prompt.className = "prompt";
  prompt.textContent = entry.prompt || "(no prompt)";
  const details = document.createElement("p");
  details.className = "details";
  details.textContent = [entry.model, describeOptions(entry, image.seed)].filter(Boolean).join(" · ");
  caption.append(prompt, details);
  figure.append(open, caption);
  const actions = document.createElement("div");
  actions.className = "card-actions";
  const reuse = smallButton("Use these settings", () => useSettings(entry, image.seed));
  const edit = smallButton("Edit this", () => editResult(image));
  const upscale = smallButton("Upscale this", () => upscaleResult(image));
  const download = document.createElement("a");
  download.className = "button";
  download.href = img.src;
  download.download = downloadName(entry.prompt, image.seed, extensionOf(entry.options?.output_format));
  download.textContent = "Download";
  reuse.classList.add("reuse");
  if (reusable) actions.append(reuse);
  actions.append(edit, upscale, download);
  item.append(figure, actions);
  item.lightbox = { src: img.src, caption: `${prompt.textContent} — ${details.textContent}`, download: download.download };
  open.addEventListener("click", () => openLightbox(item));
  return item;
}

function showJobResults(entry, job) {
  const cards = job.result.data.map((image, index) => resultCard(entry, image, index));
  const group = document.createDocumentFragment();
  for (const card of cards) {
    card.dataset.jobId = job.id;
    group.append(card);
  }
  for (const old of document.querySelectorAll(`#results [data-job-id="${job.id}"]`)) old.remove();
  $("results").prepend(group);
  syncResultsEmpty();
}

function syncResultsEmpty() {
  const empty = $("results").children.length === 0;
  $("results-empty").hidden = !empty;
  $("clear-results").hidden = empty;
}

// The settings of a result back in the form, its seed included, to make it again or vary it.
function useSettings(entry, seed) {
  $("tab-generate").click();
  const model = state.models.find((m) => m.id === entry.model);
  if (model && model.available) {
    $("model").value = entry.model;
    buildOptions();
  }
  $("prompt").value = entry.prompt || "";
  const options = { ...(entry.options || {}), seed: seed ?? entry.options?.seed };
  for (const [name, value] of Object.entries(options)) {
    const input = $(`opt-${name}`);
    if (!input || value === undefined || value === null) continue;
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = String(value);
  }
  $("prompt").focus();
  $("prompt").scrollIntoView({ block: "nearest" });
}

// A result into the editor by reference: the server already has it, so only its id is sent.
async function editResult(image) {
  $("tab-generate").click();
  const model = currentModel();
  if (!model || !(model.capabilities.includes("edit") || model.capabilities.includes("inpaint"))) {
    const editor = state.models.find((m) => m.available && (m.capabilities.includes("edit") || m.capabilities.includes("inpaint")));
    if (!editor) return showError("error", new Error("No model here can edit images."));
    $("model").value = editor.id;
    buildOptions();
  }
  try {
    const response = await fetch(image.url);
    if (!response.ok) throw new Error(`The image could not be loaded (HTTP ${response.status})`);
    await loadImage(await response.blob(), image.file_id);
  } catch (err) {
    showError("error", err);
    return;
  }
  $("input-image-fields").scrollIntoView({ block: "start" });
  $("prompt").focus({ preventScroll: true });
}

async function restoreResults() {
  const entries = savedResults();
  const jobs = await Promise.all(
    entries.map((entry) => api("GET", `/v1/jobs/${encodeURIComponent(entry.job)}`).catch((err) => err)),
  );
  // oldest first, as each is put on top
  for (let i = entries.length - 1; i >= 0; i -= 1) {
    const job = jobs[i];
    if (job instanceof ApiError) {
      if (job.status === 404 || job.status === 401 || job.status === 403) forgetJob(entries[i].job);
      continue;
    }
    if (job.status === "succeeded") showJobResults(entries[i], job);
    else if ((job.status === "queued" || job.status === "running") && !state.job) {
      runJob(entries[i], job.id);
    } else if (job.status !== "queued" && job.status !== "running") forgetJob(entries[i].job);
  }
  syncResultsEmpty();
}

// -- generating ---------------------------------------------------------------------------------

function setBusy(busy) {
  $("generate").disabled = busy;
  $("cancel").disabled = !busy;
}

// On a phone the result sits below the form: bring it into view when there is news.
function revealOutput() {
  const output = $("output").getBoundingClientRect();
  const stacked = output.top >= document.querySelector(".controls").getBoundingClientRect().bottom;
  if (stacked) $("output").scrollIntoView({ block: "start" });
}

async function generate(event) {
  event.preventDefault();
  clearError("error");
  clearFieldErrors();
  const model = currentModel();
  if (!model) return;
  const options = readOptions();
  const body = { model: model.id, async: true, ...options };
  if (!$("prompt-field").hidden) body.prompt = $("prompt").value;
  let path = "/v1/inference/images/generate";
  if (!$("canvas-stack").hidden) {
    path = "/v1/inference/images/edit";
    if (state.inputFileId) body.input_image_file_id = state.inputFileId;
    else body.input_image = await toBase64(await canvasBlob($("image-canvas")));
    if (state.hasMask) body.mask_image = await toBase64(await maskBlob());
  }
  setBusy(true);
  $("progress").value = 0;
  showPreview(null);
  $("status").textContent = "Submitting…";
  revealOutput();
  let job;
  try {
    job = await api("POST", path, body);
  } catch (err) {
    showGenerateError(err);
    $("status").textContent = "";
    setBusy(false);
    return;
  }
  const entry = { job: job.id, model: model.id, prompt: body.prompt ?? "", options };
  rememberJob(entry);
  await runJob(entry, job.id);
}

async function runJob(entry, jobId) {
  setBusy(true);
  state.job = jobId;
  $("status").textContent = `Job ${jobId}: queued`;
  const controller = new AbortController();
  state.stream = controller;
  try {
    await watchJob(jobId, (event) => onJobEvent(entry, jobId, event), {
      signal: controller.signal,
      onConnection: (news) => {
        $("status").textContent =
          news === "lost" ? `Job ${jobId}: connection lost, reconnecting…` : `Job ${jobId}: reconnected`;
      },
    });
  } catch (err) {
    if (err.name !== "AbortError") {
      showGenerateError(err);
      $("status").textContent = "";
    }
  } finally {
    setBusy(false);
    state.job = null;
  }
}

// A local model's progress brings, now and then, a small picture of the image so far (a data:
// URI); the final image replaces it.
function showPreview(dataUri) {
  $("preview").hidden = !dataUri;
  if (dataUri) $("preview-image").src = dataUri;
  else $("preview-image").removeAttribute("src");
}

function onJobEvent(entry, jobId, event) {
  if (["succeeded", "failed", "canceled"].includes(event.type)) showPreview(null);
  if (event.type === "running") {
    if (!/step/.test($("status").textContent)) $("status").textContent = `Job ${jobId}: running`;
  } else if (event.type === "progress") {
    const { step, total, preview } = event.data;
    if (preview) showPreview(preview);
    $("progress").max = total;
    $("progress").value = step;
    $("status").textContent = `Job ${jobId}: step ${step} of ${total}`;
  } else if (event.type === "succeeded") {
    $("progress").value = $("progress").max;
    $("status").textContent = `Job ${jobId}: done`;
    showJobResults(entry, event.data.job);
    revealOutput();
    refreshGallery();
    return "stop";
  } else if (event.type === "failed") {
    forgetJob(jobId);
    const error = event.data.job.error || {};
    showGenerateError(new ApiError(error.code, error.message, error.param));
    $("status").textContent = `Job ${jobId}: failed`;
    return "stop";
  } else if (event.type === "canceled") {
    forgetJob(jobId);
    $("status").textContent = `Job ${jobId}: canceled`;
    return "stop";
  }
  return undefined;
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
  revealOutput();
  try {
    const result = await api("POST", "/v1/inference/images/remove-background", body);
    const entry = { model: body.model, prompt: file ? `${file.name.replace(/\.\w+$/, "")} cut out` : "cut-out", options: {} };
    $("cutout-results").replaceChildren(...result.data.map((image, index) => resultCard(entry, image, index, false)));
    $("cutout-status").textContent = "Done";
    refreshGallery();
  } catch (err) {
    showError("cutout-error", err);
    $("cutout-status").textContent = "";
  } finally {
    $("cutout-run").disabled = false;
  }
}

// -- the lightbox -------------------------------------------------------------------------------

let lightboxItems = [];
let lightboxIndex = 0;
let lightboxOpener = null;

function openLightbox(item) {
  lightboxItems = [...item.parentElement.children].filter((child) => child.lightbox);
  lightboxIndex = lightboxItems.indexOf(item);
  lightboxOpener = document.activeElement;
  showLightboxItem();
  $("lightbox").showModal();
  $("lightbox-close").focus();
}

function showLightboxItem() {
  const { src, caption, download } = lightboxItems[lightboxIndex].lightbox;
  $("lightbox-image").src = src;
  $("lightbox-image").alt = caption;
  $("lightbox-caption").textContent = caption;
  $("lightbox-count").textContent = `${lightboxIndex + 1} of ${lightboxItems.length}`;
  $("lightbox-download").href = src;
  $("lightbox-download").download = download;
  $("lightbox-prev").disabled = lightboxItems.length < 2;
  $("lightbox-next").disabled = lightboxItems.length < 2;
}

function stepLightbox(step) {
  lightboxIndex = (lightboxIndex + step + lightboxItems.length) % lightboxItems.length;
  showLightboxItem();
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
  const open = document.createElement("button");
  open.type = "button";
  open.className = "thumb";
  open.setAttribute("aria-label", `Open ${caption}`);
  const img = document.createElement("img");
  img.src = file.url;
  img.alt = caption;
  img.className = "cutout"; // on a checkerboard, so a cut-out's transparency shows
  img.loading = "lazy";
  open.append(img);
  open.addEventListener("click", () => openLightbox(item));
  const text = document.createElement("span");
  text.className = "caption";
  text.textContent = caption;
  const actions = document.createElement("div");
  actions.className = "card-actions";
  const download = document.createElement("a");
  download.className = "button";
  download.href = file.url;
  download.download = downloadName(file.prompt, null, extensionOf(file.content_type));
  download.textContent = "Download";
  download.setAttribute("aria-label", `Download ${caption}`);
  const edit = smallButton("Edit this", () => editResult({ url: file.url, file_id: file.id }), `Edit this: ${caption}`);
  const remove = smallButton("Delete", () => deleteFile(file.id, item), `Delete ${caption}`);
  actions.append(download, edit, remove);
  item.append(open, text, actions);
  item.lightbox = { src: file.url, caption, download: download.download };
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
  $("output-generate").hidden = tab.id !== "tab-generate";
  $("output-cutout").hidden = tab.id !== "tab-cutout";
  $("output-upscale").hidden = tab.id !== "tab-upscale";
}

// -- wiring ---------------------------------------------------------------------------------------

function wire() {
  $("model").addEventListener("change", buildOptions);
  $("generate-form").addEventListener("submit", generate);
  $("generate-form").addEventListener("input", (event) => {
    if (event.target.getAttribute("aria-invalid") === "true") clearFieldErrors();
  });
  $("cancel").addEventListener("click", cancel);
  $("cutout-form").addEventListener("submit", removeBackground);
  wireUpscale({ resultCard, refreshGallery, revealOutput });
  $("refresh-gallery").addEventListener("click", refreshGallery);
  $("more-gallery").addEventListener("click", () => loadGallery(false));
  $("clear-results").addEventListener("click", () => {
    saveResults([]);
    $("results").replaceChildren();
    syncResultsEmpty();
  });
  $("input-image").addEventListener("change", (event) => takeImage(imageFromFiles(event.target.files)));
  const zone = $("input-image-fields");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    takeImage(imageFromFiles(event.dataTransfer.files));
  });
  document.addEventListener("paste", (event) => {
    const file = imageFromFiles(event.clipboardData && event.clipboardData.files);
    if (file && !$("app").hidden && !$("input-image-fields").hidden) {
      event.preventDefault();
      takeImage(file);
    }
  });
  $("brush").addEventListener("input", () => ($("brush-size").textContent = `${$("brush").value} px`));
  $("mode-paint").addEventListener("click", () => setMaskMode("paint"));
  $("mode-erase").addEventListener("click", () => setMaskMode("erase"));
  $("undo-mask").addEventListener("click", undoMask);
  $("invert-mask").addEventListener("click", invertMask);
  $("clear-mask").addEventListener("click", clearMask);
  $("remove-image").addEventListener("click", clearImage);
  paintable($("mask-canvas"));
  $("lightbox-prev").addEventListener("click", () => stepLightbox(-1));
  $("lightbox-next").addEventListener("click", () => stepLightbox(1));
  $("lightbox-close").addEventListener("click", () => $("lightbox").close());
  $("lightbox").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step && lightboxItems.length > 1) {
      event.preventDefault();
      stepLightbox(step);
    }
  });
  $("lightbox").addEventListener("click", (event) => {
    if (event.target === $("lightbox")) $("lightbox").close(); // a click on the backdrop
  });
  $("lightbox").addEventListener("close", () => lightboxOpener && lightboxOpener.focus());
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next);
      next.focus();
    });
  }
  wireSignIn(start, "app");
}

wire();
