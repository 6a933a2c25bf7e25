// A real OpenID provider for Watchgate's identity tests: the certified `oidc-provider`, on loopback,
// issuing JWT access tokens (ES256) for one resource, the gateway's URL.
//
//   node oidc-provider.mjs PORT RESOURCE
//
// Anyone signs in with any password through the provider's own development pages (the tests drive
// them with an HTTP client). The access token carries `groups` from the table below, so a test can
// give two users different rights. Clients register themselves (RFC 7591), as MCP clients do.
// Prints "ready <issuer>" on stdout once it listens.
import Provider, { errors } from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';

const [port, resource] = process.argv.slice(2);
if (!port || !resource) {
  console.error('usage: node oidc-provider.mjs PORT RESOURCE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const GROUPS = { alice: ['engineering'], bob: ['support'] };

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: 'test-es256', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  jwks: { keys: [signing] },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  scopes: ['openid', 'offline_access', 'mcp'],
  clientDefaults: {
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    id_token_signed_response_alg: 'ES256',
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'mcp',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  extraTokenClaims: (ctx, token) => ({ groups: GROUPS[token.accountId] ?? [] }),
});
provider.proxy = false;

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
