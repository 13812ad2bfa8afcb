// ISV setup: everything the publisher needs in its own tenant to act as an OIDC issuer.
// Deploy into the ISV's resource group:
//   az deployment group create -g <rg> -f templates/0-isv-setup.bicep -p userObjectId=<your object id>
//
// - A storage account that serves the issuer's discovery document (.well-known/openid-configuration)
//   and JWKS anonymously, which is how Entra fetches them: from a public-read blob container
//   (issuerHost 'blob', the default), or from the account's static website (issuerHost
//   'static-website': the $web container, served anonymously whatever allowBlobPublicAccess says,
//   for tenants whose Azure Policy denies public blob access; the script switches the website on,
//   a data-plane setting no template can make).
// - A Key Vault (RBAC mode) holding an RSA key that can only sign. The private half never
//   leaves the vault; the scripts ask the vault to sign each client assertion.
// - Key Vault Crypto Officer on that vault for the user running the scripts.
// - With ledgerContainerName: a private container for the shared ledger (the audit log) in the
//   same account, and Storage Blob Data Contributor on that container for the same user.

@description('Azure region for every resource; defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Storage account that serves the issuer documents (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = 'idp${uniqueString(resourceGroup().id)}'

@description('Blob container with anonymous read access; the issuer URL is https://<account>.blob.core.windows.net/<container>.')
param containerName string = 'public'

@description('Where the issuer documents are served: a public-read blob container, or the static website ($web).')
@allowed([
  'blob'
  'static-website'
])
param issuerHost string = 'blob'

@description('Key Vault that holds the signing key (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param keyVaultName string = 'idp${uniqueString(resourceGroup().id)}'

@description('Name of the RSA signing key in the vault.')
param keyName string = 'idpkey'

@description('RSA key size in bits.')
@allowed([
  2048
  3072
  4096
])
param keySize int = 4096

@description('Name of an existing Key Vault Crypto Officer assignment of userObjectId on the vault (the bash tool named its own differently; Azure refuses a second assignment of the same role, principal and scope). Empty: the name this template derives.')
param cryptoOfficerAssignmentName string = ''

@description('Private blob container for the shared ledger (the audit log) in this storage account; userObjectId gets Storage Blob Data Contributor on it. Empty: none.')
param ledgerContainerName string = ''

@description('Name of an existing Storage Blob Data Contributor assignment of userObjectId on the ledger container (one made by hand; Azure refuses a second assignment of the same role, principal and scope). Empty: the name this template derives.')
param ledgerAssignmentName string = ''

@description('Object id of the principal (the user running the scripts) that gets Key Vault Crypto Officer on the vault and Storage Blob Data Contributor on the issuer container.')
param userObjectId string

@description('What userObjectId is: a person (User), or a service principal or managed identity (ServicePrincipal) when automation runs the setup. Azure refuses an assignment whose type does not match the directory (UnmatchedPrincipalType); 0-isv-setup.mts reads it from the signed-in token.')
@allowed([
  'User'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

// Built-in role "Key Vault Crypto Officer": all key operations, including sign.
var cryptoOfficerRoleId = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
// Built-in role "Storage Blob Data Contributor": the scripts upload the issuer documents with
// the signed-in user's token (no account keys), which needs this data-plane role.
var blobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// With issuerHost 'blob', public blob access is the point: Entra must read the discovery document
// and JWKS without credentials. Azure Policy in some organisations denies allowBlobPublicAccess;
// the deployment then fails on this resource, and issuerHost 'static-website' is the way out.
resource storage 'Microsoft.Storage/storageAccounts@2025-06-01' = {
  name: storageAccountName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowBlobPublicAccess: issuerHost == 'blob'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2025-06-01' = {
  parent: storage
  name: 'default'
}

// 'Blob' = anonymous read of blobs, no anonymous listing of the container. Not needed (and
// refused where policy denies public access) when the static website serves the documents.
resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = if (issuerHost == 'blob') {
  parent: blobServices
  name: containerName
  properties: {
    publicAccess: 'Blob'
  }
}

// RBAC authorization instead of access policies, so the role assignment below is all it takes.
// Soft delete stays on (the original turned it off): a deleted vault can be recovered, and its
// name stays reserved for the retention period.
resource vault 'Microsoft.KeyVault/vaults@2025-05-01' = {
  name: keyVaultName
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
  }
}

// The signing key. keyOps limits what the vault will do with it: sign, and verify for checks.
resource key 'Microsoft.KeyVault/vaults/keys@2025-05-01' = {
  parent: vault
  name: keyName
  properties: {
    kty: 'RSA'
    keySize: keySize
    keyOps: [
      'sign'
      'verify'
    ]
  }
}

// guid() keeps the assignment name stable, so redeploying does not create duplicates.
resource cryptoOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: empty(cryptoOfficerAssignmentName) ? guid(vault.id, userObjectId, cryptoOfficerRoleId) : cryptoOfficerAssignmentName
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cryptoOfficerRoleId)
    principalId: userObjectId
    principalType: userPrincipalType
  }
}

resource blobDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (issuerHost == 'blob') {
  name: guid(container.id, userObjectId, blobDataContributorRoleId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: userObjectId
    principalType: userPrincipalType
  }
}

// The static website's $web container exists only once the website is on, so the data role is
// on the account: uploading to $web, and switching the website on through the blob service.
resource blobDataContributorOnAccount 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (issuerHost == 'static-website') {
  name: guid(storage.id, userObjectId, blobDataContributorRoleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: userObjectId
    principalType: userPrincipalType
  }
}

// Private: the ledger holds billing records and decoded token claims. The names of resources whose
// condition is false are still evaluated and checked (an empty segment fails the template; the
// sandbox's engine does the same): hence the stand-in name when there is no ledger.
resource ledgerContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-06-01' = if (!empty(ledgerContainerName)) {
  parent: blobServices
  name: empty(ledgerContainerName) ? 'none' : ledgerContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Scoped to the ledger container alone, not the account: the ISV's runs read and append there.
resource ledgerDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(ledgerContainerName)) {
  name: empty(ledgerAssignmentName) ? guid(ledgerContainer.id, userObjectId, blobDataContributorRoleId) : ledgerAssignmentName
  scope: ledgerContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributorRoleId)
    principalId: userObjectId
    principalType: userPrincipalType
  }
}

output storageAccountName string = storage.name
output containerName string = issuerHost == 'blob' ? containerName : '$web'
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output webEndpoint string = storage.properties.primaryEndpoints.web
output keyVaultName string = vault.name
output keyVaultUri string = vault.properties.vaultUri
output keyUri string = key.properties.keyUri
output keyUriWithVersion string = key.properties.keyUriWithVersion
output ledgerContainerName string = ledgerContainerName
