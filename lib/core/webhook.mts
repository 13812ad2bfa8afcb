// Posts a JSON notification to a webhook (a Teams or Slack incoming webhook, a Logic App's HTTP
// trigger): through the one pipeline builder, so network errors, 408, 429 and 5xx are retried
// as every other call is. A webhook is told, never asked: its answer body is not read.
import { createHttpPipeline, deadline } from "./http.mts";
import { UsageError } from "./errors.mts";
import type { Settings } from "./settings.mts";

/** A whole notification's deadline, retries included. */
const WEBHOOK_DEADLINE_MS = 60_000;

/** Checks a webhook URL: http or https, absolute. Throws a UsageError (exit 2) naming the option. */
export function parseWebhookUrl(value: string, option = "--notify"): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`Cannot use ${option} ${JSON.stringify(value)}: not a URL; give the webhook's https:// address`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new UsageError(`Cannot use ${option} ${JSON.stringify(value)}: a webhook is an http(s) URL, not ${url.protocol}`);
  }
  return url;
}

/**
 * POSTs `body` as JSON. Resolves when the webhook answered 2xx; rejects with one line (the
 * host, the status or the network error; never the URL's path or query, which often hold the
 * webhook's secret) otherwise.
 */
export async function postWebhook(url: URL, body: unknown, o: { settings: Pick<Settings, "httpTryTimeoutMs"> }): Promise<void> {
  const rp = await import("@azure/core-rest-pipeline");
  const { pipeline, httpClient } = await createHttpPipeline({ settings: o.settings });
  const limit = deadline(WEBHOOK_DEADLINE_MS);
  try {
    const request = rp.createPipelineRequest({
      url: url.href, method: "POST", abortSignal: limit.signal,
      // An http:// webhook is the user's choice (a Logic App behind a private endpoint, a test sink).
      allowInsecureConnection: url.protocol === "http:",
      headers: rp.createHttpHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    });
    const response = await pipeline.sendRequest(httpClient, request);
    if (response.status < 200 || response.status > 299) throw new Error(`the webhook at ${url.host} answered HTTP ${response.status}`);
  } catch (err) {
    if (limit.expired) throw new Error(`the webhook at ${url.host} did not answer within ${WEBHOOK_DEADLINE_MS / 1000} s`);
    const { code, message } = err as { code?: string; message?: string };
    if (/^the webhook/.test(message ?? "")) throw err;
    // A message may quote the URL, whose path or query often is the webhook's secret: only its host is said.
    const said = String(message ?? err).replace(/\bhttps?:\/\/\S+/g, url.host);
    throw new Error(`cannot reach the webhook at ${url.host}: ${code ?? said}`);
  } finally {
    limit.clear();
  }
}
