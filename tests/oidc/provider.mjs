// A certified OpenID provider (oidc-provider) for tests/python/test_people.py: people sign in
// through its own login and consent forms (dev interactions: any password), and it issues
// RS256 ID tokens with their e-mail and groups. Usage: node provider.mjs <port>; prints
// {"issuer": ...} once it listens.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const groups = { alice: ['finance'], bob: ['support'] };
const redirect = 'http://127.0.0.1/callback';

const provider = new Provider(issuer, {
  clients: ['agentiam-app', 'other-app'].map((id) => ({
    client_id: id,
    client_secret: `${id}-secret-0123456789abcdef`,
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'email', 'groups'],
  // Scope claims go into the ID token itself (the broker reads no userinfo).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@acme.example`, groups: groups[id] ?? [] };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ issuer, redirect })}\n`);
});
