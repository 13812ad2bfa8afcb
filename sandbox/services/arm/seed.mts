// The seeded world's resources inside managed resource groups (world.json `customers[].mrgResources`):
// an RBAC Key Vault and a Service Bus namespace with queues, as a managed application's own
// template would have deployed them. Made through ARM's own routes in-process (as the ISV user,
// whom the plan's authorizations make Owner of the MRG), so they are exactly what a PUT makes:
// a vault gets its port and vaultUri, a namespace its serviceBusEndpoint.
import { createInProcessDispatcher, type ServiceDef } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";

const KEYVAULT_API = "2023-07-01";
const SERVICEBUS_API = "2021-11-01";

export async function seedMrgResources(ctx: SandboxContext, armDef: ServiceDef): Promise<void> {
  const seed = ctx.state.seed;
  const todo = seed.customers.filter((c) => c.mrgResources);
  if (todo.length === 0) return;
  const dispatch = createInProcessDispatcher(armDef);
  const { token } = await ctx.tokens.issue({
    tenantId: seed.isv.tenantId, audience: "https://management.azure.com/", objectId: seed.isv.user.objectId, idtyp: "user", lifetimeS: 300, grant: "seed",
  });
  const put = async (path: string, apiVersion: string, body: unknown) => {
    const reply = await dispatch({ method: "PUT", url: `${path}?api-version=${apiVersion}`, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body });
    if (reply.status >= 300) throw new Error(`Cannot seed ${path}: HTTP ${reply.status} ${JSON.stringify(reply.body)}`);
  };
  for (const c of todo) {
    const mrg = `/subscriptions/${c.subscriptionId}/resourceGroups/${c.managedResourceGroup}`;
    for (const v of c.mrgResources?.keyVaults ?? []) {
      await put(`${mrg}/providers/Microsoft.KeyVault/vaults/${v.name}`, KEYVAULT_API, {
        location: c.location, properties: { tenantId: c.tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true },
      });
    }
    for (const ns of c.mrgResources?.serviceBusNamespaces ?? []) {
      const id = `${mrg}/providers/Microsoft.ServiceBus/namespaces/${ns.name}`;
      await put(id, SERVICEBUS_API, { location: c.location, sku: { name: "Standard" } });
      for (const q of ns.queues ?? []) await put(`${id}/queues/${q}`, SERVICEBUS_API, { properties: {} });
    }
  }
}
