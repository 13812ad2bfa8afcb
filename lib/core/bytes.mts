// Bytes: joining chunks and reading a whole stream. Written by hand because neither Node's
// Buffer (absent from the Web APIs Deno and the SDK streams share) nor the SDKs offer one that
// takes both Uint8Array and string chunks.

/** The parts one after the other, as one array (the part itself when there is one). */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The whole of a stream, as bytes (string chunks as UTF-8). */
export async function readAllBytes(stream: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk);
  return chunks.length === 0 ? new Uint8Array(0) : concatBytes(chunks);
}
