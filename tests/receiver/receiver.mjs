// A real third-party webhook receiver for hookfwd's end-to-end tests: @octokit/webhooks'
// Node middleware, verifying X-Hub-Signature-256 with WEBHOOK_SECRET.
//
// stdout, one line each:
//   listening http://127.0.0.1:PORT/PATH          (first line; PORT chosen by the OS)
//   {"type":"event","id":…,"name":…,"action":…}    (a delivery verified and parsed)
//   {"type":"rejected","status":…,"id":…,"name":…,"error":…}  (any answer that is not 2xx)
//
// Environment: WEBHOOK_SECRET (required), WEBHOOK_PATH (default /webhook).

import { createServer } from "node:http";
import { Webhooks, createNodeMiddleware } from "@octokit/webhooks";

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("receiver: set WEBHOOK_SECRET");
  process.exit(2);
}
const path = process.env.WEBHOOK_PATH || "/webhook";

const webhooks = new Webhooks({ secret });
webhooks.onAny(({ id, name, payload }) => {
  const action = payload && typeof payload === "object" && "action" in payload ? payload.action : null;
  console.log(JSON.stringify({ type: "event", id, name, action }));
});
// Rejections are reported from the answer below, which also covers the ones the middleware
// makes before verifying (missing headers, wrong content type); this keeps the default
// error logging off stderr noise without hiding anything.
webhooks.onError(() => {});

const middleware = createNodeMiddleware(webhooks, {
  path,
  log: { debug() {}, info() {}, warn() {}, error() {} },
});

const server = createServer(async (request, response) => {
  let answer = "";
  const end = response.end.bind(response);
  response.end = (body, ...rest) => {
    if (body !== undefined && body !== null) answer += body.toString();
    return end(body, ...rest);
  };
  response.on("finish", () => {
    if (response.statusCode >= 200 && response.statusCode < 300) return;
    let error = answer.trim();
    try {
      error = JSON.parse(answer).error ?? error;
    } catch {}
    console.log(
      JSON.stringify({
        type: "rejected",
        status: response.statusCode,
        id: request.headers["x-github-delivery"] ?? null,
        name: request.headers["x-github-event"] ?? null,
        error,
      }),
    );
  });
  const handled = await middleware(request, response);
  if (!handled && !response.headersSent) {
    response.writeHead(404, { "content-type": "text/plain" }).end(`no webhook route at ${request.url}\n`);
  }
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  console.log(`listening http://127.0.0.1:${port}${path}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
