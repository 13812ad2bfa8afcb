// ARM deployments through `az deployment group create`, with a failure turned into one line a
// person can act on: the resource that failed, ARM's code and first sentence, and what to do.
// ARM's own answer is a DeploymentFailed document whose details may hold the provider's error as
// a JSON string (docs/azure-behaviour.md §5.5); it goes to `detail` (--verbose), never the line.
import { ArmError, AzError } from "../core/errors.mts";
import type { ArmOptions } from "./managed-apps.mts";
import { parseAzArmError } from "./arm-resource.mts";
import type { DeploymentParameterValue } from "./az.mts";

const DEPLOYMENT_OPERATIONS_API_VERSION = "2021-04-01";

interface ArmErrorBody {
  code?: string;
  message?: string;
  target?: string;
  details?: ArmErrorBody[];
}

/** The failing resource of a deployment, from its operations list. */
export interface FailedOperation {
  resourceType?: string;
  resourceName?: string;
  resourceId?: string;
  error?: ArmErrorBody;
}

/** An error body as found in az's `ERROR:` line: `{code,…}`, `{error:{…}}` or `{status,error}`. Pure. */
export function parseDeploymentErrorLine(line: string): ArmErrorBody | undefined {
  const start = line.indexOf("{");
  if (start < 0) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(line.slice(start, line.lastIndexOf("}") + 1));
  } catch {
    return undefined;
  }
  const o = json as { error?: ArmErrorBody } & ArmErrorBody;
  return o?.error && typeof o.error === "object" ? o.error : typeof o?.code === "string" ? o : undefined;
}

/**
 * The innermost error: the first detail, followed down; a message that is itself a JSON error
 * document (ARM nests the provider's answer as a string under `BadRequest`) is opened. Pure.
 */
export function innermostError(e: ArmErrorBody): ArmErrorBody {
  let current = e;
  for (let depth = 0; depth < 10; depth++) {
    const nested = typeof current.message === "string" && current.message.trim().startsWith("{") ? parseDeploymentErrorLine(current.message) : undefined;
    if (nested?.code) {
      current = nested;
      continue;
    }
    const next = Array.isArray(current.details) ? current.details.find((d) => d && typeof d.code === "string") : undefined;
    if (!next) return current;
    current = next;
  }
  return current;
}

function _firstSentence(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  const m = /^(.+?\.)(\s|$)/.exec(t);
  return (m ? m[1] : t).slice(0, 300);
}

/** What to do about a failed deployment, by the innermost code. Pure. */
export function deploymentFix(code: string | undefined, where: { subscriptionId: string; resourceGroup: string; deploymentName: string }): string {
  const who = `${where.subscriptionId} ${where.resourceGroup}`;
  switch (code) {
    case "RoleAssignmentUpdateNotPermitted":
      return `an assignment of that name exists for another principal (an identity deleted and created again): find it with 3-managed-app.mts ${who} role-assignments, remove it with --delete <name>, then run again`;
    case "RoleAssignmentExists":
      return `the identity already holds this role at this scope under another assignment (3-managed-app.mts ${who} role-assignments lists it): nothing to grant`;
    case "PrincipalNotFound":
      return "a role assignment for a managed identity of the customer's tenant needs delegatedManagedIdentityResourceId (templates/1-grant-roles.bicep sets it: is the template up to date?); for an identity created seconds ago, run again in a minute";
    case "AuthorizationFailed":
    case "LinkedAuthorizationFailed":
      return "the user az is signed in as must be covered by the plan's authorizations with a role that may write there (Owner, or User Access Administrator for role assignments); LinkedAuthorizationFailed also needs Microsoft.Solutions/applications/write";
    case "InvalidTemplate":
    case "InvalidTemplateDeployment":
      return "the template or its parameters are not valid: is the repository's templates/ folder up to date?";
    default:
      return `see az deployment operation group list --subscription ${where.subscriptionId} -g ${where.resourceGroup} -n ${where.deploymentName}`;
  }
}

/** The first failed operation of a deployment (az rest GET …/operations); undefined when unreadable. */
export async function readFailedOperation(o: { subscriptionId: string; resourceGroup: string; deploymentName: string } & ArmOptions): Promise<FailedOperation | undefined> {
  const rest = o.azRest ?? (await import("./az.mts")).rest;
  const url = `/subscriptions/${encodeURIComponent(o.subscriptionId)}/resourceGroups/${encodeURIComponent(o.resourceGroup)}/providers/Microsoft.Resources/deployments/${encodeURIComponent(o.deploymentName)}/operations?api-version=${DEPLOYMENT_OPERATIONS_API_VERSION}`;
  let answer: { value?: Array<{ properties?: Record<string, unknown> }> } | null;
  try {
    answer = await rest({ method: "GET", url, command: o.command, env: o.env }) as typeof answer;
  } catch {
    return undefined; // the line is still useful without the resource
  }
  const failed = (answer?.value ?? []).map((op) => op.properties ?? {}).find((p) => String(p.provisioningState).toLowerCase() === "failed" && p.targetResource);
  if (!failed) return undefined;
  const t = failed.targetResource as { id?: string; resourceType?: string; resourceName?: string };
  return { resourceType: t.resourceType, resourceName: t.resourceName, resourceId: t.id, error: (failed.statusMessage as { error?: ArmErrorBody } | undefined)?.error };
}

/** A failed deployment as one line (pure): what failed, where, ARM's code and first sentence, the fix. */
export function describeDeploymentFailure(o: {
  error: ArmErrorBody | undefined;
  operation?: FailedOperation;
  subscriptionId: string;
  resourceGroup: string;
  deploymentName: string;
  fallback: string;
}): string {
  const inner = o.operation?.error ? innermostError(o.operation.error) : o.error ? innermostError(o.error) : undefined;
  const what = o.operation?.resourceType ? `${o.operation.resourceType} '${o.operation.resourceName ?? o.operation.resourceId?.split("/").pop()}' failed` : "a resource failed";
  const why = inner?.code ? `${inner.code}: ${_firstSentence(String(inner.message ?? ""))}` : _firstSentence(o.fallback);
  return `Cannot deploy ${o.deploymentName} into ${o.subscriptionId}/${o.resourceGroup}: ${what} with ${why}; ${deploymentFix(inner?.code, o)}`;
}

/**
 * `az deployment group create` of a template; a failure becomes an ArmError with one line naming
 * the failing resource and a fix (ARM's whole answer in `detail`, for --verbose).
 */
export async function deployTemplate(o: {
  subscriptionId: string;
  resourceGroup: string;
  deploymentName: string;
  templateFile: string;
  parameters: Record<string, DeploymentParameterValue | undefined>;
} & ArmOptions): Promise<Record<string, unknown>> {
  const az = await import("./az.mts");
  try {
    return await az.deploymentGroupCreate({ subscriptionId: o.subscriptionId, resourceGroup: o.resourceGroup, name: o.deploymentName, templateFile: o.templateFile, parameters: o.parameters, command: o.command, env: o.env });
  } catch (cause) {
    if (!(cause instanceof AzError) || !cause.errorLine) throw cause;
    // A JSON document (az rest style, or the deployment's error), else az's `(Code) message` form.
    const error = parseDeploymentErrorLine(cause.errorLine) ?? parseAzArmError(cause.errorLine);
    // A preflight refusal has no operations; a deployment that ran has one per resource.
    const operation = error.code === "DeploymentFailed" ? await readFailedOperation(o) : undefined;
    throw new ArmError(describeDeploymentFailure({ error, operation, subscriptionId: o.subscriptionId, resourceGroup: o.resourceGroup, deploymentName: o.deploymentName, fallback: cause.errorLine }), {
      cause, detail: cause.errorLine,
    });
  }
}
