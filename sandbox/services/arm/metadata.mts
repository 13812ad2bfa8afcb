// ARM's cloud metadata: `GET {arm}/metadata/endpoints?api-version=…`, anonymous as in Azure
// (docs/azure-behaviour.md §5.7). It is how `az cloud register --endpoint-resource-manager <arm>`
// learns the sign-in endpoint and audiences of a cloud, so with this the sandbox's ARM URL alone
// registers the sandbox as a cloud.
import type { Reply, Route, RouteContext } from "../../core/http.mts";
import type { SandboxContext } from "../../core/context.mts";
import { armError, withArmHeaders } from "./core.mts";

/** The cloud's name in the newer shapes (not AzureCloud: az rewrites that cloud's login endpoint). */
export const SANDBOX_CLOUD_NAME = "MeteringSandbox";
const AUDIENCES = ["https://management.core.windows.net/", "https://management.azure.com/"];
/** 2015-01-01: the original flat shape; 2019-05-01 and 2020-06-01: a list of clouds; 2022-09-01: one cloud. */
const METADATA_API_VERSIONS = ["2015-01-01", "2019-05-01", "2020-06-01", "2022-09-01"];

export function metadataRoutes(ctx: SandboxContext): Route[] {
  const slash = (u: string) => u.endsWith("/") ? u : `${u}/`;

  const cloud = () => {
    const e = ctx.endpoints;
    return {
      portal: "https://portal.azure.com",
      authentication: { loginEndpoint: slash(e.entra), audiences: AUDIENCES, tenant: "common", identityProvider: "AAD" },
      media: "https://rest.media.azure.net",
      graphAudience: "https://graph.windows.net/",
      graph: "https://graph.windows.net/",
      name: SANDBOX_CLOUD_NAME,
      suffixes: {
        azureDataLakeStoreFileSystem: "azuredatalakestore.net",
        acrLoginServer: "azurecr.io",
        sqlServerHostname: "database.windows.net",
        azureDataLakeAnalyticsCatalogAndJob: "azuredatalakeanalytics.net",
        keyVaultDns: "vault.azure.net",
        storage: "core.windows.net",
        azureFrontDoorEndpointSuffix: "azurefd.net",
        storageSyncEndpointSuffix: "afs.azure.net",
        mhsmDns: "managedhsm.azure.net",
        mysqlServerEndpoint: "mysql.database.azure.com",
        postgresqlServerEndpoint: "postgres.database.azure.com",
        mariadbServerEndpoint: "mariadb.database.azure.com",
        synapseAnalytics: "dev.azuresynapse.net",
        attestationEndpoint: "attest.azure.net",
      },
      batch: "https://batch.core.windows.net/",
      resourceManager: slash(e.arm),
      vmImageAliasDoc: "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json",
      activeDirectoryDataLake: "https://datalake.azure.net/",
      sqlManagement: "https://management.core.windows.net:8443/",
      // Graph answers on the sandbox's own port: az asks for tokens for this URL and calls it.
      microsoftGraphResourceId: slash(e.graph),
      appInsightsResourceId: "https://api.applicationinsights.io",
      appInsightsTelemetryChannelResourceId: "https://dc.applicationinsights.azure.com/v2/track",
      attestationResourceId: "https://attest.azure.net",
      synapseAnalyticsResourceId: "https://dev.azuresynapse.net",
      logAnalyticsResourceId: "https://api.loganalytics.io",
      ossrDbmsResourceId: "https://ossrdbms-aad.database.windows.net",
    };
  };

  const handler = (c: RouteContext): Reply => {
    const v = c.url.searchParams.get("api-version");
    if (!v) return withArmHeaders(c, armError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."));
    if (!METADATA_API_VERSIONS.includes(v)) {
      return withArmHeaders(c, armError(400, "InvalidApiVersionParameter", `The api-version '${v}' is invalid. The supported versions are '${[...METADATA_API_VERSIONS].reverse().join(",")}'.`));
    }
    const cl = cloud();
    if (v === "2015-01-01") {
      return withArmHeaders(c, {
        status: 200,
        body: {
          galleryEndpoint: "https://gallery.azure.com/",
          graphEndpoint: cl.graph,
          portalEndpoint: `${cl.portal}/`,
          authentication: { loginEndpoint: cl.authentication.loginEndpoint, audiences: cl.authentication.audiences },
        },
      });
    }
    return withArmHeaders(c, { status: 200, body: v === "2022-09-01" ? cl : [cl] });
  };

  return [{ method: "GET", path: "/metadata/endpoints", handler }];
}
