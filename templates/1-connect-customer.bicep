// Connect a customer: a user-assigned managed identity in the customer's managed resource
// group, with a federated identity credential that trusts the ISV's issuer.
// Deploy into the managed resource group (MRG) of the customer's managed application:
//   az deployment group create --subscription <customer sub> -g <mrg> \
//     -f templates/1-connect-customer.bicep -p issuer=<issuer URL> subject=<agreed subject>
//
// The ISV then signs a JWT {iss: issuer, sub: subject, aud: audience} with its Key Vault key
// and exchanges it at the customer tenant's token endpoint for a token of this identity.

@description('Azure region of the identity; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Name of the user-assigned managed identity.')
param uamiName string = 'metering-submission-uami'

@description('Name of the federated identity credential (3-120 characters: letters, digits, - and _, starting with a letter or digit).')
param ficName string = 'fed'

@description('Issuer URL, exactly as the JWT\'s iss claim and the discovery document say it (case-sensitive, no trailing slash).')
param issuer string

@description('Subject, exactly as the JWT\'s sub claim says it (case-sensitive).')
param subject string

@description('Audience of the JWT; Entra recommends this value.')
param audience string = 'api://AzureADTokenExchange'

@description('Built-in role definition ids (GUIDs) to grant the identity on this resource group, e.g. Key Vault Secrets Officer b86a8fe4-44ce-4948-aee5-eccb2c155cd7 (1-connect-customer --grant).')
param grantRoleDefinitionIds array = []

resource uami 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: uamiName
  location: location
}

// Entra allows exactly one audience per credential and at most 20 credentials per identity.
// A new credential can take a few minutes before Entra accepts assertions against it.
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

// Data-plane roles for the identity on the managed resource group (Key Vault secrets, Service Bus
// queues, blobs, ...). The name is deterministic, so a redeployment finds the same assignment.
resource grants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in grantRoleDefinitionIds: {
  name: guid(resourceGroup().id, uami.id, roleDefinitionId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: uami.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

output uamiId string = uami.id
output uamiName string = uami.name
output uamiClientId string = uami.properties.clientId
output uamiPrincipalId string = uami.properties.principalId
output tenantId string = uami.properties.tenantId
