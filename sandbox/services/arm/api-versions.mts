// What ARM knows of the resource types the sandbox serves: the real api-versions of each type,
// the resource provider namespaces (for InvalidResourceNamespace) and the public regions.

// Real api-versions of each resource type (newest first, as ARM lists them in its messages).
const RESOURCES_API = [
  "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-12-01", "2022-09-01",
  "2022-05-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01", "2020-06-01", "2020-01-01",
  "2019-11-01", "2019-10-01", "2019-09-01", "2019-08-01", "2019-07-01", "2019-06-01", "2019-05-10", "2019-05-01",
  "2019-03-01", "2018-11-01", "2018-09-01", "2018-08-01", "2018-07-01", "2018-06-01", "2018-05-01", "2018-02-01",
  "2018-01-01", "2017-12-01", "2017-08-01", "2017-06-01", "2017-05-10", "2017-05-01", "2017-03-01", "2016-09-01",
  "2016-07-01", "2016-06-01", "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
];
/**
 * Deployments are versioned apart from the rest of Microsoft.Resources since 2026: 2026-06-01
 * (azure-rest-api-specs Microsoft.Resources/deployments, the version @azure/arm-resourcesdeployments
 * 2.0.0 sends), then the shared list.
 */
const DEPLOYMENTS_API = ["2026-06-01", ...RESOURCES_API];
const SUBSCRIPTIONS_API = [
  "2022-12-01", "2021-01-01", "2020-01-01", "2019-11-01", "2019-06-01", "2019-05-01", "2019-03-01", "2018-11-01",
  "2018-09-01", "2018-08-01", "2018-07-01", "2018-06-01", "2018-05-01", "2018-02-01", "2018-01-01", "2017-12-01",
  "2017-08-01", "2017-06-01", "2017-05-10", "2017-05-01", "2017-03-01", "2016-09-01", "2016-07-01", "2016-06-01",
  "2016-02-01", "2015-11-01", "2015-01-01", "2014-04-01",
];
const SOLUTIONS_API = ["2023-12-01-preview", "2021-07-01", "2021-02-01-preview", "2020-08-21-preview", "2019-07-01", "2018-09-01-preview", "2018-06-01", "2018-03-01", "2018-02-01", "2017-12-01", "2017-09-01"];
/** listTokens exists from 2018-09-01-preview (docs/azure-behaviour.md §5.2); refreshPermissions from 2019-07-01. */
export const LIST_TOKENS_API = ["2023-12-01-preview", "2021-07-01", "2019-07-01", "2018-09-01-preview"];
export const REFRESH_PERMISSIONS_API = ["2023-12-01-preview", "2021-07-01", "2019-07-01"];
const MSI_API = ["2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview", "2021-09-30-preview", "2018-11-30", "2015-08-31-preview"];
const FIC_API = ["2025-01-31-preview", "2024-11-30", "2023-07-31-preview", "2023-01-31", "2022-01-31-preview"];
const STORAGE_API = [
  "2025-06-01", "2025-01-01", "2024-01-01", "2023-05-01", "2023-04-01", "2023-01-01", "2022-09-01", "2022-05-01",
  "2021-09-01", "2021-08-01", "2021-06-01", "2021-04-01", "2021-02-01", "2021-01-01", "2019-06-01", "2019-04-01",
  "2018-11-01", "2018-07-01", "2018-02-01", "2017-10-01", "2017-06-01", "2016-12-01", "2016-05-01", "2016-01-01",
];
const KEYVAULT_API = [
  "2025-05-01", "2024-12-01-preview", "2024-11-01", "2024-04-01-preview", "2023-08-01-preview", "2023-07-01", "2023-02-01",
  "2022-11-01", "2022-07-01", "2022-02-01-preview", "2021-11-01-preview", "2021-10-01", "2021-06-01-preview",
  "2021-04-01-preview", "2020-04-01-preview", "2019-09-01", "2018-02-14", "2016-10-01", "2015-06-01",
];
/** ARM-level keys exist from 2019-09-01. */
const KEYVAULT_KEYS_API = KEYVAULT_API.slice(0, KEYVAULT_API.indexOf("2019-09-01") + 1);
const ROLE_ASSIGNMENTS_API = [
  "2022-04-01", "2022-01-01-preview", "2021-04-01-preview", "2020-10-01-preview", "2020-08-01-preview", "2020-04-01-preview",
  "2020-03-01-preview", "2019-04-01-preview", "2018-12-01-preview", "2018-09-01-preview", "2018-07-01", "2018-01-01-preview",
  "2017-10-01-preview", "2017-09-01", "2017-05-01", "2016-07-01", "2015-07-01", "2015-06-01", "2015-05-01-preview",
];
const ROLE_DEFINITIONS_API = ["2022-05-01-preview", "2022-04-01", "2018-01-01-preview", "2017-09-01", "2017-05-01", "2016-07-01", "2015-07-01", "2015-06-01"];
/** Microsoft.ServiceBus namespaces and queues (newest first). */
const SERVICEBUS_API = ["2024-01-01", "2023-01-01-preview", "2022-10-01-preview", "2022-01-01-preview", "2021-11-01", "2021-06-01-preview", "2021-01-01-preview", "2018-01-01-preview", "2017-04-01", "2015-08-01", "2014-09-01"];
/** Microsoft.App jobs exist from 2023-05-01 (stable); managed environments from 2022-03-01. */
const APP_JOBS_API = ["2025-01-01", "2024-03-01", "2023-08-01-preview", "2023-05-01"];
const APP_ENVIRONMENTS_API = [...APP_JOBS_API, "2022-10-01", "2022-03-01"];
/** Resource Graph: the versions whose request and response shapes the sandbox implements (docs/azure-behaviour.md §5.6). */
const GRAPH_API = ["2024-04-01", "2022-10-01", "2021-03-01"];

/** Lower-cased full resource type → its api-versions. */
export const API_VERSIONS: Record<string, string[]> = {
  "microsoft.resources/subscriptions": SUBSCRIPTIONS_API,
  "microsoft.resources/tenants": SUBSCRIPTIONS_API,
  "microsoft.resources/resourcegroups": RESOURCES_API,
  "microsoft.resources/resources": RESOURCES_API,
  "microsoft.resources/deployments": DEPLOYMENTS_API,
  "microsoft.resources/operationresults": RESOURCES_API,
  "microsoft.solutions/applications": SOLUTIONS_API,
  "microsoft.solutions/locations/operationstatuses": SOLUTIONS_API,
  "microsoft.managedidentity/userassignedidentities": MSI_API,
  "microsoft.managedidentity/userassignedidentities/federatedidentitycredentials": FIC_API,
  "microsoft.storage/storageaccounts": STORAGE_API,
  "microsoft.storage/storageaccounts/blobservices": STORAGE_API,
  "microsoft.storage/storageaccounts/blobservices/containers": STORAGE_API,
  "microsoft.keyvault/vaults": KEYVAULT_API,
  "microsoft.keyvault/vaults/keys": KEYVAULT_KEYS_API,
  "microsoft.keyvault/vaults/secrets": KEYVAULT_API,
  "microsoft.authorization/roleassignments": ROLE_ASSIGNMENTS_API,
  "microsoft.authorization/roledefinitions": ROLE_DEFINITIONS_API,
  "microsoft.resourcegraph/resources": GRAPH_API,
  "microsoft.servicebus/namespaces": SERVICEBUS_API,
  "microsoft.servicebus/namespaces/queues": SERVICEBUS_API,
  "microsoft.app/managedenvironments": APP_ENVIRONMENTS_API,
  "microsoft.app/jobs": APP_JOBS_API,
};

/** Resource providers the sandbox knows (lower-case → canonical casing), for InvalidResourceNamespace. */
export const NAMESPACES: Record<string, string> = Object.fromEntries(
  ["Microsoft.Resources", "Microsoft.Solutions", "Microsoft.ManagedIdentity", "Microsoft.Storage", "Microsoft.KeyVault", "Microsoft.Authorization", "Microsoft.ResourceGraph", "Microsoft.ServiceBus", "Microsoft.App"]
    .map((n) => [n.toLowerCase(), n]),
);

// Public Azure regions (names as ARM normalises them).
export const REGIONS = [
  "eastus", "eastus2", "southcentralus", "westus2", "westus3", "australiaeast", "southeastasia", "northeurope", "swedencentral",
  "uksouth", "westeurope", "centralus", "southafricanorth", "centralindia", "eastasia", "japaneast", "koreacentral",
  "newzealandnorth", "canadacentral", "francecentral", "germanywestcentral", "italynorth", "norwayeast", "polandcentral",
  "spaincentral", "switzerlandnorth", "mexicocentral", "uaenorth", "brazilsouth", "israelcentral", "qatarcentral",
  "northcentralus", "westus", "japanwest", "westcentralus", "southafricawest", "australiacentral", "australiacentral2",
  "australiasoutheast", "koreasouth", "southindia", "westindia", "canadaeast", "francesouth", "germanynorth", "norwaywest",
  "switzerlandwest", "ukwest", "uaecentral", "brazilsoutheast", "malaysiasouth", "malaysiawest", "indonesiacentral",
  "chilecentral", "austriaeast", "belgiumcentral", "denmarkeast",
];
