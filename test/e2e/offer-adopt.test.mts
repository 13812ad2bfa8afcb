// An offer template connects customers at purchase (templates/offer/): the sample offer is
// "purchased" in the sandbox (admin POST /offers/purchase: the managed application and its
// mainTemplate deployed into the MRG), 1-list-customers shows it connectable, 1-connect-customer
// --adopt records it without any deployment, 2-emit-meter bills it (the sandbox's metering
// events), and a federated credential for another subject is refused with nothing written.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { admin, startTestSandbox } from "../helpers/sandbox.mts";
import { describe, runScript, sandboxEnv } from "../helpers/scripts.mts";
import { customerConfig, readAudit, runOk } from "../helpers/workflow.mts";

const sb = await startTestSandbox();
const env = await sandboxEnv(sb);
const OFFER_DIR = fileURLToPath(new URL("../../templates/offer/", import.meta.url));
const TENANT = "7d2f1e4b-6c8a-4b3d-9f1e-2a3b4c5d6e7f";
const SUBSCRIPTION = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const configPath = join(env.METERING_DATA_DIR, "config.json");

await runOk("0-add-defaults.mts", [], env);
await runOk("0-isv-setup.mts", [], env);
const config = JSON.parse(await readFile(configPath, "utf8"));
const issuer: string = config.publisher.idp.issuer;
const subject = `metering-submission-via-uami from ${config.publisher.aadTenantId}`;

interface Purchased {
  application: { id: string; managedResourceGroup: string; billingDetails: { resourceUsageId: string }; identity: { principalId: string } };
  deployment: { provisioningState: string; error?: unknown };
}
const purchase = async (mrg: string, app: string, parameters: Record<string, string>) => {
  const p = await admin<Purchased>(sb, "POST", "/offers/purchase", {
    tenantId: TENANT, tenantName: "adventureworks", subscriptionId: SUBSCRIPTION, resourceGroup: "adventureworks-apps", applicationName: app, managedResourceGroup: mrg,
    plan: { product: "metered-analytics", name: "gold" },
    templatePath: `${OFFER_DIR}mainTemplate.bicep`, createUiDefinitionPath: `${OFFER_DIR}createUiDefinition.json`,
    parameters: { meteringIssuer: issuer, meteringSubject: subject, ...parameters },
  });
  assert.is(p.deployment.provisioningState, "Succeeded", JSON.stringify(p.deployment.error));
  return p;
};
const good = await purchase("mrg-adventureworks", "metered-analytics", { vaultName: "adventureworks-kv", namespaceName: "adventureworks-bus" });
const wrong = await purchase("mrg-adventureworks-2", "metered-analytics-2", { meteringSubject: "metering-submission-via-uami from someone-else", vaultName: "adventureworks-kv2", namespaceName: "adventureworks-bus2" });
const who = (p: Purchased) => [SUBSCRIPTION, p.application.managedResourceGroup];
const deployments = () => sb.state.ofType("Microsoft.Resources/deployments").length;
const deploymentPuts = async () => {
  const counters = await admin<Record<string, Record<string, number>>>(sb, "GET", "/requests");
  return Object.entries(counters.arm ?? {}).filter(([k]) => k.startsWith("PUT ") && /Microsoft\.Resources\/deployments/i.test(k)).reduce((n, [, v]) => n + v, 0);
};

const T = suite("offer templates: purchase, adopt, bill");

T("1-list-customers: the purchased apps are connectable (offer template), in the table and in --json", async () => {
  const r = await runScript("1-list-customers.mts", ["--json"], { env });
  assert.is(r.code, 0, describe(r));
  const rows = JSON.parse(r.stdout) as Array<Record<string, any>>;
  const row = rows.find((x) => x.managedResourceGroup === "mrg-adventureworks")!;
  assert.equal([row.connected, row.connectable], [false, true]);
  const uami = sb.state.getResource(row.offerIdentity.uamiId)!;
  assert.is(uami.name, "metering-submission-uami");
  assert.equal([row.offerIdentity.issuer, row.offerIdentity.subject, row.offerIdentity.audiences], [issuer, subject, ["api://AzureADTokenExchange"]]);
  // The other subject's credential still trusts this issuer: listed, refused at --adopt.
  assert.is(rows.find((x) => x.managedResourceGroup === "mrg-adventureworks-2")!.connectable, true);
  // The world's seeded apps have no offer identity.
  assert.ok(rows.filter((x) => x.subscriptionId !== SUBSCRIPTION).every((x) => x.connectable === false && x.offerIdentity === null));
  const wide = await runScript("1-list-customers.mts", ["--wide"], { env });
  assert.match(wide.stdout, /mrg-adventureworks\s.*connectable \(offer template\)/);
  assert.match(wide.stderr, /2 connectable \(1-connect-customer <sub> <mrg> --adopt\)/);
});

T("--adopt with --grant or --billing-only is refused in one line, nothing written", async () => {
  for (const extra of [["--grant", "Key Vault Secrets User"], ["--billing-only"]]) {
    const r = await runScript("1-connect-customer.mts", [...who(good), "--adopt", ...extra], { env });
    assert.is(r.code, 2, describe(r));
    assert.match(r.stderr.split("\n")[0], /^Cannot use --(grant|billing-only) with --adopt: /);
  }
  assert.is(JSON.parse(await readFile(configPath, "utf8")).customers[SUBSCRIPTION], undefined);
});

T("--adopt refuses a credential for another subject: one line naming it, exit 2, no config, no audit record", async () => {
  const configBefore = await readFile(configPath, "utf8");
  const auditBefore = (await readAudit(env)).text;
  const r = await runScript("1-connect-customer.mts", [...who(wrong), "--adopt"], { env });
  assert.is(r.code, 2, describe(r));
  const lines = r.stderr.trim().split("\n").filter((l) => !/^Reading /.test(l));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], /Cannot adopt .*mrg-adventureworks-2: the federated credential fed of metering-submission-uami has subject "metering-submission-via-uami from someone-else" \(this ISV signs "metering-submission-via-uami from /);
  assert.not.match(lines[0], /issuer|audiences/);
  assert.is(await readFile(configPath, "utf8"), configBefore);
  assert.is((await readAudit(env)).text, auditBefore);
});

T("--adopt records the offer template's UAMI and the billing ids, deploys nothing, writes a customer.adopt record", async () => {
  const [before, putsBefore] = [deployments(), await deploymentPuts()];
  const r = await runScript("1-connect-customer.mts", [...who(good), "--adopt", "--json"], { env });
  assert.is(r.code, 0, describe(r));
  assert.is(deployments(), before);
  assert.is(await deploymentPuts(), putsBefore);
  const entry = await customerConfig(env, { subscriptionId: SUBSCRIPTION, managedResourceGroup: "mrg-adventureworks" });
  const uami = sb.state.getResource(entry.uamiId)!;
  assert.equal(
    [entry.uamiClientId, entry.uamiPrincipalId, entry.tenantId, entry.subject, entry.audience],
    [(uami.properties as any).clientId, (uami.properties as any).principalId, TENANT, subject, "api://AzureADTokenExchange"],
  );
  assert.equal(entry.billing, { resourceId: good.application.billingDetails.resourceUsageId, resourceUri: good.application.id });
  assert.is(entry.planName, "gold");
  assert.equal(JSON.parse(r.stdout).uamiId, entry.uamiId);
  const adopt = (await readAudit(env)).records.filter((x) => x.operation === "customer.adopt");
  assert.is(adopt.length, 1);
  assert.equal([adopt[0].outcome, adopt[0].targets, adopt[0].detail.deployed], ["succeeded", [entry.uamiId, `${entry.uamiId}/federatedIdentityCredentials/fed`], false]);
  const list = JSON.parse((await runScript("1-list-customers.mts", ["--json"], { env })).stdout) as Array<Record<string, any>>;
  assert.equal(list.filter((x) => x.managedResourceGroup === "mrg-adventureworks").map((x) => [x.connected, x.connectable]), [[true, false]]);
});

T("2-emit-meter bills the adopted customer as its UAMI: the sandbox accepted the event for the app", async () => {
  const r = await runScript("2-emit-meter.mts", [...who(good), "1", "cpu-hours", "2.5"], { env });
  assert.is(r.code, 0, describe(r));
  const events = await admin<Array<{ resourceId: string; resourceUri: string; planId: string; dimension: string; quantity: number }>>(sb, "GET", "/metering/events");
  const mine = events.filter((e) => e.resourceId === good.application.billingDetails.resourceUsageId);
  assert.equal(mine.map((e) => [e.planId, e.dimension, e.quantity]), [["gold", "cpu-hours", 2.5]]);
  const tokens = await admin<Array<{ tenantId: string; grant: string; appid: string }>>(sb, "GET", "/tokens");
  const entry = await customerConfig(env, { subscriptionId: SUBSCRIPTION, managedResourceGroup: "mrg-adventureworks" });
  assert.ok(tokens.some((t) => t.tenantId === TENANT && t.grant === "client_assertion" && t.appid === entry.uamiClientId));
});

T("3-servicebus --via list-tokens: Forbidden naming the app's identity and grant-app-identity, then sends after that grant", async () => {
  const args = [...who(good), "adventureworks-bus", "send", "commands", "--via", "list-tokens"];
  const denied = await runScript("3-servicebus.mts", args, { env, stdin: '{"command":"start"}' });
  assert.is(denied.code, 1, describe(denied));
  const line = denied.stderr.trim().split("\n").at(-1)!;
  assert.match(line, new RegExp(`managed application's system-assigned identity \\(principal ${good.application.identity.principalId}\\) needs the 'Azure Service Bus Data Sender' role`));
  assert.match(line, new RegExp(`3-managed-app\\.mts ${SUBSCRIPTION} mrg-adventureworks grant-app-identity --role "Azure Service Bus Data Sender" --scope namespace:adventureworks-bus`));
  assert.not.match(line, /1-connect-customer/);
  const queue = async () => (await admin<Array<{ messages: unknown[] }>>(sb, "GET", "/servicebus/queues?namespace=adventureworks-bus&queue=commands"))[0];
  assert.is((await queue()).messages.length, 0);

  await runOk("3-managed-app.mts", [...who(good), "grant-app-identity", "--role", "Azure Service Bus Data Sender", "--scope", "namespace:adventureworks-bus"], env);
  // The publisher's tenant is not the customer's: a cross-tenant write, with the delegated id.
  const ns = `/subscriptions/${SUBSCRIPTION}/resourceGroups/mrg-adventureworks/providers/Microsoft.ServiceBus/namespaces/adventureworks-bus`;
  const ra = sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((r) => r.properties.principalId === good.application.identity.principalId && r.properties.scope === ns);
  assert.equal(ra.map((r) => r.properties.delegatedManagedIdentityResourceId), [good.application.id]);
  const sent = await runScript("3-servicebus.mts", args, { env, stdin: '{"command":"start"}' });
  assert.is(sent.code, 0, describe(sent));
  assert.equal((await queue()).messages.map((m: any) => m.body), ['{"command":"start"}']);
  const tokens = await admin<Array<{ grant: string; oid: string; aud: string }>>(sb, "GET", "/tokens");
  assert.ok(tokens.some((t) => t.grant === "listTokens" && t.oid === good.application.identity.principalId && t.aud === "https://servicebus.azure.net"));
});

T("a publisher buying its own offer (one tenant): grant-app-identity leaves delegatedManagedIdentityResourceId out, which the sandbox would refuse", async () => {
  const own = await admin<Purchased>(sb, "POST", "/offers/purchase", {
    tenantId: sb.world.isv.tenantId, subscriptionId: sb.world.isv.subscriptionId, resourceGroup: "own-test", applicationName: "own-offer", managedResourceGroup: "mrg-own-offer",
    plan: { product: "metered-analytics", name: "silver" }, templatePath: `${OFFER_DIR}mainTemplate.bicep`, systemAssignedIdentity: true,
    parameters: { meteringIssuer: issuer, meteringSubject: subject, vaultName: "own-offer-kv", namespaceName: "own-offer-bus", managedApplicationPrincipalId: "" },
  });
  assert.is(own.deployment.provisioningState, "Succeeded", JSON.stringify(own.deployment.error));
  await runOk("1-connect-customer.mts", [sb.world.isv.subscriptionId, "mrg-own-offer", "--adopt"], env);
  const r = await runScript("3-managed-app.mts", [sb.world.isv.subscriptionId, "mrg-own-offer", "grant-app-identity", "--role", "Key Vault Secrets User", "--scope", "vault:own-offer-kv"], { env });
  assert.is(r.code, 0, describe(r));
  const vault = `/subscriptions/${sb.world.isv.subscriptionId}/resourceGroups/mrg-own-offer/providers/Microsoft.KeyVault/vaults/own-offer-kv`;
  const ra = sb.state.ofType("Microsoft.Authorization/roleAssignments").filter((x) => x.properties.principalId === own.application.identity.principalId && x.properties.scope === vault);
  assert.is(ra.length, 1);
  assert.not.ok(ra[0].properties.delegatedManagedIdentityResourceId);
});

T.after(() => sb.stop());
T.run();
