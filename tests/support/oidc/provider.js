// A real OpenID Connect provider (oidc-provider) on loopback for the SPE's sign-in tests.
//
//   node provider.js <config.json>
//
// config.json: {"issuer": "http://127.0.0.1:<port>", "port": <port>,
//               "access_token_ttl": <seconds>, "clients": [<oidc-provider client metadata>],
//               "users": {"<name>": {"password": "...", "groups": [...], "acr": "...",
//                                    "amr": [...], "blocked": false}}}
// Users are read from the file at each use, so a test changes a person's groups or blocks them
// while the provider runs. The login page is a plain form (#username, #password, #login);
// consent is granted without asking. A blocked or unknown person has no account: their tokens
// stop working at userinfo and at refresh.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
const settings = () => JSON.parse(readFileSync(configPath, 'utf8'));
const person = (name) => {
  const user = settings().users[name];
  return user && !user.blocked ? user : undefined;
};

const start = settings();
const provider = new Provider(start.issuer, {
  clients: start.clients,
  cookies: { keys: [start.cookie_key || 'spe-test-oidc-provider-cookie-key'] },
  scopes: ['openid', 'offline_access', 'profile', 'groups'],
  claims: {
    openid: ['sub', 'acr', 'amr'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false, // the groups claim goes into the ID token as well as userinfo
  clockTolerance: 0, // an access token past its ttl is refused at once (the default allows 15 s)
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  ttl: { AccessToken: start.access_token_ttl || 3600, IdToken: 3600, Session: 3600 },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!person(id)) return undefined;
    return {
      accountId: id,
      async claims() {
        const user = person(id) || {};
        return { sub: id, preferred_username: id, name: id, groups: user.groups || [] };
      },
    };
  },
});

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message) {
  return `<!doctype html><html><body><h1>Test identity provider</h1>
<p id="message">${escapeHtml(message || '')}</p>
<form method="post" action="/interaction/${uid}/login">
<input id="username" name="username" autocomplete="off">
<input id="password" name="password" type="password">
<button id="login" type="submit">Sign in</button></form></body></html>`;
}

async function formBody(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return new URLSearchParams(text);
}

async function grantConsent(req, res, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') return grantConsent(req, res, details);
  if (action !== 'login' || req.method !== 'POST') {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(loginPage(uid));
  }
  const form = await formBody(req);
  const name = form.get('username') || '';
  const user = person(name);
  if (!user || user.password !== form.get('password')) {
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end(loginPage(uid, 'wrong user name or password'));
  }
  const login = { accountId: name, acr: user.acr || 'urn:spe:password', amr: user.amr || ['pwd'] };
  return provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
}

const handle = provider.callback();
http.createServer((req, res) => {
  const match = req.url.match(/^\/interaction\/([^/?]+)(?:\/(login))?/);
  if (!match) return handle(req, res);
  return interaction(req, res, match[1], match[2]).catch((error) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${error.message}`);
  });
}).listen(start.port, '127.0.0.1', () => console.log(`oidc provider listening at ${start.issuer}`));
