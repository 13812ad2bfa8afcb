// Role grants for one managed identity of the customer's tenant, deployed by the publisher into
// the managed resource group (MRG): 1-connect-customer --grant (the customer's UAMI, on the MRG)
// and 3-managed-app grant-app-identity (the managed application's system-assigned identity, on
// the MRG, a Key Vault or a Service Bus namespace in it).
//
// The identity lives in the customer's tenant and the deployment runs as the publisher: ARM
// accepts such a cross-tenant assignment only with delegatedManagedIdentityResourceId naming the
// identity's resource (the UAMI, or the resource whose system-assigned identity it is), which
// az role assignment create cannot set: hence a template. When the publisher and the customer
// are one tenant (a publisher trying its own offer) the write is not cross-tenant and the
// property cannot be used: the caller passes it empty and the assignments leave it out (null).

@description('Principal (object) id of the identity.')
param principalId string

@description('Resource id of the identity for a cross-tenant write: the UAMI, or the resource with the system-assigned identity (the managed application); empty when the publisher is in the customer\'s tenant.')
param delegatedManagedIdentityResourceId string = ''

@description('Built-in role definition ids (GUIDs) to grant.')
param roleDefinitionIds array

@description('Where the roles apply: the resource group, or one Key Vault or Service Bus namespace in it (scopeName).')
@allowed([
  'resourceGroup'
  'vault'
  'namespace'
])
param scopeKind string = 'resourceGroup'

@description('Name of the Key Vault or Service Bus namespace (scopeKind vault or namespace).')
param scopeName string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: scopeKind == 'vault' ? scopeName : 'none'
}

resource namespace 'Microsoft.ServiceBus/namespaces@2021-11-01' existing = {
  name: scopeKind == 'namespace' ? scopeName : 'none'
}

// Names include the principal: an identity recreated under the same resource id (disconnect,
// then connect) gets a new principal and so new assignments, never an update ARM refuses.
resource rgGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in (scopeKind == 'resourceGroup' ? roleDefinitionIds : []): {
  name: guid(resourceGroup().id, principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    delegatedManagedIdentityResourceId: empty(delegatedManagedIdentityResourceId) ? null : delegatedManagedIdentityResourceId
  }
}]

resource vaultGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in (scopeKind == 'vault' ? roleDefinitionIds : []): {
  name: guid(vault.id, principalId, roleDefinitionId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    delegatedManagedIdentityResourceId: empty(delegatedManagedIdentityResourceId) ? null : delegatedManagedIdentityResourceId
  }
}]

resource namespaceGrants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in (scopeKind == 'namespace' ? roleDefinitionIds : []): {
  name: guid(namespace.id, principalId, roleDefinitionId)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    delegatedManagedIdentityResourceId: empty(delegatedManagedIdentityResourceId) ? null : delegatedManagedIdentityResourceId
  }
}]
