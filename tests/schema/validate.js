#!/usr/bin/env node
// Validate runpool messages against schemas/*.schema.json (JSON Schema
// 2020-12, ajv + ajv-formats pinned in package.json).
//
//   node tests/schema/validate.js --schema NAME [--expect-invalid] FILE...
//       NAME: request | result | executor-result | session-state
//       FILE: a .json document, or a .jsonl file (one document per line,
//             blank lines ignored). Exit 0 only when every document is
//             valid (with --expect-invalid: every document is invalid),
//             and at least one document was checked.
//   node tests/schema/validate.js --examples DIR
//       Every DIR/NAME/valid/* must be valid and every DIR/NAME/invalid/*
//       invalid, for each NAME above; each schema's own `examples` must be
//       valid too.
//   node tests/schema/validate.js --codes HEADER
//       HEADER is contract/rp_codes.h. Its RP_CODES list must equal, in
//       order, the enum of error.code in result.schema.json and the codes
//       table in the schemas' README.md, and every code must appear in a
//       valid result example, so the C list, the schema and the docs
//       cannot drift apart. On a mismatch it prints what to paste.
//
// Options: --schemas-dir DIR (default: ../../schemas from this file),
// --verbose (also say why each expected-invalid document is invalid).
// Failures are printed as FILE:LINE: message. Exit status: 0 ok,
// 1 validation failures, 2 usage or setup errors (ajv not installed).
//
// Integration tests run this over every message they saw on the topics,
// so keep the command line stable.
'use strict';

const fs = require('fs');
const path = require('path');

const DOC_SCHEMAS = ['request', 'result', 'executor-result', 'session-state'];

function die(msg) {
  console.error(`validate.js: ${msg}`);
  process.exit(2);
}

// ajv comes from this directory's node_modules only, at the pinned
// versions: a stray global install must not make the test pass or skip.
function loadAjv() {
  const modDir = path.join(__dirname, 'node_modules');
  if (!fs.existsSync(modDir)) {
    die(`${modDir} is missing: run "npm ci" in ${__dirname}`);
  }
  const pins = JSON.parse(
    fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8')).dependencies;
  for (const [name, want] of Object.entries(pins)) {
    const pkg = path.join(modDir, name, 'package.json');
    if (!fs.existsSync(pkg)) {
      die(`${name} is not installed: run "npm ci" in ${__dirname}`);
    }
    const have = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
    if (have !== want) {
      die(`${name} ${have} is installed but package.json pins ${want}: ` +
          `run "npm ci" in ${__dirname}`);
    }
  }
  const Ajv2020 = require(path.join(modDir, 'ajv', 'dist', '2020')).default;
  const addFormats = require(path.join(modDir, 'ajv-formats')).default;
  return { Ajv2020, addFormats };
}

function parseArgs(argv) {
  const opts = {
    schema: null, expectInvalid: false, examples: null, codes: null, verbose: false,
    schemasDir: path.resolve(__dirname, '..', '..', 'schemas'), files: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--schema') opts.schema = next();
    else if (a === '--expect-invalid') opts.expectInvalid = true;
    else if (a === '--examples') opts.examples = next();
    else if (a === '--codes') opts.codes = next();
    else if (a === '--schemas-dir') opts.schemasDir = path.resolve(next());
    else if (a === '--verbose') opts.verbose = true;
    else if (a === '-h' || a === '--help') {
      console.log('usage: validate.js --schema NAME [--expect-invalid] FILE...\n' +
                  '       validate.js --examples DIR\n' +
                  '       validate.js --codes contract/rp_codes.h\n' +
                  `NAME: ${DOC_SCHEMAS.join(' | ')}`);
      process.exit(0);
    } else if (a.startsWith('--')) die(`unknown option ${a}`);
    else opts.files.push(a);
  }
  if (opts.examples !== null && opts.codes !== null) {
    die('--examples and --codes are separate runs');
  }
  if (opts.examples !== null || opts.codes !== null) {
    if (opts.schema || opts.expectInvalid || opts.files.length) {
      die('--examples and --codes take no --schema, --expect-invalid or files');
    }
  } else {
    if (!DOC_SCHEMAS.includes(opts.schema)) {
      die(`--schema must be one of: ${DOC_SCHEMAS.join(', ')}`);
    }
    if (!opts.files.length) die('no files given');
  }
  return opts;
}

function buildAjv(schemasDir) {
  const { Ajv2020, addFormats } = loadAjv();
  // Strict, so a typo in a schema keyword fails loudly instead of being
  // ignored. strictRequired alone is off: it rejects the standard
  // if/then { "required": [...] } form the result schema relies on.
  const ajv = new Ajv2020({ strict: true, strictRequired: false, allErrors: true });
  addFormats(ajv);
  const schemas = {};
  const files = fs.existsSync(schemasDir) ?
    fs.readdirSync(schemasDir).filter((f) => f.endsWith('.schema.json')).sort() : [];
  if (!files.length) die(`no *.schema.json in ${schemasDir}`);
  for (const f of files) {
    const s = JSON.parse(fs.readFileSync(path.join(schemasDir, f), 'utf8'));
    ajv.addSchema(s);
    schemas[f.replace(/\.schema\.json$/, '')] = s;
  }
  const validators = {};
  for (const name of DOC_SCHEMAS) {
    if (!schemas[name]) die(`${schemasDir}/${name}.schema.json is missing`);
    try {
      validators[name] = ajv.getSchema(schemas[name].$id);
    } catch (e) {
      die(`${name}.schema.json does not compile: ${e.message}`);
    }
  }
  return { ajv, schemas, validators };
}

// Documents of one file as {line, text}. Decoding is strict, like the C
// side: invalid UTF-8 or a byte order mark makes the document invalid
// rather than being papered over.
function readDocs(file) {
  const bytes = fs.readFileSync(file);
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    return [{ line: 1, text: null, why: 'not valid UTF-8' }];
  }
  if (!file.endsWith('.jsonl')) return [{ line: 1, text }];
  const docs = [];
  text.split('\n').forEach((l, i) => {
    if (l.trim() !== '') docs.push({ line: i + 1, text: l });
  });
  return docs;
}

function errorsOf(validate, doc) {
  if (doc.text === null) return [doc.why];
  let value;
  try {
    value = JSON.parse(doc.text);
  } catch (e) {
    return [`not JSON: ${e.message}`];
  }
  if (validate(value)) return [];
  return validate.errors.map((e) =>
    `${e.instancePath || '/'} ${e.message}` +
    (e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''));
}

// Check files against one schema; returns [documents checked, failures].
function checkFiles(validators, schema, files, expectInvalid, verbose) {
  let count = 0;
  let failures = 0;
  for (const file of files) {
    let docs;
    try {
      docs = readDocs(file);
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      failures++;
      continue;
    }
    for (const doc of docs) {
      count++;
      const errs = errorsOf(validators[schema], doc);
      const where = `${file}:${doc.line}`;
      if (!expectInvalid) {
        for (const e of errs) console.error(`${where}: ${schema}: ${e}`);
        if (errs.length) failures++;
      } else if (!errs.length) {
        console.error(`${where}: ${schema}: valid, but expected invalid`);
        failures++;
      } else if (verbose) {
        console.log(`${where}: ${schema}: invalid as expected: ${errs[0]}`);
      }
    }
  }
  return [count, failures];
}

function listDir(dir) {
  if (!fs.existsSync(dir)) return null;
  return fs.readdirSync(dir)
    .filter((f) => f.endsWith('.json') || f.endsWith('.jsonl'))
    .sort().map((f) => path.join(dir, f));
}

function runExamples(opts, validators, schemas) {
  let failures = 0;
  for (const name of DOC_SCHEMAS) {
    for (const kind of ['valid', 'invalid']) {
      const dir = path.join(opts.examples, name, kind);
      const files = listDir(dir);
      if (!files || !files.length) {
        console.error(`${dir}: no test vectors (*.json, *.jsonl)`);
        failures++;
        continue;
      }
      const [count, bad] = checkFiles(validators, name, files,
                                      kind === 'invalid', opts.verbose);
      failures += bad;
      console.log(`${name}/${kind}: ${count - bad}/${count} as expected`);
    }
    // A vector that is not even JSON would be "invalid" for any schema, so
    // a typo could hide in invalid/: such vectors must say so in the name.
    for (const file of listDir(path.join(opts.examples, name, 'invalid')) || []) {
      for (const doc of readDocs(file)) {
        let isJson = doc.text !== null;
        try {
          if (isJson) JSON.parse(doc.text);
        } catch (e) {
          isJson = false;
        }
        if (!isJson && !path.basename(file).includes('not-json')) {
          console.error(`${file}:${doc.line}: not JSON; name such vectors *not-json*`);
          failures++;
        }
      }
    }
    const own = schemas[name].examples;
    if (!Array.isArray(own) || !own.length) {
      console.error(`${name}.schema.json: has no examples`);
      failures++;
      continue;
    }
    own.forEach((ex, i) => {
      if (!validators[name](ex)) {
        console.error(`${name}.schema.json: examples[${i}]: ` +
                      validators[name].errors.map((e) =>
                        `${e.instancePath || '/'} ${e.message}`).join('; '));
        failures++;
      }
    });
    console.log(`${name}.schema.json: ${own.length} own examples checked`);
  }
  return failures;
}

// The RP_CODES list of contract/rp_codes.h as [{name, code, meaning}]:
// the body of its #define, up to the first blank line, one
// X(NAME, "code", "meaning") per entry (the header says so).
function readCodes(header) {
  let text;
  try {
    text = fs.readFileSync(header, 'utf8');
  } catch (e) {
    die(`${header}: ${e.message}`);
  }
  const start = text.indexOf('#define RP_CODES(X)');
  if (start < 0) die(`${header}: no "#define RP_CODES(X)"`);
  const body = text.slice(start).split(/\n[ \t]*\n/)[0];
  const entry = /\bX\(\s*([A-Z][A-Z0-9_]*)\s*,\s*"([^"\\]*)"\s*,(?:\s|\\)*"([^"\\]*)"\s*\)/g;
  const codes = [];
  let m;
  while ((m = entry.exec(body)) !== null) {
    codes.push({ name: m[1], code: m[2], meaning: m[3] });
  }
  // An entry in another form would silently drop out of the list.
  const calls = (body.match(/\bX\(/g) || []).length;
  if (!codes.length || calls !== codes.length) {
    die(`${header}: ${calls} X(...) entries, ${codes.length} in the form ` +
        'X(NAME, "code", "meaning")');
  }
  return codes;
}

const CODES_BEGIN = '<!-- rp_codes.h: begin -->';
const CODES_END = '<!-- rp_codes.h: end -->';

function codesTable(codes) {
  return ['| `error.code` | C name | meaning |', '|---|---|---|']
    .concat(codes.map((c) => `| \`${c.code}\` | \`RP_CODE_${c.name}\` | ${c.meaning} |`))
    .join('\n');
}

function checkCodes(opts, schemas, validators) {
  const header = opts.codes;
  const codes = readCodes(header);
  const want = codes.map((c) => c.code);
  let failures = 0;

  const seen = new Set();
  for (const c of want) {
    if (seen.has(c)) {
      console.error(`${header}: code ${c} is listed twice`);
      failures++;
    }
    seen.add(c);
  }

  const def = ((schemas.result || {}).$defs || {}).error_code;
  const have = def && Array.isArray(def.enum) ? def.enum : null;
  if (!have) {
    console.error('result.schema.json: $defs.error_code.enum is missing');
    failures++;
  } else if (JSON.stringify(have) !== JSON.stringify(want)) {
    const missing = want.filter((c) => !have.includes(c));
    const extra = have.filter((c) => !want.includes(c));
    console.error('result.schema.json: $defs.error_code.enum differs from ' +
                  `${header}` +
                  (missing.length ? `; missing: ${missing.join(' ')}` : '') +
                  (extra.length ? `; not in the header: ${extra.join(' ')}` : '') +
                  (!missing.length && !extra.length ? '; order differs' : '') +
                  `\nexpected: "enum": ${JSON.stringify(want)}`);
    failures++;
  }

  const readme = path.join(opts.schemasDir, 'README.md');
  const doc = fs.existsSync(readme) ? fs.readFileSync(readme, 'utf8') : '';
  const b = doc.indexOf(CODES_BEGIN);
  const e = doc.indexOf(CODES_END);
  const table = codesTable(codes);
  if (b < 0 || e < b) {
    console.error(`${readme}: no ${CODES_BEGIN} ... ${CODES_END} block`);
    failures++;
  } else if (doc.slice(b + CODES_BEGIN.length, e).trim() !== table) {
    console.error(`${readme}: the codes table differs from ${header}; ` +
                  `expected between the markers:\n${table}`);
    failures++;
  }

  // Each code in at least one valid result vector, so the schema and the
  // C parser (tests/unit/test_msg.c) are both shown to accept it.
  const dir = path.join(opts.schemasDir, 'examples', 'result', 'valid');
  const used = new Set();
  for (const file of listDir(dir) || []) {
    for (const d of readDocs(file)) {
      if (d.text === null) continue;
      try {
        const v = JSON.parse(d.text);
        if (validators.result(v) && v.error) used.add(v.error.code);
      } catch (err) {
        // not JSON: --examples reports it
      }
    }
  }
  const unused = want.filter((c) => !used.has(c));
  if (unused.length) {
    console.error(`${dir}: no valid example uses error.code ${unused.join(', ')}`);
    failures++;
  }
  if (!failures) {
    console.log(`validate.js: ${want.length} codes of ${header} match ` +
                'result.schema.json, README.md and the examples');
  }
  return failures;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { schemas, validators } = buildAjv(opts.schemasDir);
  if (opts.codes !== null) {
    const failures = checkCodes(opts, schemas, validators);
    if (failures) {
      console.error(`validate.js: ${failures} failure(s)`);
      process.exit(1);
    }
    return;
  }
  if (opts.examples !== null) {
    const failures = runExamples(opts, validators, schemas);
    if (failures) {
      console.error(`validate.js: ${failures} failure(s)`);
      process.exit(1);
    }
    return;
  }
  const [count, failures] = checkFiles(validators, opts.schema, opts.files,
                                       opts.expectInvalid, opts.verbose);
  if (!count) {
    console.error('validate.js: no documents found in the given files');
    process.exit(1);
  }
  if (failures) {
    console.error(`validate.js: ${failures} of ${count} document(s) ` +
                  (opts.expectInvalid ? 'valid, expected invalid' : 'invalid'));
    process.exit(1);
  }
  console.log(`validate.js: ${count} document(s) ${opts.expectInvalid ? 'invalid' : 'valid'} ` +
              `as expected against ${opts.schema}`);
}

main();
