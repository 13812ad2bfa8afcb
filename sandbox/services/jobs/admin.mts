// Admin routes of the sandbox's Container Apps jobs platform:
//   POST /container-images {image, workdir, node?, cmd?, env?}  register an image (the sandbox's `az acr build`)
//   GET  /container-images                                       the registered images
//   GET  /container-apps/executions?job=NAME                      every execution with its replicas' exit codes and output
import { HttpReplyError, parseJsonObject, type Reply, type Route } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { jobRunner, type ContainerImage } from "./runner.mts";

const bad = (message: string): Reply => ({ status: 400, body: { error: { code: "BadRequest", message } } });

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

function _readImage(body: Record<string, unknown>): ContainerImage {
  const fail = (m: string): never => {
    throw new HttpReplyError(bad(`Cannot register the image: ${m}`));
  };
  if (typeof body.image !== "string" || !body.image) fail("'image' must be a non-empty string (e.g. 'myregistry.azurecr.io/metering:1')");
  if (typeof body.workdir !== "string" || !body.workdir.startsWith("/")) fail("'workdir' must be an absolute path");
  if (body.node !== undefined && (!isStrings(body.node) || body.node.length === 0)) fail("'node' must be a non-empty array of strings: [argv0, ...preArgs]");
  if (body.cmd !== undefined && !isStrings(body.cmd)) fail("'cmd' must be an array of strings");
  if (body.env !== undefined && (typeof body.env !== "object" || body.env === null || !Object.values(body.env).every((v) => typeof v === "string"))) {
    fail("'env' must be an object of string values");
  }
  return {
    image: body.image as string,
    workdir: body.workdir as string,
    ...(body.node ? { node: body.node as string[] } : {}),
    ...(body.cmd ? { cmd: body.cmd as string[] } : {}),
    ...(body.env ? { env: body.env as Record<string, string> } : {}),
  };
}

export function containerAppsAdminRoutes(ctx: SandboxContext): Route[] {
  const runner = jobRunner(ctx);
  return [
    {
      method: "POST", path: "/container-images", handler: (c) => {
        const image = _readImage(parseJsonObject(c, bad));
        runner.images.set(image.image, image);
        return { status: 201, body: image };
      },
    },
    { method: "GET", path: "/container-images", handler: () => ({ status: 200, body: [...runner.images.values()] }) },
    {
      method: "GET", path: "/container-apps/executions", handler: (c) => {
        const job = c.url.searchParams.get("job")?.toLowerCase();
        const out = [...runner.executions.values()].flat()
          .filter((ex) => !job || ex.jobName.toLowerCase() === job)
          .map((ex) => ({
            job: ex.jobName, jobId: ex.jobId, name: ex.name, id: ex.id, trigger: ex.trigger, status: ex.status,
            startTime: ex.startTime, endTime: ex.endTime ?? null, reason: ex.reason ?? null, replicas: ex.replicas,
          }));
        return { status: 200, body: out };
      },
    },
  ];
}
