// Lints Cypher statements with Neo4j's own front end
// (@neo4j-cypher/language-support: the parser and semantic analysis of the
// Neo4j query language). Input: a JSON file of [{name, text, params}].
// Every parameter is declared with its value, so an undeclared `$name` is an
// error too. Exit 1 on any error-level diagnostic. Run by the ignored test
// `cypher_statements_pass_the_neo4j_linter` (scripts/test.sh installs this).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [file, moduleDir] = process.argv.slice(2);
const require = createRequire(`${moduleDir}/`);
const loaded = await import(require.resolve('@neo4j-cypher/language-support'));
const ls = loaded.lintCypherQuery ? loaded : loaded.default;
const statements = JSON.parse(readFileSync(file, 'utf8'));
let failed = 0;
for (const { name, text, params } of statements) {
  const { diagnostics } = ls.lintCypherQuery(text, { parameters: params });
  const errors = diagnostics.filter((d) => d.severity === 1);
  const warnings = diagnostics.filter((d) => d.severity !== 1);
  for (const d of warnings) console.log(`warning ${name}: ${d.message}`);
  if (errors.length > 0) {
    failed += 1;
    console.log(`error ${name}:\n${text}`);
    for (const d of errors) console.log(`  ${d.message} (at ${d.offsets?.start ?? '?'})`);
  }
}
console.log(`${statements.length} statements, ${failed} with errors`);
process.exit(failed > 0 ? 1 : 0);
