// Offer template module: the customer side of Azure-Samples/Cross-Tenant-Communication-Using-
// Azure-Service-Bus. A Service Bus namespace in the managed resource group with a command queue
// (the publisher sends, the customer's worker receives) and a status queue (the worker sends
// back), and the worker's identity holding Azure Service Bus Data Receiver and Data Sender on the
// namespace. The worker is whatever queue-triggered compute the offer runs (a Function, a Container
// Apps job); pass its identity's principal id, or leave workerPrincipalId empty to create a
// user-assigned identity for it here.
//
// The publisher reaches the queues as the metering identity (metering-identity.bicep with the
// Service Bus roles) or as the application's identity: `3-servicebus <sub> <mrg> … --via list-tokens`.

@description('Azure region; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Name of the Service Bus namespace (6-50 characters, globally unique in Azure).')
param namespaceName string

@description('Queue the publisher sends commands to.')
param commandQueueName string = 'commands'

@description('Queue the worker reports status on.')
param statusQueueName string = 'status'

@description('Principal id of the worker\'s identity; empty: a user-assigned identity workerIdentityName is created.')
param workerPrincipalId string = ''

@description('Name of the worker identity created when workerPrincipalId is empty.')
param workerIdentityName string = 'servicebus-worker'

resource namespace 'Microsoft.ServiceBus/namespaces@2021-11-01' = {
  name: namespaceName
  location: location
  sku: {
    name: 'Standard'
  }
}

resource commandQueue 'Microsoft.ServiceBus/namespaces/queues@2021-11-01' = {
  parent: namespace
  name: commandQueueName
  properties: {}
}

resource statusQueue 'Microsoft.ServiceBus/namespaces/queues@2021-11-01' = {
  parent: namespace
  name: statusQueueName
  properties: {}
}

resource worker 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (empty(workerPrincipalId)) {
  name: workerIdentityName
  location: location
}

var receiverRoleId = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var senderRoleId = '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
var principalId = empty(workerPrincipalId) ? worker.properties.principalId : workerPrincipalId

resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, workerIdentityName, workerPrincipalId, receiverRoleId)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', receiverRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource sender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, workerIdentityName, workerPrincipalId, senderRoleId)
  scope: namespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', senderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output namespaceId string = namespace.id
output serviceBusEndpoint string = namespace.properties.serviceBusEndpoint
output workerPrincipalId string = principalId
