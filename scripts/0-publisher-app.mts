#!/usr/bin/env node
// Sets up the publisher's Entra app (the offer's technical configuration) with no secret: a
// federated credential trusting this project's issuer, recorded in config, proven by a token.
import { EXIT_OK, runCommand } from "../lib/cli/command.mts";
import { UsageError } from "../lib/core/errors.mts";
import { isGuid } from "../lib/core/validate.mts";
import { lineWriters, renderFields, widthOf } from "../lib/cli/output.mts";
import { PUBLISHER_APP_AUDIENCE, PUBLISHER_APP_FIC_NAME } from "../lib/publisher/app.mts";

const USAGE = `Usage: 0-publisher-app.mts [--app-id ID | --create NAME] [options]

Adopts the Entra app entered in the offer's technical configuration in Partner Center
(--app-id, its app id or object id), or creates one in the ISV tenant (--create; an app of
exactly that name is reused), with a service principal. Adds a federated credential
"${PUBLISHER_APP_FIC_NAME}" trusting the issuer of publisher.idp (the same Key Vault key),
subject "metering-submission-via-publisher-app from <ISV tenant>", audience
${PUBLISHER_APP_AUDIENCE}; records publisher.app (tenant, app id, subject, audience) in
config.json; proves it: an assertion signed in Key Vault is exchanged in the ISV tenant for a
metering API token. Safe to run again: what exists and matches is kept. Without either option,
the app already in publisher.app is checked and set up again.

Microsoft Graph is called through \`az rest\` as the signed-in user (the calls of
\`az ad app federated-credential create\`); the user must be allowed to manage the app.

Options:
  --app-id ID    the app (client) id or object id of an existing app registration
  --create NAME  create (or reuse) an app registration with this display name
  --dry-run      say what would be created; change nothing, sign nothing
  --json         print the publisher.app entry, the actions and the proof as JSON
  -v, --verbose  show details on errors
  -h, --help     show this help

Environment:
  METERING_DATA_DIR  state directory (after 0-isv-setup); \`az\` on PATH, signed in

Exit codes: 0 set up and proven (or nothing to do), 1 failed (Graph, the credential, the
exchange), 2 usage error, setup missing or no such app
`;

const OPTIONS = { "app-id": { type: "string" }, create: { type: "string" }, "dry-run": { type: "boolean" }, json: { type: "boolean" } } as const;
const { out, progress } = lineWriters(process);

function main(args: string[]): Promise<number> {
  return runCommand({ args, usage: USAGE, options: OPTIONS, run: async ({ values }) => {
    const json = values.json === true;
    const dryRun = values["dry-run"] === true;
    const appIdArg = values["app-id"] as string | undefined;
    const create = values.create as string | undefined;
    if (appIdArg !== undefined && create !== undefined) throw new UsageError("Cannot use --app-id and --create together: adopt an existing app or create one");
    if (appIdArg !== undefined && !isGuid(appIdArg)) throw new UsageError(`Cannot use --app-id ${JSON.stringify(appIdArg)}: expected a GUID (the app id or object id from Partner Center's technical configuration)`);
    if (create !== undefined && (create.trim() === "" || create.length > 120)) throw new UsageError("Cannot use --create: the display name must have 1 to 120 characters");

    const { usePublisher } = await import("../lib/publisher/context.mts");
    return await usePublisher({ stage: "idp" }, async (publisher) => {
      const { setupPublisherApp, withPublisherApp } = await import("../lib/publisher/app.mts");
      const recorded = publisher.config.publisher.app as { appId?: string } | undefined;
      const appId = appIdArg ?? (create === undefined ? recorded?.appId : undefined);
      if (appId === undefined && create === undefined) throw new UsageError("Cannot set up the publisher app: give --app-id ID (the app in Partner Center's technical configuration) or --create NAME");

      const { changeRecord } = await import("../lib/audit/records.mts");
      let result;
      try {
        result = await setupPublisherApp({ config: publisher.config, ...(appId !== undefined ? { appId } : { create }), dryRun, onProgress: progress });
      } catch (error) {
        const e = error as { code?: string; message?: string };
        // A refusal of the input changed nothing; anything else may have changed Graph half way.
        if (!dryRun && e.code !== "ERR_USAGE" && e.code !== "ERR_RESOURCE_NOT_FOUND") {
          await (await publisher.audit()).append(changeRecord({
            operation: "publisherApp.setup", targets: [], outcome: "failed",
            error: { ...(e.code ? { code: e.code } : {}), message: String(e.message).split("\n")[0] },
            detail: { ...(appId ? { appId } : { create }) },
          }));
        }
        throw error;
      }
      if (dryRun) {
        if (json) out(JSON.stringify({ dryRun: true, app: result.app, actions: result.actions }, null, 2));
        else progress("Dry run: nothing was changed");
        return EXIT_OK;
      }

      await publisher.updateConfig((current) => withPublisherApp(current, result.app));
      await (await publisher.audit()).append(changeRecord({
        operation: "publisherApp.setup", targets: result.targets, outcome: "succeeded",
        detail: { tenantId: result.app.tenantId, appId: result.app.appId, objectId: result.app.objectId, subject: result.app.subject, audience: result.app.audience, ficName: result.app.ficName, actions: result.actions.map((a) => a.what) },
      }));
      progress(`Recorded publisher.app in ${publisher.paths.configPath}`);

      progress(`Proving it: signing an assertion in Key Vault and exchanging it in tenant ${result.app.tenantId}`);
      const token = await publisher.publisherApp(result.app).getToken();
      const proof = {
        tenantId: String(token.claims.tid ?? ""),
        appid: String(token.claims.appid ?? ""),
        oid: String(token.claims.oid ?? ""),
        aud: String(token.claims.aud ?? ""),
        expiresOn: new Date(token.expiresOnTimestamp).toISOString(),
      };
      if (json) out(JSON.stringify({ app: result.app, actions: result.actions, proof }, null, 2));
      else {
        const fields: Array<[string, string]> = [
          ["displayName", result.app.displayName],
          ["appId", result.app.appId],
          ["objectId", result.app.objectId],
          ["tenantId", result.app.tenantId],
          ["subject", result.app.subject],
          ["audience", result.app.audience],
          ["credential", result.app.ficName],
          ["proof", `metering API token for appid ${proof.appid} (aud ${proof.aud}) until ${proof.expiresOn}`],
        ];
        for (const line of renderFields(fields, { width: widthOf(process.stdout) })) out(line);
        progress("Enter this app id in the offer's technical configuration in Partner Center if it is not there yet.");
      }
      return EXIT_OK;
    });
  } });
}

process.exitCode = await main(process.argv.slice(2));
