// Drives the emulator with the official Node.js clients and prints what each call got.
// Input (argv[2], JSON): {"endpoint", "credentials": {...}, "calls": [{"client": "ecs" | "mns",
// "method", "request", "credentials"?}]}. Output (stdout, JSON): one entry a call,
// {"ok": true, "body"} or {"ok": false, "code", "status", "message"}. Run by test_node_clients.py.
'use strict';

const path = require('path');
const modules = process.env.REINIT_NODE_MODULES;
const load = (name) => require(path.join(modules, name));

const Ecs = load('@alicloud/ecs20140526');
const { $OpenApiUtil } = load('@alicloud/openapi-core');
const MNS = load('@alicloud/mns');

function ecsClient(endpoint, cred) {
  const url = new URL(endpoint);
  return new Ecs.default(new $OpenApiUtil.Config({
    accessKeyId: cred.accessKeyId, accessKeySecret: cred.accessKeySecret, securityToken: cred.securityToken,
    endpoint: url.host, protocol: 'http', regionId: cred.regionId, signatureAlgorithm: cred.signatureAlgorithm,
  }));
}

function mnsClient(endpoint, cred) {
  return new MNS('1234567890', {
    endpoint, accessKeyId: cred.accessKeyId, accessKeySecret: cred.accessKeySecret,
    securityToken: cred.securityToken, readTimeout: 5000, connectTimeout: 5000,
  });
}

async function call(plan, step) {
  const cred = Object.assign({}, plan.credentials, step.credentials || {});
  try {
    if (step.client === 'ecs') {
      const client = ecsClient(plan.endpoint, cred);
      const Request = Ecs[step.method.charAt(0).toUpperCase() + step.method.slice(1) + 'Request'];
      const response = await client[step.method](new Request(step.request || {}));
      return { ok: true, status: response.statusCode, body: response.body.toMap() };
    }
    const client = mnsClient(plan.endpoint, cred);
    const response = await client[step.method](...step.request);
    return { ok: true, status: response.code, body: response.body };
  } catch (err) {
    // ECS: the SDK's error carries code and statusCode; MNS: its name is 'MNS' + Code + 'Error'.
    const mns = /^MNS(.+)Error$/.exec(err.name || '');
    return {
      ok: false,
      code: err.code || (mns && mns[1]) || err.name,
      status: err.statusCode || (/failed with (\d+)/.exec(err.message) || [])[1] * 1 || null,
      message: err.message,
    };
  }
}

(async () => {
  const plan = JSON.parse(process.argv[2]);
  const results = [];
  for (const step of plan.calls) {
    results.push(await call(plan, step));
  }
  process.stdout.write(JSON.stringify(results));
})();
