// An OpenID provider for the tests (npm's oidc-provider, a certified implementation), on loopback.
// Usage: node oidc-provider.mjs CONFIG.json, where the file holds
//   {"port": 0-65535, "issuer": "http://127.0.0.1:PORT", "client": {"client_id", "client_secret",
//    "redirect_uris": [...]}, "accounts": {"LOGIN": {"email", "groups": [...]}, ...}}
// Any password signs an account in (the library's development login form); consent is given.
// POST /_test/id_token {"mode": "other_key" | "other_audience" | "expired" | ""} makes the token
// endpoint answer with an ID token re-signed that way, to check that the client refuses it.
import { readFileSync } from 'node:fs';

import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const KID = 'test-signing-key';

async function signingKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return privateKey;
}

const key = await signingKey();
const otherKey = await signingKey();
const jwk = { ...(await exportJWK(key)), kid: KID, alg: 'RS256', use: 'sig' };

const provider = new Provider(config.issuer, {
  clients: [{ ...config.client, grant_types: ['authorization_code'], response_types: ['code'] }],
  jwks: { keys: [jwk] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name', 'groups'],
  },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email_verified: true, ...account };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

let mode = '';

async function resigned(idToken) {
  const claims = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'other_audience') claims.aud = 'another-client';
  if (mode === 'expired') Object.assign(claims, { iat: now - 7200, exp: now - 3600 });
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: KID, typ: 'JWT' })
    .sign(mode === 'other_key' ? otherKey : key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/id_token' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    mode = JSON.parse(body || '{}').mode || '';
    ctx.status = 204;
    return;
  }
  await next();
  if (ctx.path === '/token' && mode && ctx.body?.id_token) {
    ctx.body = { ...ctx.body, id_token: await resigned(ctx.body.id_token) };
  }
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
