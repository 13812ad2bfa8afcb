// Connect a customer: a user-assigned managed identity in the customer's managed resource
// group, with a federated identity credential that trusts the ISV's issuer.
// Deploy into the managed resource group (MRG) of the customer's managed application:
//   az deployment group create --subscription <customer sub> -g <mrg> \
//     -f templates/1-connect-customer.bicep -p issuer=<issuer URL> subject=<agreed subject>
//
// The ISV then signs a JWT {iss: issuer, sub: subject, aud: audience} with its Key Vault key
// and exchanges it at the customer tenant's token endpoint for a token of this identity.
//
// Role grants for the identity are a second deployment (1-grant-roles.bicep): an assignment's
// name must be known when a deployment starts, and it includes the identity's principal id,
// which only this deployment's outputs give.

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

output uamiId string = uami.id
output uamiName string = uami.name
output uamiClientId string = uami.properties.clientId
output uamiPrincipalId string = uami.properties.principalId
output tenantId string = uami.properties.tenantId
