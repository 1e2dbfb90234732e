#!/usr/bin/env node
// Writes crates/webhooks/data/{examples,schemas}.json.br, the catalogue `hookfwd send` and `--check-schema`
// embed, from the npm packages tests/receiver pins (run `npm ci` there first):
//
//   - examples: one payload per event/action pair, GitHub's own from @octokit/webhooks-examples (the
//     api.github.com set, the first example of each pair); for a pair that GitHub's OpenAPI description
//     (@octokit/openapi) has a schema for but no example, one generated from that schema, filled with
//     values GitHub's examples use for the same component (a repository, a user…), else placeholders.
//   - schemas: the OpenAPI webhook schemas, rewritten from OpenAPI 3.0 into JSON Schema 2020-12
//     (`nullable` becomes a `null` type; descriptions and formats dropped), with every component they use.
//
// Both are brotli-compressed (quality 11, 16 MiB window): a clean clone and `cargo install` have no
// node_modules, so the result is committed. It prints the pairs it generated and those it could not.
//
// Usage: node scripts/webhook-catalog.mjs [--check]   (--check: fail if the committed files differ)

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, brotliDecompressSync, constants } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modules = join(root, "tests/receiver/node_modules/@octokit");
const out = join(root, "crates/webhooks/data");
const check = process.argv.includes("--check");

const version = (name) => JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")).version;
const versions = { "@octokit/webhooks-examples": version("webhooks-examples"), "@octokit/openapi": version("openapi") };
const pinned = JSON.parse(readFileSync(join(root, "tests/receiver/package.json"), "utf8")).dependencies;
for (const [name, installed] of Object.entries(versions)) {
  if (pinned[name] !== installed) {
    console.error(`webhook-catalog: ${name} ${installed} is installed, tests/receiver pins ${pinned[name]}; run npm ci there`);
    process.exit(1);
  }
}
const examples = JSON.parse(readFileSync(join(modules, "webhooks-examples/api.github.com/index.json"), "utf8"));
const openapi = JSON.parse(readFileSync(join(modules, "openapi/generated/api.github.com.json"), "utf8"));
const components = openapi.components.schemas;
const refName = (ref) => ref.replace("#/components/schemas/", "");

// Every webhook of the description: its event (the X-GitHub-Event GitHub documents), action and schema.
// The action is the schema's `action` enum; repository_dispatch's is free (the dispatch's event_type),
// so its schema applies to any action (`*`).
const webhooks = [];
for (const [key, hook] of Object.entries(openapi["x-webhooks"])) {
  const post = hook.post;
  // The documented anchor names the event; the X-GitHub-Event examples misspell a few (`discussions`).
  const event = post.externalDocs.url.split("#")[1].replaceAll("-", "_");
  const schema = refName(post.requestBody.content["application/json"].schema.$ref);
  const body = components[schema];
  const action = body.properties?.action ?? body.oneOf?.[0]?.properties?.action;
  let actions = [null];
  if (action?.enum) actions = action.enum;
  else if (action) actions = ["*"];
  for (const name of actions) webhooks.push({ event, action: name, schema, key });
}

// GitHub's examples, the first of each pair.
const pairs = new Map();
const keyOf = (event, action) => (action == null ? event : `${event}.${action}`);
for (const { name, examples: list } of examples) {
  for (const payload of list) {
    const key = keyOf(name, payload.action ?? null);
    if (!pairs.has(key)) pairs.set(key, { event: name, action: payload.action ?? null, origin: "example", payload });
  }
}

// Values GitHub's examples hold for each component: walking each example beside its schema.
const donors = new Map();
const schemaOf = (event, action) =>
  webhooks.find((w) => w.event === event && (w.action === action || w.action === "*"))?.schema;
function gather(value, schema, depth = 0) {
  if (!schema || value === null || value === undefined || depth > 40) return;
  if (schema.$ref) {
    const name = refName(schema.$ref);
    if (!donors.has(name)) donors.set(name, value);
    return gather(value, components[name], depth + 1);
  }
  for (const branch of [...(schema.allOf ?? []), ...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    if (branch.$ref || (branch.type === "object") === (typeof value === "object" && !Array.isArray(value))) {
      gather(value, branch, depth + 1);
    }
  }
  if (Array.isArray(value) && schema.items && value.length > 0) gather(value[0], schema.items, depth + 1);
  if (schema.properties && typeof value === "object" && !Array.isArray(value)) {
    for (const [name, sub] of Object.entries(schema.properties)) gather(value[name], sub, depth + 1);
  }
}
for (const pair of pairs.values()) {
  const schema = schemaOf(pair.event, pair.action);
  if (schema) gather(pair.payload, { $ref: `#/components/schemas/${schema}` });
}

// A payload from a schema: required members only, each component from GitHub's examples where one has it.
function placeholder(schema, name) {
  if (schema.enum) return schema.enum.find((v) => v !== null) ?? null;
  switch (schema.format) {
    case "date-time":
      return "2025-01-15T12:00:00Z";
    case "uri":
    case "uri-template":
      return "https://api.github.com/repos/Codertocat/Hello-World";
    case "email":
      return "octocat@github.com";
  }
  const byName = {
    login: "Codertocat",
    name: "Hello-World",
    full_name: "Codertocat/Hello-World",
    node_id: "MDQ6VXNlcjIxMDMxMDY3",
    sha: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    ref: "refs/heads/main",
  };
  return byName[name] ?? name ?? "string";
}
function synth(schema, name, depth = 0, seen = new Set()) {
  if (depth > 30) return null;
  if (schema.$ref) {
    const ref = refName(schema.$ref);
    if (donors.has(ref)) return structuredClone(donors.get(ref));
    if (seen.has(ref)) return null;
    return synth(components[ref], name, depth + 1, new Set([...seen, ref]));
  }
  if (schema.allOf) {
    const parts = schema.allOf.map((s) => synth(s, name, depth + 1, seen));
    return parts.every((p) => p && typeof p === "object" && !Array.isArray(p)) ? Object.assign({}, ...parts) : parts[0];
  }
  const choices = schema.anyOf ?? schema.oneOf;
  if (choices) {
    const branch = choices.find((s) => s.type !== "null" && !(s.enum && s.enum.every((v) => v === null))) ?? choices[0];
    return synth(branch, name, depth + 1, seen);
  }
  if (schema.enum) return placeholder(schema, name);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (type === "object" || schema.properties) {
    const object = {};
    for (const member of schema.required ?? []) {
      object[member] = synth(schema.properties?.[member] ?? {}, member, depth + 1, seen);
    }
    return object;
  }
  switch (type) {
    case "array":
      return Array.from({ length: schema.minItems ?? 0 }, () => synth(schema.items ?? {}, name, depth + 1, seen));
    case "integer":
    case "number":
      return schema.minimum ?? 1;
    case "boolean":
      return false;
    case "string":
      return placeholder(schema, name);
    default:
      return null;
  }
}

const generated = [];
for (const hook of webhooks) {
  if (hook.action === "*") continue;
  const key = keyOf(hook.event, hook.action);
  if (pairs.has(key)) continue;
  const payload = synth({ $ref: `#/components/schemas/${hook.schema}` }, null);
  if (!payload || typeof payload !== "object") {
    console.log(`missing: ${key} (its schema gives no object)`);
    continue;
  }
  // The action first, where GitHub puts it.
  const ordered = hook.action == null ? payload : { action: hook.action, ...payload };
  pairs.set(key, { event: hook.event, action: hook.action, origin: "schema", payload: ordered });
  generated.push(key);
}

// OpenAPI 3.0 into JSON Schema 2020-12; only what validation reads is kept.
const KEPT = ["type", "enum", "const", "required", "pattern", "minItems", "maxItems", "minLength", "maxLength",
  "minimum", "maximum", "multipleOf", "uniqueItems"];
function normalize(schema) {
  if (typeof schema !== "object" || schema === null) return schema;
  if (schema.$ref) return { $ref: schema.$ref };
  const out = {};
  for (const key of KEPT) if (key in schema) out[key] = structuredClone(schema[key]);
  if (schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, normalize(v)]));
  }
  if (schema.items) out.items = normalize(schema.items);
  if ("additionalProperties" in schema) out.additionalProperties = normalize(schema.additionalProperties);
  for (const key of ["allOf", "anyOf", "oneOf"]) if (schema[key]) out[key] = schema[key].map(normalize);
  if (schema.not) out.not = normalize(schema.not);
  if (!schema.nullable) return out;
  if (out.enum && !out.enum.includes(null)) out.enum.push(null);
  if (out.type) {
    out.type = [...new Set([...(Array.isArray(out.type) ? out.type : [out.type]), "null"])];
    return out;
  }
  return out.enum ? out : { anyOf: [out, { type: "null" }] };
}
const used = new Set();
function refs(schema) {
  if (Array.isArray(schema)) return schema.forEach(refs);
  if (typeof schema !== "object" || schema === null) return;
  if (typeof schema.$ref === "string") {
    const name = refName(schema.$ref);
    if (used.has(name)) return;
    used.add(name);
    return refs(components[name]);
  }
  Object.values(schema).forEach(refs);
}
webhooks.forEach((hook) => refs({ $ref: `#/components/schemas/${hook.schema}` }));
const schemas = {
  versions,
  webhooks: webhooks.map(({ event, action, schema }) => ({ event, action, schema })),
  components: Object.fromEntries([...used].sort().map((name) => [name, normalize(components[name])])),
};

const byName = (a, b) => (keyOf(a.event, a.action) < keyOf(b.event, b.action) ? -1 : 1);
const entries = [...pairs.values()].sort(byName);
const catalogue = { versions, examples: entries };

const compress = (value) =>
  brotliCompressSync(Buffer.from(JSON.stringify(value)), {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: 0,
    },
  });
let stale = false;
for (const [name, value] of [["examples.json.br", catalogue], ["schemas.json.br", schemas]]) {
  const path = join(out, name);
  const text = JSON.stringify(value);
  if (check) {
    let committed = "";
    try {
      committed = brotliDecompressSync(readFileSync(path)).toString();
    } catch {}
    if (committed !== text) {
      console.error(`webhook-catalog: ${path} is not what the pinned packages give; run node scripts/webhook-catalog.mjs`);
      stale = true;
    }
    continue;
  }
  const bytes = compress(value);
  writeFileSync(path, bytes);
  console.log(`${name}: ${text.length} bytes of JSON, ${bytes.length} compressed`);
}
if (stale) process.exit(1);
const fromExamples = entries.filter((e) => e.origin === "example").length;
console.log(`${entries.length} event/action pairs: ${fromExamples} from GitHub's examples, ${generated.length} generated from schemas`);
console.log(`generated: ${generated.join(" ")}`);
const noSchema = entries.filter((e) => !schemaOf(e.event, e.action)).map((e) => keyOf(e.event, e.action));
console.log(`examples with no schema: ${noSchema.join(" ") || "none"}`);
