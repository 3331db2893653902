// The studio's Upscale tab: a picture (chosen here, or a result sent with "Upscale this", by
// reference) enlarged 2 or 4 times by an upscaler, followed over its job's events.
import { $, ApiError, api, clearError, showError, toBase64, watchJob } from "/web/api.js";

const upscaling = { models: [], fileId: null, hooks: null };

function upscalers() {
  return upscaling.models.filter((m) => m.capabilities.includes("upscale"));
}

function currentUpscaler() {
  return upscalers().find((m) => m.id === $("upscale-model").value);
}

// The factors the chosen model makes, and its prompt field when it takes one.
function syncFields() {
  const model = currentUpscaler();
  const factors = model?.limits?.upscale?.factors ?? [];
  const factor = $("upscale-factor");
  const kept = factor.value;
  factor.replaceChildren(
    ...(factors.length ? factors.map((f) => new Option(`${f}×`, String(f))) : [new Option("Chosen by the model (about 4 megapixels)", "")]),
  );
  if (factors.map(String).includes(kept)) factor.value = kept;
  const schema = model?.options_schema ?? {};
  const prompt = schema.properties?.prompt;
  $("upscale-prompt-field").hidden = !prompt;
  $("upscale-prompt").required = Boolean((schema.required ?? []).includes("prompt"));
  $("upscale-about").textContent = model?.description ?? "";
}

export function fillUpscaleModels(models) {
  upscaling.models = models;
  const select = $("upscale-model");
  select.replaceChildren();
  for (const model of upscalers()) {
    const option = new Option(model.available ? model.id : `${model.id} (unavailable)`, model.id);
    option.disabled = !model.available;
    if (!model.available && model.unavailable_reason) option.title = model.unavailable_reason;
    select.append(option);
  }
  const first = [...select.options].find((o) => !o.disabled);
  if (first) select.value = first.value;
  syncFields();
}

function showSource() {
  $("upscale-source").hidden = !upscaling.fileId;
  $("upscale-source").textContent = upscaling.fileId ? `Upscaling a stored result (${upscaling.fileId}); choose a picture to upscale another.` : "";
}

// "Upscale this" on a result: the server has it already, so only its id is sent.
export function upscaleResult(image) {
  upscaling.fileId = image.file_id;
  $("upscale-image").value = "";
  showSource();
  $("tab-upscale").click();
  $("upscale-factor").focus();
}

async function run(event) {
  event.preventDefault();
  clearError("upscale-error");
  const file = $("upscale-image").files[0];
  const body = { model: $("upscale-model").value, async: true };
  if ($("upscale-factor").value) body.factor = Number($("upscale-factor").value);
  const prompt = $("upscale-prompt").value.trim();
  if (prompt && !$("upscale-prompt-field").hidden) body.prompt = prompt;
  if (file) body.image = await toBase64(file);
  else if (upscaling.fileId) body.image_file_id = upscaling.fileId;
  const name = file ? file.name.replace(/\.\w+$/, "") : upscaling.fileId ? "result" : "picture";
  const entry = { model: body.model, prompt: `${name} upscaled${body.factor ? ` ${body.factor}×` : ""}`, options: {} };
  $("upscale-run").disabled = true;
  $("upscale-progress").value = 0;
  $("upscale-status").textContent = "Upscaling…";
  upscaling.hooks.revealOutput();
  try {
    const job = await api("POST", "/v1/inference/images/upscale", body);
    await watchJob(job.id, (ev) => onEvent(entry, job.id, ev));
  } catch (err) {
    showError("upscale-error", err);
    $("upscale-status").textContent = "";
  } finally {
    $("upscale-run").disabled = false;
  }
}

function onEvent(entry, jobId, event) {
  if (event.type === "progress") {
    $("upscale-progress").max = event.data.total;
    $("upscale-progress").value = event.data.step;
    $("upscale-status").textContent = `Job ${jobId}: step ${event.data.step} of ${event.data.total}`;
  } else if (event.type === "succeeded") {
    const job = event.data.job;
    $("upscale-progress").value = $("upscale-progress").max;
    $("upscale-status").textContent = `Job ${jobId}: done`;
    const cards = job.result.data.map((image, index) => upscaling.hooks.resultCard(entry, image, index, false));
    $("upscale-results").replaceChildren(...cards);
    upscaling.hooks.refreshGallery();
    return "stop";
  } else if (event.type === "failed" || event.type === "canceled") {
    const error = event.data.job.error || { code: "CANCELED", message: "The job was canceled" };
    showError("upscale-error", new ApiError(error.code, error.message, error.param));
    $("upscale-status").textContent = `Job ${jobId}: ${event.type}`;
    return "stop";
  }
  return undefined;
}

// `hooks`: the studio's `resultCard`, `refreshGallery` and `revealOutput`.
export function wireUpscale(hooks) {
  upscaling.hooks = hooks;
  $("upscale-form").addEventListener("submit", run);
  $("upscale-model").addEventListener("change", syncFields);
  $("upscale-image").addEventListener("change", () => {
    upscaling.fileId = null;
    showSource();
  });
}
