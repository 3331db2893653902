/**
 * pixelgate's native API from TypeScript: the typed `openapi-fetch` client over the types
 * generated from the server's OpenAPI document (`schema.d.ts`), and a small wrapper for the
 * common calls: generate, follow an async job over Server-Sent Events, edit, remove a
 * background, upscale.
 */

import createClient, { type Client } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";
import { readEvents } from "./sse.js";

export type { components, operations, paths } from "./schema.js";
export { readEvents, type ServerSentEvent } from "./sse.js";

type JsonBody<Op extends keyof operations> = operations[Op] extends {
  requestBody: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

export type GenerateRequest = JsonBody<"images_generate">;
/** An edit with the images inline (`input_image`, `mask_image`: base64) or stored file ids. */
export type EditRequest = JsonBody<"images_edit">;
export type RemoveBackgroundRequest = JsonBody<"images_remove_background">;
/** An upscale: `factor` (2 or 4), `model` (`pixelgate/lanczos` when unset), an optional
 * `prompt`, and the model's own options. */
export type UpscaleRequest = JsonBody<"images_upscale">;
export type GenerateResult = components["schemas"]["GenerateResult"];
/** The options of `generate(prompt, options)`: the request's fields and the model's options,
 * under their own names or in camelCase (`modelName`, `size`, `quality`, `aspectRatio`,
 * `negativePrompt`, `stylePreset`, `outputFormat`, `numberOfImagesToGenerate`, ...). */
export type GenerateOptions = Record<string, unknown>;
export type Job = components["schemas"]["JobPublic"];
/** What a job cost: `amount` a decimal string (never a float), and its `currency`. */
export type Cost = components["schemas"]["CostPublic"];
export type JobStatus = Job["status"];

/** An edit with the pictures uploaded as files (multipart); other fields as in `EditRequest`. */
export type EditUpload = Omit<EditRequest, "input_image" | "mask_image"> & {
  image: Blob;
  mask?: Blob;
};

/** What a job's event stream says: `queued`, `running`, `progress` (`step`, `total`), then
 * `succeeded`, `failed` or `canceled`, whose data carries the whole job. */
export interface JobEvent {
  id?: string;
  type: string;
  data: { job?: Job; cost?: Cost | null; step?: number; total?: number; [key: string]: unknown };
}

const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "canceled"]);

/** pixelgate's error envelope (`{"status": "error", "error": {code, message, param}}`). */
export class PixelgateError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(`${code} (${status}): ${message}`);
    this.name = "PixelgateError";
  }
}

export interface PixelgateOptions {
  /** Where the server is, e.g. `http://127.0.0.1:8000`. */
  baseUrl: string;
  /** An API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** A `fetch` of your own (tests, proxies); the global one otherwise. */
  fetch?: typeof globalThis.fetch;
}

export class Pixelgate {
  /** The typed client for every route of the API (`api.GET("/v1/models")`, ...). */
  readonly api: Client<paths>;

  constructor(options: PixelgateOptions) {
    this.api = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      headers: options.apiKey ? { Authorization: `Bearer ${options.apiKey}` } : {},
      fetch: options.fetch,
    });
  }

  /** Text-to-image; waits for the images. Given a prompt and options instead (the SDK seed's
   * call), answers the one image's link:
   * `await client.generate("a lighthouse", { modelName: "dall-e-3", quality: "hd" })`. */
  async generate(request: GenerateRequest): Promise<GenerateResult>;
  async generate(prompt: string, options: GenerateOptions): Promise<string>;
  async generate(
    request: GenerateRequest | string,
    options: GenerateOptions = {},
  ): Promise<GenerateResult | string> {
    // the options may name the model `modelName` or `model_name`: the server reads either
    const body = (
      typeof request === "string" ? { ...options, prompt: request } : request
    ) as GenerateRequest;
    const { data, error, response } = await this.api.POST("/v1/inference/images/generate", {
      body: { ...body, async: false },
    });
    const made = result(data, error, response);
    return typeof request === "string" ? onlyUrl(made) : made;
  }

  /** Text-to-image as a job: answers at once (202); follow it with `followJob`. */
  async submit(request: GenerateRequest): Promise<Job> {
    const { data, error, response } = await this.api.POST("/v1/inference/images/generate", {
      body: { ...request, async: true },
    });
    return job(data, error, response);
  }

  /** Image-to-image or inpainting; waits for the images. JSON with base64 or file ids, or,
   * given `image` (and `mask`) as Blobs, a multipart upload. */
  async edit(request: EditRequest | EditUpload): Promise<GenerateResult> {
    const { data, error, response } =
      "image" in request
        ? await this.api.POST("/v1/inference/images/edit", multipart(request))
        : await this.api.POST("/v1/inference/images/edit", { body: request });
    return result(data, error, response);
  }

  /** A transparent PNG of the subject; `image` is a Blob (uploaded) or base64. */
  async removeBackground(
    image: Blob | string,
    options: Omit<RemoveBackgroundRequest, "image"> = {},
  ): Promise<GenerateResult> {
    const { data, error, response } =
      typeof image === "string"
        ? await this.api.POST("/v1/inference/images/remove-background", {
            body: { ...options, image },
          })
        : await this.api.POST(
            "/v1/inference/images/remove-background",
            multipart({ ...options, image }),
          );
    return result(data, error, response);
  }

  /** Enlarge a picture (a Blob, uploaded, or base64) `factor` times; waits for it, or, with
   * `async: true`, answers the job (follow it with `followJob`). */
  async upscale(
    image: Blob | string,
    options: Omit<UpscaleRequest, "image"> = {},
  ): Promise<GenerateResult> {
    const { data, error, response } =
      typeof image === "string"
        ? await this.api.POST("/v1/inference/images/upscale", { body: { ...options, image } })
        : await this.api.POST("/v1/inference/images/upscale", multipart({ ...options, image }));
    return result(data, error, response);
  }

  /** A job's events as they happen (Server-Sent Events, `GET /v1/jobs/{id}/events`), ending
   * after the terminal one; `lastEventId` resumes after an event already seen. */
  async *events(
    jobId: string,
    options: { lastEventId?: string; signal?: AbortSignal } = {},
  ): AsyncGenerator<JobEvent> {
    const { data, error, response } = await this.api.GET("/v1/jobs/{job_id}/events", {
      params: {
        path: { job_id: jobId },
        header: options.lastEventId ? { "last-event-id": options.lastEventId } : {},
      },
      headers: { Accept: "text/event-stream" },
      parseAs: "stream",
      signal: options.signal,
    });
    if (!response.ok || data === undefined || data === null) {
      throw failure(error, response);
    }
    for await (const message of readEvents(data)) {
      const event: JobEvent = { id: message.id, type: message.event, data: JSON.parse(message.data) };
      yield event;
      if (TERMINAL.has(event.type)) return;
    }
  }

  /** Follows a job over its event stream until it ends (resuming where a dropped stream left
   * off) and returns it: `succeeded`, `failed` or `canceled`. */
  async followJob(jobId: string, onEvent?: (event: JobEvent) => void): Promise<Job> {
    let lastEventId: string | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      for await (const event of this.events(jobId, { lastEventId })) {
        lastEventId = event.id ?? lastEventId;
        onEvent?.(event);
        if (TERMINAL.has(event.type) && event.data.job) return event.data.job;
      }
    }
    const { data, error, response } = await this.api.GET("/v1/jobs/{job_id}", {
      params: { path: { job_id: jobId } },
    });
    return job(data, error, response);
  }
}

/** A multipart body: Blobs as files (a File under its own name), strings as they are, anything
 * else as JSON. */
function multipart<T extends Record<string, unknown>>(fields: T) {
  return {
    // the document types files as strings (format: binary); the serializer sends the Blobs
    body: fields as never,
    bodySerializer(): FormData {
      const form = new FormData();
      for (const [name, value] of Object.entries(fields)) {
        if (value === undefined) continue;
        if (value instanceof File) form.append(name, value, value.name);
        else if (value instanceof Blob) form.append(name, value, `${name}.png`);
        else form.append(name, typeof value === "string" ? value : JSON.stringify(value));
      }
      return form;
    },
  };
}

type Envelope<T> = { data: T };

function result(data: unknown, error: unknown, response: Response): GenerateResult {
  if (response.status !== 200) throw failure(error, response);
  return (data as Envelope<GenerateResult>).data;
}

/** The link of a result's one image (`generate(prompt, options)`). */
function onlyUrl(made: GenerateResult): string {
  const [first, ...more] = made.data;
  if (first === undefined || more.length > 0) {
    throw new PixelgateError(
      400,
      "VALIDATION_ERROR",
      `generate(prompt, options) answers one link, and job ${made.job_id} made ` +
        `${made.data.length} images: ask for one, or pass a request object`,
      "n",
    );
  }
  if (!first.url) {
    throw new PixelgateError(
      400,
      "VALIDATION_ERROR",
      "generate(prompt, options) answers a link: leave response_format unset",
      "response_format",
    );
  }
  return first.url;
}

function job(data: unknown, error: unknown, response: Response): Job {
  if (!response.ok) throw failure(error, response);
  return (data as Envelope<Job>).data;
}

function failure(error: unknown, response: Response): PixelgateError {
  const body = (error as { error?: { code?: string; message?: string; param?: string | null } })
    ?.error;
  if (body?.code) {
    return new PixelgateError(response.status, body.code, body.message ?? "", body.param ?? null);
  }
  return new PixelgateError(response.status, "HTTP_ERROR", `unexpected answer ${response.status}`);
}
