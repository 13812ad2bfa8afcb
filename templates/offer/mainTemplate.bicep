// A sample offer mainTemplate that uses the offer modules beside it: every purchase is connected
// for metering from the start (metering-identity.bicep), the application's own identity reads a
// vault in the managed resource group (app-identity-vault.bicep), and a queue-triggered worker has
// its command and status queues (servicebus-worker.bicep). Build it for Partner Center's package
// (mainTemplate.json + createUiDefinition.json in the zip) with `az bicep build -f mainTemplate.bicep`.
//
// Set meteringIssuer and meteringSubject to this ISV's values (0-isv-setup prints the issuer;
// the subject is 'metering-submission-via-uami from <publisher.aadTenantId>'): the customer
// cannot change them, createUiDefinition.json does not output them.

@description('Azure region; the createUiDefinition passes the managed resource group\'s.')
param location string = resourceGroup().location

@description('The ISV\'s issuer URL (publisher.idp.issuer in config.json).')
param meteringIssuer string = 'https://contosoisvissuer.blob.core.windows.net/oidc'

@description('The subject the ISV signs for UAMIs.')
param meteringSubject string = 'metering-submission-via-uami from contosoisv.onmicrosoft.com'

@description('Name of the vault in the managed resource group; globally unique.')
param vaultName string = 'kv${uniqueString(resourceGroup().id)}'

@description('Name of the Service Bus namespace; globally unique.')
param namespaceName string = 'sb${uniqueString(resourceGroup().id)}'

@description('Principal id of the managed application\'s system-assigned identity (empty: granted later with 3-managed-app grant-app-identity).')
param managedApplicationPrincipalId string = ''

module metering 'metering-identity.bicep' = {
  name: 'metering-identity'
  params: {
    location: location
    issuer: meteringIssuer
    subject: meteringSubject
    roleDefinitionIds: [
      '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User
    ]
  }
}

module vault 'app-identity-vault.bicep' = {
  name: 'app-identity-vault'
  params: {
    location: location
    vaultName: vaultName
    appPrincipalId: managedApplicationPrincipalId
  }
}

module bus 'servicebus-worker.bicep' = {
  name: 'servicebus-worker'
  params: {
    location: location
    namespaceName: namespaceName
  }
}

output uamiClientId string = metering.outputs.uamiClientId
output vaultUri string = vault.outputs.vaultUri
output serviceBusEndpoint string = bus.outputs.serviceBusEndpoint
