// Writes dist/SOURCES: the SHA-256 of everything the build reads. kefu embeds dist/ in its
// binary, and its test `desk::tests::the_built_desk_is_current` recomputes this hash the
// same way, so a commit that changes the desk's sources without rebuilding dist/ fails.
// The rule (both sides): the files under ROOTS (directories walked, `src/gen` left out: it
// is generated), paths relative to web/ with `/`, sorted bytewise; for each,
// `<path>\n<length>\n<bytes>` into one SHA-256.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const ROOTS = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "scripts", "src"];
const SKIP = ["src/gen"];

function walk(rel, out) {
  if (SKIP.includes(rel)) return;
  const abs = join(web, rel);
  if (statSync(abs).isDirectory()) {
    for (const name of readdirSync(abs)) walk(`${rel}/${name}`, out);
  } else {
    out.push(rel);
  }
}

const files = [];
for (const root of ROOTS) walk(root, files);
files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
const hash = createHash("sha256");
for (const f of files) {
  const bytes = readFileSync(join(web, f));
  hash.update(`${f}\n${bytes.length}\n`);
  hash.update(bytes);
}
const digest = hash.digest("hex");
writeFileSync(join(web, "dist", "SOURCES"), `${digest}\n`);
console.log(`dist/SOURCES: ${digest} over ${files.length} files`);
