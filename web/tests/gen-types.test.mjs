// The desk's build breaks when the schema breaks the desk: generation refuses operations the
// schema no longer answers, naming them, and the types it generates follow the schema.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const schema = readFileSync(join(web, "..", "schemas", "schema.graphql"), "utf8");

function generate(schemaText) {
  const dir = mkdtempSync(join(tmpdir(), "kefu-desk-gen-"));
  writeFileSync(join(dir, "schema.graphql"), schemaText);
  const run = spawnSync(process.execPath, [join(web, "scripts", "gen-types.mjs")], {
    env: { ...process.env, KEFU_SCHEMA: join(dir, "schema.graphql"), KEFU_GEN_DIR: dir },
    encoding: "utf8",
  });
  return { ...run, dir };
}

test("the committed schema answers every operation of the desk", () => {
  const run = generate(schema);
  assert.equal(run.status, 0, run.stderr);
  const types = readFileSync(join(run.dir, "graphql.ts"), "utf8");
  assert.match(types, /export type MyConversationResult = \{/);
  assert.match(types, /placeInLine: number \| null;/);
});

test("a field the desk reads, renamed in the schema, fails generation naming it", () => {
  const broken = schema.replace("\tplaceInLine: Int\n", "\tplaceInQueue: Int\n");
  assert.notEqual(broken, schema, "the schema has CustomerConversation.placeInLine to rename");
  const run = generate(broken);
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /src\/operations\.graphql:\d+:\d+: Cannot query field "placeInLine" on type "CustomerConversation"/);
});

test("a field whose nullability changes changes the desk's types", () => {
  const changed = schema.replace("\texpectedWaitSecs: Int\n", "\texpectedWaitSecs: Int!\n");
  assert.notEqual(changed, schema);
  const run = generate(changed);
  assert.equal(run.status, 0, run.stderr);
  assert.match(readFileSync(join(run.dir, "graphql.ts"), "utf8"), /expectedWaitSecs: number;/);
});

test("an enum value the schema drops leaves the desk's label tables", () => {
  const dropped = schema.replace(/\n\tSPAM\n/, "\n");
  assert.notEqual(dropped, schema);
  const run = generate(dropped);
  assert.equal(run.status, 0, run.stderr);
  assert.match(readFileSync(join(run.dir, "graphql.ts"), "utf8"), /export type CloseReason = "RESOLVED" \| "CUSTOMER_LEFT" \| "IDLE_TIMEOUT" \| "MOVED_TO_TICKET";/);
});
