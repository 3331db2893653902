// Talking to pixelgate's native API, for the studio and the operator console. The API key lives
// in sessionStorage only (gone when the tab closes) and goes in the Authorization header.

export const KEY = "pixelgate.apiKey";
export const $ = (id) => document.getElementById(id);

export class ApiError extends Error {
  constructor(code, message, param, status = 0) {
    super(message);
    this.code = code;
    this.param = param;
    this.status = status;
  }
}

// What went wrong, in words a person reads: a lead for the codes that need one, then the
// server's own message (which names the value and what is allowed).
const LEADS = {
  UNAUTHORIZED: "That key was not accepted.",
  FORBIDDEN: "This key may not do that.",
  MODEL_ACCESS_DENIED: "This key may not use that model.",
  BUDGET_EXCEEDED: "The budget is spent.",
  RATE_LIMITED: "Too many requests just now; wait a moment and try again.",
  CONNECTION_ERROR: "The server could not be reached; check the connection and try again.",
  SERVICE_UNAVAILABLE: "The server is busy or starting; try again in a moment.",
  MODEL_UNAVAILABLE: "That model cannot run here now.",
  PAYLOAD_TOO_LARGE: "That file is too large.",
  WORKER_CRASHED: "The model stopped while making the image; try again.",
  TIMEOUT: "That took too long.",
};

export function plainWords(error) {
  if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
  let message = error.message || "";
  const invalid = /^Invalid [\w ]+: (.+?); allowed: (.+)$/.exec(message);
  if (invalid) message = `${invalid[1]} is not allowed; use ${invalid[2]}.`;
  else if (message && !/[.!?]$/.test(message)) message += ".";
  if (error.code === "CONNECTION_ERROR") return LEADS.CONNECTION_ERROR;
  const lead = LEADS[error.code];
  return lead ? `${lead} ${message}`.trim() : message || error.code;
}

export function showError(id, error) {
  const box = $(id);
  box.textContent = plainWords(error);
  box.dataset.code = error instanceof ApiError ? error.code : "";
  box.hidden = false;
}

export function clearError(id) {
  $(id).hidden = true;
  $(id).textContent = "";
}

// The sign-in both pages share: `load()` makes the page's first requests with the key; once
// it succeeds the sign-in panel gives way to `mainId`, and what `load` returned, if a function,
// runs (to draw what needs the page's size). A key from earlier in this tab is tried at once.
export function wireSignIn(load, mainId) {
  const signIn = async (key) => {
    sessionStorage.setItem(KEY, key);
    clearError("signin-error");
    let shown;
    try {
      shown = await load();
    } catch (err) {
      sessionStorage.removeItem(KEY);
      throw err;
    }
    $("signin-panel").hidden = true;
    $("signed-in").hidden = false;
    $(mainId).hidden = false;
    if (typeof shown === "function") await shown();
  };
  const refused = (err) => {
    showError("signin-error", err);
    $("api-key").setAttribute("aria-invalid", "true");
    $("api-key").setAttribute("aria-describedby", "signin-error key-help");
  };
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("api-key").value.trim()).catch(refused);
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved).catch(refused);
}

// A small button; `label` names it for screen readers where its text alone is ambiguous
// ("Delete" in a list of images).
export function smallButton(text, onClick, label = null) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "small";
  element.textContent = text;
  if (label) element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, ...extra };
}

async function errorOf(response) {
  const payload = await response.json().catch(() => null);
  const error = (payload && payload.error) || {};
  return new ApiError(
    error.code || `HTTP_${response.status}`,
    error.message || response.statusText,
    error.param || null,
    response.status,
  );
}

// The whole answer, for lists: `data` with `has_more` and `last_id` (the next page's cursor).
export async function request(method, path, body, signal) {
  const init = { method, headers: authHeaders(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("CONNECTION_ERROR", "The server could not be reached", null);
  }
  if (!response.ok) throw await errorOf(response);
  const payload = await response.json().catch(() => null);
  if (!payload || payload.status !== "ok") throw new ApiError("BAD_ANSWER", "The server's answer was not understood", null, response.status);
  return payload;
}

export async function api(method, path, body, signal) {
  return (await request(method, path, body, signal)).data;
}

export function toBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("Aborted", "AbortError"));
    });
  });
}

// -- following a job ------------------------------------------------------------------------

const TERMINAL = ["succeeded", "failed", "canceled"];

// One connection to the job's Server-Sent Events, from after `lastId`. Over fetch, because
// EventSource cannot send the Authorization header. Resolves "stop" once `onEvent` said so,
// or "ended" when the server closed the stream first.
async function streamOnce(jobId, lastId, onEvent, signal) {
  const headers = authHeaders();
  if (lastId !== null) headers["Last-Event-ID"] = lastId;
  let response;
  try {
    response = await fetch(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("CONNECTION_ERROR", "The server could not be reached", null);
  }
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let type = "message";
        let data = "";
        let id = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) type = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
          else if (line.startsWith("id:")) id = line.slice(3).trim();
        }
        if (!data) continue;
        if (onEvent({ type, id, data: JSON.parse(data) }) === "stop") {
          reader.cancel().catch(() => {});
          return "stop";
        }
      }
    }
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("CONNECTION_ERROR", "The event stream broke off", null);
  }
}

// A connection that failed for these reasons may work again later; anything else (an unknown
// job, a revoked key) will not.
function worthRetrying(error) {
  return error instanceof ApiError && (error.status === 0 || error.status >= 500 || error.status === 429);
}

// Follows a job to its end, whatever the connection does: the event stream resumes with
// Last-Event-ID where it broke off; after each break the job itself is asked for (so a job that
// ended while the server was away still ends here). A stream that breaks STREAM_TRIES times in
// a row while the server answers is given up for polling the job. `onConnection(state)` hears
// "lost" and "back".
const STREAM_TRIES = 3;
const POLL_MS = 1000;
const MAX_WAIT_MS = 4000;

export async function watchJob(jobId, onEvent, { signal, onConnection = () => {} } = {}) {
  let lastId = null;
  let streamBreaks = 0;
  let waitMs = POLL_MS / 2;
  let lost = false;
  const connected = () => {
    if (lost) {
      lost = false;
      onConnection("back");
    }
  };
  const seen = (event) => {
    if (event.id !== null) lastId = event.id;
    connected();
    streamBreaks = 0;
    waitMs = POLL_MS / 2;
    return onEvent(event);
  };
  for (;;) {
    let streamed = false;
    if (streamBreaks < STREAM_TRIES) {
      streamed = true;
      try {
        if ((await streamOnce(jobId, lastId, seen, signal)) === "stop") return;
      } catch (err) {
        if (!worthRetrying(err)) throw err;
      }
    }
    try {
      const job = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`, undefined, signal);
      connected();
      if (streamed) streamBreaks += 1; // the server answers, but its stream did not last
      if (TERMINAL.includes(job.status)) {
        onEvent({ type: job.status, id: null, data: { job } });
        return;
      }
      if (job.status === "running") onEvent({ type: "running", id: null, data: {} });
      waitMs = POLL_MS;
    } catch (err) {
      if (!worthRetrying(err)) throw err;
      if (!lost) {
        lost = true;
        onConnection("lost");
      }
      waitMs = Math.min(waitMs * 2, MAX_WAIT_MS);
    }
    await sleep(waitMs, signal);
  }
}
