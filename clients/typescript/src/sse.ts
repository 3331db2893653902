/** A Server-Sent Events reader over a fetch body: no dependency, the parts of the format that
 * pixelgate sends (`id`, `event`, `data`, `:` comments as keep-alives). */

export interface ServerSentEvent {
  /** The event id, for `Last-Event-ID` when resuming. */
  id?: string;
  /** The event type (`message` when the server named none). */
  event: string;
  /** The data lines, joined with newlines. */
  data: string;
}

/** Yields each event of `body` as it arrives. */
export async function* readEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: RegExpExecArray | null;
      while ((end = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const block = buffer.slice(0, end.index);
        buffer = buffer.slice(end.index + end[0].length);
        const event = parseBlock(block);
        if (event !== undefined) yield event;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block: string): ServerSentEvent | undefined {
  let id: string | undefined;
  let event = "message";
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0 && id === undefined) return undefined;
  return { id, event, data: data.join("\n") };
}
