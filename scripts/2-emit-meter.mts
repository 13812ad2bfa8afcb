#!/usr/bin/env node
// Emits one usage event for a connected customer: signs in as the UAMI in the customer's
// managed resource group through federation (no secret anywhere) and posts to the metering API.
import { randomUUID } from "node:crypto";
import { EXIT_FAILED, EXIT_OK, runCommand } from "../lib/cli.mts";
import { getCustomer, loadConfig, signingKeyOf } from "../lib/config.mts";
import { auditPathIn, configPathIn, resolveDataDir } from "../lib/paths.mts";
import { parseDimension, parseHoursAgo, parseQuantity, parseResourceGroupName, parseSubscriptionId } from "../lib/validate.mts";
import { buildUsageEvent, describeUsageRequest, type UsageOutcome } from "../lib/metering.mts";
import { appendAuditRecord, buildAuditRecord, findPendingIntents, readAuditLog } from "../lib/audit.mts";

const USAGE = `Usage: 2-emit-meter.mts <subscription> <managed-resource-group> <hours-ago> <dimension> <quantity> [options]

Sends one usage event for the managed application behind a connected customer's managed
resource group, signed in as that customer's UAMI through workload identity federation.

Arguments:
  subscription             customer subscription id (GUID)
  managed-resource-group   the managed application's managed resource group
  hours-ago                0..23: the event covers the UTC hour that many hours back (0 = this hour)
  dimension                Partner Center dimension id
  quantity                 units above the plan's included quantity, a number > 0

Options:
  --dry-run      print the request that would be sent; sign nothing, send nothing
  --json         print the outcome (or the dry-run request) as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR         state directory (config.json, audit.jsonl); default ./metering-data,
                            or $HOME/clouddrive/metering-data in Cloud Shell
  METERING_API_BASE_URL     metering API; default https://marketplaceapi.microsoft.com
  AZURE_AUTHORITY_HOST, AZURE_TOKEN_CREDENTIALS, METERING_DISABLE_INSTANCE_DISCOVERY,
  METERING_KEYVAULT_DISABLE_CHALLENGE_VERIFICATION (see docs/internals.md)

Within 15 minutes of 1-connect-customer, Entra's "no matching federated credential" errors
are retried for about 35 s: a new credential takes a while to reach Entra.

Exit codes:
  0  accepted, or a duplicate of an accepted event with the same quantity
  1  rejected, failed, or a duplicate whose accepted quantity differs
  2  usage or input error, or customer not connected (nothing sent)
`;

const OPTIONS = { "dry-run": { type: "boolean" }, json: { type: "boolean" } } as const;
const POSITIONALS = ["subscription", "managed-resource-group", "hours-ago", "dimension", "quantity"];
// Federated credentials take minutes to reach Entra; retry transient AADSTS errors only this
// long after 1-connect-customer, so a real misconfiguration still fails fast.
const FRESH_CONNECTION_MS = 15 * 60_000;
const FEDERATION_RETRY = { attempts: 4, delayMs: 5_000, maxDelayMs: 20_000 };
const DAY_MS = 24 * 3_600_000;

const out = (text: string) => process.stdout.write(`${text}\n`);
const progress = (text: string) => process.stderr.write(`${text}\n`);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, positionals: POSITIONALS, run: async ({ values, positionals }) => {
    const json = values.json === true;
    const subscriptionId = parseSubscriptionId(positionals[0]);
    const managedResourceGroup = parseResourceGroupName(positionals[1], "managed resource group");
    const hoursAgo = parseHoursAgo(positionals[2]);
    const dimension = parseDimension(positionals[3]);
    const quantity = parseQuantity(positionals[4]);

    const dataDir = resolveDataDir();
    const configPath = configPathIn(dataDir);
    const config = await loadConfig({ path: configPath, stage: "idp" });
    const customer = getCustomer(config, { subscriptionId, managedResourceGroup, path: configPath });
    const idp = config.publisher.idp!;
    const event = buildUsageEvent({ billing: customer.billing, planId: customer.planName, dimension, quantity, hoursAgo });
    const request = describeUsageRequest({ event });
    const auditPath = auditPathIn(dataDir);
    await warnAboutPendingIntents(auditPath, { subscriptionId, managedResourceGroup });

    if (values["dry-run"]) {
      const federation = { issuer: idp.issuer, subject: customer.subject, audience: customer.audience, tenantId: customer.tenantId, clientId: customer.uamiClientId };
      if (json) out(JSON.stringify({ dryRun: true, request, federation }, null, 2));
      else {
        out(`${request.method} ${request.url}`);
        for (const [k, v] of Object.entries(request.headers)) out(`${k}: ${v}`);
        out(`authorization: Bearer <token of UAMI ${customer.uamiClientId} in tenant ${customer.tenantId}; not requested in a dry run>`);
        out("");
        out(JSON.stringify(request.body, null, 2));
      }
      return EXIT_OK;
    }

    const { createIsvCredential } = await import("../lib/isv-credential.mts");
    const { createKeyVaultSigner } = await import("../lib/signer.mts");
    const { createFederatedTokenSource } = await import("../lib/federation.mts");
    const { isTransientAadsts } = await import("../lib/aadsts.mts");
    const { retry } = await import("../lib/retry.mts");
    const { submitUsageEvent } = await import("../lib/metering.mts");

    const credential = await createIsvCredential();
    const signer = await createKeyVaultSigner({ ...signingKeyOf(idp), credential });
    const tokens = createFederatedTokenSource({ issuer: idp.issuer, signer });
    const identity = { tenantId: customer.tenantId, clientId: customer.uamiClientId, subject: customer.subject, audience: customer.audience };
    const connectedAt = Date.parse(String(customer.connectedAt ?? ""));
    const fresh = Date.now() - connectedAt < FRESH_CONNECTION_MS;
    progress(`Signing in as UAMI ${customer.uamiClientId} in tenant ${customer.tenantId}`);
    const token = await retry(() => tokens.getToken(identity), {
      ...FEDERATION_RETRY,
      attempts: fresh ? FEDERATION_RETRY.attempts : 1,
      isRetryable: (e) => isTransientAadsts((e as { aadsts?: number }).aadsts),
      onRetry: ({ delayMs, error }) =>
        progress(`AADSTS${(error as { aadsts?: number }).aadsts}: the new federated credential may not have reached Entra yet; retrying in ${delayMs / 1000} s`),
    });

    const id = randomUUID();
    const who = { subscriptionId, managedResourceGroup };
    // The intent goes to disk before sending, so a crash mid-request leaves a trace to resend.
    await appendAuditRecord({ path: auditPath, record: buildAuditRecord({ operation: "usageEvent.intent", id, customer: who, request }) });
    progress(`Sending ${quantity} ${dimension} for ${event.effectiveStartTime}`);
    let outcome: UsageOutcome;
    try {
      outcome = await submitUsageEvent({ event, request, accessToken: token.token });
    } catch (error) {
      await appendAuditRecord({
        path: auditPath,
        record: buildAuditRecord({
          operation: "usageEvent", id, customer: who, request, tokenClaims: token.claims,
          error: { code: (error as { code?: string }).code, message: (error as Error).message },
        }),
      });
      throw error;
    }
    await appendAuditRecord({
      path: auditPath,
      record: buildAuditRecord({
        operation: "usageEvent", id, customer: who, request, tokenClaims: token.claims, outcome: outcome.status,
        response: { status: outcome.httpStatus, requestId: outcome.requestId, correlationId: outcome.correlationId, body: outcome.body },
      }),
    });
    return report(outcome, { json });
  } });
}

/**
 * A run that died between sending and recording the answer leaves an intent without an
 * outcome. Resending is safe (the API answers Duplicate), so point the user at it while the
 * event is still inside the API's 24-hour window.
 */
async function warnAboutPendingIntents(auditPath: string, who: { subscriptionId: string; managedResourceGroup: string }) {
  const { records } = await readAuditLog({ path: auditPath });
  const now = Date.now();
  const pending = findPendingIntents(records).filter((r) => {
    const body = r.request?.body as { effectiveStartTime?: string } | undefined;
    const age = now - Date.parse(body?.effectiveStartTime ?? "");
    return r.customer?.subscriptionId.toLowerCase() === who.subscriptionId.toLowerCase() &&
      r.customer?.managedResourceGroup.toLowerCase() === who.managedResourceGroup.toLowerCase() && age < DAY_MS;
  });
  for (const r of pending) {
    const e = r.request?.body as { dimension?: string; quantity?: number; effectiveStartTime?: string };
    progress(`Note: an earlier run sent ${e.quantity} ${e.dimension} for ${e.effectiveStartTime} at ${r.time} without recording the answer; run 2-emit-meter again with those values to make sure it counted (a duplicate is harmless)`);
  }
}

function report(outcome: UsageOutcome, options: { json: boolean }): number {
  const { event } = outcome;
  const code = outcome.ok ? EXIT_OK : EXIT_FAILED;
  if (options.json) {
    const { body: _body, ...rest } = outcome;
    out(JSON.stringify(rest, null, 2));
  }
  const ids = `request id ${outcome.requestId ?? "-"}, correlation id ${outcome.correlationId ?? "-"}`;
  switch (outcome.status) {
    case "Accepted":
      if (!options.json) {
        out(`Accepted: ${event.quantity} ${event.dimension} for ${event.effectiveStartTime}, plan ${event.planId}`);
        out(`usageEventId ${outcome.accepted?.usageEventId ?? "-"}, messageTime ${outcome.accepted?.messageTime ?? "-"} (${ids})`);
      }
      break;
    case "Duplicate": {
      const original = outcome.original;
      if (!options.json) {
        out(`Duplicate: an event for this resource, dimension and hour was accepted before:`);
        out(JSON.stringify(original ?? outcome.body, null, 2));
      }
      if (outcome.quantityMatches) {
        progress(`The accepted event has the same quantity (${event.quantity}): nothing more to do.`);
      } else {
        progress(`Cannot record ${event.quantity} ${event.dimension} for ${event.effectiveStartTime}: the API kept the earlier event with quantity ${original?.quantity ?? "unknown"}; bill the difference in another hour (${ids})`);
      }
      break;
    }
    case "BadArgument": {
      const details = (outcome.error?.details ?? []).map((d) => `${d.target ?? "?"}: ${d.message ?? d.code ?? ""}`).join("; ");
      progress(`Cannot record the event: the API rejected it (HTTP 400 ${outcome.error?.code ?? ""}): ${details || outcome.error?.message || "no details"} (${ids})`);
      break;
    }
    case "Forbidden":
      progress(`Cannot record the event: the API refused the token (HTTP ${outcome.httpStatus}); the UAMI must sit in this app's managed resource group and the app must be a Marketplace offer with metering (${ids})`);
      break;
    default:
      progress(`Cannot record the event: HTTP ${outcome.httpStatus} ${outcome.error?.code ?? ""} ${outcome.error?.message ?? ""} (${ids}; resending is safe)`);
  }
  return code;
}

process.exitCode = await main(process.argv.slice(2));
