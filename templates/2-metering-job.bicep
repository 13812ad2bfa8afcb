// The hourly metering job: 2-emit-meter as an Azure Container Apps job on a schedule, signing in
// as a user-assigned managed identity of the publisher's own (no person, no Cloud Shell, no secret).
// Deploy into the ISV's resource group, after 0-isv-setup and `az acr build` (README, "Running
// every hour: a Container Apps job"):
//   az deployment group create -g <rg> -f templates/2-metering-job.bicep \
//     -p image=<registry>.azurecr.io/metering:1 registryServer=<registry>.azurecr.io \
//        keyVaultName=<vault> storageAccountName=<account>
//
// - A Container Apps managed environment and a job in it with a schedule trigger (cron, UTC;
//   default minute 7 of every hour: the hour before is closed by then), `parallelism` replicas
//   per execution, each of which must finish (replicaCompletionCount = parallelism), a timeout per
//   replica and a retry limit.
// - A user-assigned identity the job runs as: Key Vault Crypto User on the vault holding the
//   signing key (it signs the client assertions there), Storage Blob Data Contributor on the
//   ledger and usage containers (created here if missing); AZURE_CLIENT_ID names it to the SDK.
// - The scripts' environment: METERING_* settings (lib/core/settings.mts; METERING_LEDGER names
//   the ledger container, so that every replica shares one ledger) and extraEnv.

@description('Azure region for every resource; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Name of the Container Apps managed environment.')
param environmentName string = 'metering-env'

@description('Name of the Container Apps job.')
param jobName string = 'metering-job'

@description('Name of the user-assigned identity the job runs as.')
param identityName string = 'metering-job-identity'

@description('The image built from this repository\'s Dockerfile, e.g. myregistry.azurecr.io/metering:1.')
param image string

@description('Login server of the registry holding the image (the job pulls with its identity, which needs AcrPull there); empty for a public image.')
param registryServer string = ''

@description('Schedule of the job: 5-field cron (minute hour day month weekday), UTC.')
param cronExpression string = '7 * * * *'

@description('Replicas per execution (each one a runner); every one of them must finish for the execution to succeed.')
@minValue(1)
param parallelism int = 1

@description('Seconds a replica may run before it is stopped and counts as failed.')
@minValue(60)
param replicaTimeoutSeconds int = 1800

@description('How often a failed replica is retried within one execution.')
@minValue(0)
param replicaRetryLimit int = 1

@description('Arguments of `node scripts/2-emit-meter.mts` (e.g. --from blob:usage/ or --file <path>).')
param emitArgs array = [
  '--from'
  'blob:usage/'
]

@description('Key Vault (in this resource group) holding the signing key: the job\'s identity gets Key Vault Crypto User on it.')
param keyVaultName string

@description('Grant Key Vault Crypto User on the vault here (false when someone else grants it).')
param grantSigningRole bool = true

@description('Storage account (in this resource group) of the ledger and usage containers.')
param storageAccountName string

@description('Blob container of the ledger (the audit log), created if missing.')
param ledgerContainerName string = 'ledger'

@description('Blob container the usage files are dropped into, created if missing.')
param usageContainerName string = 'usage'

@description('Where the ledger (the audit log) lives: append blobs in the ledger container (blob: what every replica of every execution shares), or audit.jsonl in the replica\'s data directory (file: only where that directory outlives a run).')
@allowed([
  'blob'
  'file'
])
param ledger string = 'blob'

@description('Blob name prefix of the ledger inside its container (e.g. prod/).')
param ledgerPrefix string = ''

@description('METERING_DATA_DIR of the replicas: where config.json (and, with the file ledger, audit.jsonl) live.')
param dataDir string = '/home/node/metering-data'

@description('More environment variables of the job\'s container: [{name, value}].')
param extraEnv array = []

@description('CPU cores and memory of a replica.')
param cpu string = '0.5'
param memory string = '1Gi'

// Built-in role "Key Vault Crypto User": key operations including sign, no key management.
var cryptoUserRoleId = '12338af0-0e69-4776-bea7-57ae8d297424'
// Built-in role "Storage Blob Data Contributor": read, write and lease blobs, no account keys.
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
}

resource vault 'Microsoft.KeyVault/vaults@2025-05-01' existing = {
  name: keyVaultName
}

resource storage 'Microsoft.Storage/storageAccounts@2025-06-01' existing = {
  name: storageAccountName
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' existing = {
  parent: storage
  name: 'default'
}

resource ledgerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
  parent: blobServices
  name: ledgerContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource usageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = {
  parent: blobServices
  name: usageContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Names include the principal: a recreated identity gets new assignments, never an update ARM refuses.
resource signingRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantSigningRole) {
  name: guid(vault.id, identity.id, cryptoUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cryptoUserRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource ledgerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(ledgerContainer.id, identity.id, blobDataContributorRoleId)
  scope: ledgerContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource usageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(usageContainer.id, identity.id, blobDataContributorRoleId)
  scope: usageContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  properties: {
    zoneRedundant: false
  }
}

resource job 'Microsoft.App/jobs@2025-01-01' = {
  name: jobName
  location: location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    environmentId: environment.id
    configuration: {
      triggerType: 'Schedule'
      replicaTimeout: replicaTimeoutSeconds
      replicaRetryLimit: replicaRetryLimit
      scheduleTriggerConfig: {
        cronExpression: cronExpression
        parallelism: parallelism
        replicaCompletionCount: parallelism
      }
      registries: empty(registryServer) ? [] : [
        {
          server: registryServer
          identity: identity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'emit-meter'
          image: image
          command: [
            'node'
            'scripts/2-emit-meter.mts'
          ]
          args: emitArgs
          env: concat([
            {
              name: 'AZURE_CLIENT_ID'
              value: identity.properties.clientId
            }
            {
              // Only the managed identity: a container has no az and no person signed in.
              name: 'AZURE_TOKEN_CREDENTIALS'
              value: 'ManagedIdentityCredential'
            }
            {
              name: 'METERING_DATA_DIR'
              value: dataDir
            }
            {
              name: 'METERING_LEDGER'
              value: ledger == 'blob' ? 'blob:${storage.properties.primaryEndpoints.blob}${ledgerContainer.name}/${ledgerPrefix}' : 'file'
            }
          ], extraEnv)
          resources: {
            cpu: json(cpu)
            memory: memory
          }
        }
      ]
    }
  }
  dependsOn: [
    signingRole
    ledgerRole
    usageRole
  ]
}

output jobName string = job.name
output jobId string = job.id
output environmentId string = environment.id
output identityId string = identity.id
output identityPrincipalId string = identity.properties.principalId
output identityClientId string = identity.properties.clientId
output ledgerContainerName string = ledgerContainer.name
output usageContainerName string = usageContainer.name
