// Offer template module: the customer is connected at deployment. A user-assigned managed
// identity in the managed resource group (MRG), a federated identity credential trusting the
// ISV's issuer, and data-plane roles for it on the MRG. Add it to the offer's mainTemplate:
//   module metering 'metering-identity.bicep' = {
//     name: 'metering-identity'
//     params: { issuer: '<issuer URL>', subject: 'metering-submission-via-uami from <ISV tenant>' }
//   }
// After a purchase, `1-list-customers` shows the deployment as connectable and
// `1-connect-customer <sub> <mrg> --adopt` records it: no connect deployment per customer.
//
// The mainTemplate runs in the customer's tenant at purchase time (Azure deploys it into the
// MRG it creates), so these role assignments are same-tenant writes: they carry no
// delegatedManagedIdentityResourceId (that property is only for a publisher's cross-tenant
// grant, templates/1-grant-roles.bicep). Names use the identity's resource id, which is known
// when the deployment starts.

@description('Azure region of the identity; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Name of the user-assigned managed identity (1-connect-customer --adopt looks for this name first).')
param uamiName string = 'metering-submission-uami'

@description('Name of the federated identity credential.')
param ficName string = 'fed'

@description('The ISV\'s issuer URL, exactly as its discovery document says it (case-sensitive, no trailing slash).')
param issuer string

@description('Subject the ISV signs: \'metering-submission-via-uami from <ISV tenant>\', as 1-connect-customer uses it (case-sensitive).')
param subject string

@description('Audience of the ISV\'s assertion; Entra recommends this value.')
param audience string = 'api://AzureADTokenExchange'

@description('Built-in role definition ids (GUIDs) the identity gets on the MRG, e.g. Key Vault Secrets User 4633458b-17de-408a-b874-0445c86b69e6.')
param roleDefinitionIds array = []

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: uamiName
  location: location
}

resource fic 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: uami
  name: ficName
  properties: {
    issuer: issuer
    subject: subject
    audiences: [
      audience
    ]
  }
}

resource grants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in roleDefinitionIds: {
  name: guid(resourceGroup().id, uami.id, roleDefinitionId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: uami.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

output uamiId string = uami.id
output uamiClientId string = uami.properties.clientId
output uamiPrincipalId string = uami.properties.principalId
