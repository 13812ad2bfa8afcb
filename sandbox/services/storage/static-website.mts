// The static website endpoint of the sandbox's storage account (primaryEndpoints.web), which
// Azurite does not serve: GET and HEAD of `/<path>` answer the blob `<path>` of the `$web`
// container, anonymously, whatever allowBlobPublicAccess says (as Azure serves a static website).
// Whether the website is on is Azurite's own blob service property (Set Blob Service Properties,
// staticWebsite.enabled), so switching it on works as against Azure: through the blob endpoint.
// Azurite serves one account, so every storage account of the sandbox shares this one website.
import type { SandboxContext } from "../../core/context.mts";
import type { Reply, RouteContext, ServiceDef } from "../../core/http.mts";

const WEB_CONTAINER = "$web";

/** Azure's static website answers errors as a small HTML page with an x-ms-error-code header. */
function _errorPage(status: number, code: string, message: string, requestId: string): Reply {
  const body = `<!DOCTYPE html><html><head><title>${message}</title></head><body><h1>${message}</h1>` +
    `<p>Error code: ${code}</p><p>Request ID: ${requestId}</p></body></html>`;
  return { status, headers: { "content-type": "text/html", "x-ms-error-code": code, "x-ms-request-id": requestId }, body };
}

/**
 * The static website service: one HTTPS port, every path a blob of `$web`.
 *
 * @example
 * const web = await ctx.listenHttps(createStaticWebsiteService(ctx));
 * // GET https://127.0.0.1:<port>/.well-known/openid-configuration → the blob $web/.well-known/openid-configuration
 */
export function createStaticWebsiteService(ctx: SandboxContext): ServiceDef {
  const client = async () => {
    const { BlobServiceClient, StorageSharedKeyCredential } = await import("@azure/storage-blob");
    const az = ctx.azurite!;
    return new BlobServiceClient(az.blobEndpoint, new StorageSharedKeyCredential(az.accountName, az.accountKey));
  };

  const serve = async (rc: RouteContext): Promise<Reply> => {
    if (!ctx.azurite) return _errorPage(503, "ServiceUnavailable", "Blob storage is not running in this sandbox", rc.requestId);
    const service = await client();
    const { staticWebsite } = await service.getProperties();
    if (staticWebsite?.enabled !== true) return _errorPage(404, "WebsiteDisabled", "The requested website is disabled", rc.requestId);
    let path = decodeURIComponent(rc.url.pathname.replace(/^\/+/, ""));
    if ((path === "" || path.endsWith("/")) && staticWebsite.indexDocument) path += staticWebsite.indexDocument;
    const blob = service.getContainerClient(WEB_CONTAINER).getBlobClient(path);
    try {
      const data = path === "" ? undefined : await blob.downloadToBuffer();
      if (!data) return _errorPage(404, "WebContentNotFound", "The requested content does not exist", rc.requestId);
      const props = await blob.getProperties();
      const headers: Record<string, string> = {
        "content-type": props.contentType ?? "application/octet-stream",
        "x-ms-request-id": rc.requestId,
        ...(props.etag ? { etag: props.etag } : {}),
        ...(props.lastModified ? { "last-modified": props.lastModified.toUTCString() } : {}),
      };
      return { status: 200, headers, body: rc.method === "HEAD" ? undefined : data };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return _errorPage(404, "WebContentNotFound", "The requested content does not exist", rc.requestId);
      throw err;
    }
  };

  return {
    name: "web",
    routes: [
      { method: "GET", path: "/*path", handler: serve },
      { method: "HEAD", path: "/*path", handler: serve },
    ],
    notFound: (rc, allowed) => ({
      ..._errorPage(allowed.length ? 405 : 404, allowed.length ? "UnsupportedHttpVerb" : "WebContentNotFound",
        allowed.length ? "The resource doesn't support the specified HTTP verb" : "The requested content does not exist", rc.requestId),
    }),
    faultReply: (rc, status) => _errorPage(status, status === 503 ? "ServerBusy" : "InternalError", `The service answered HTTP ${status} (injected fault)`, rc.requestId),
  };
}
