// Offer template module: a Key Vault in the managed resource group (RBAC authorization) and a
// role on it for the managed application's own system-assigned identity, so the publisher can
// read it through the application's listTokens (`3-keyvault-secret … --via list-tokens`) with
// no identity of its own in the customer's tenant.
//
// The application gets its system-assigned identity from the createUiDefinition's
// Microsoft.ManagedIdentity.IdentitySelector step (see createUiDefinition.json beside this file).
// Its principal id is passed in: appPrincipalId. Which deployment parameter Azure fills with it
// is not documented; the sandbox's purchase fills a mainTemplate parameter named
// managedApplicationPrincipalId. Left empty, no role is assigned here and
// `3-managed-app <sub> <mrg> grant-app-identity --role "Key Vault Secrets User" --scope vault:<name>`
// grants it after the purchase.

@description('Azure region of the vault; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Name of the Key Vault (3-24 characters, globally unique in Azure).')
param vaultName string

@description('Principal (object) id of the managed application\'s system-assigned identity; empty: no role assigned here.')
param appPrincipalId string = ''

@description('Role the application\'s identity gets on the vault: Key Vault Secrets User by default.')
param roleDefinitionId string = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
  }
}

resource appGrant 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(appPrincipalId)) {
  name: guid(vault.id, appPrincipalId, roleDefinitionId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output vaultId string = vault.id
output vaultUri string = vault.properties.vaultUri
