// `deid-gateway conformance`: the PS3.15 E.3.10 statement of what the configured gateway does to each
// attribute for a role, printed from the config file (the same statement `GET /conformance` serves).
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.ts';
import { policyFor } from './config/resolve.ts';
import { conformanceStatement, statementMarkdown } from './deid/conformance.ts';

const USAGE = `usage: deid-gateway conformance [--role researcher|uploader] [--config FILE] [--format markdown|json]

  Prints which attributes the configured gateway removes, empties, replaces, cleans or keeps for the
  role (PS3.15 Annex E, Basic Profile + options + overrides), and which options are on.

  --role     researcher (default) or uploader
  --config   the gateway config (default: DEID_GATEWAY_CONFIG or config/gateway.yaml)
  --format   markdown (default) or json

  The de-identification secret is not read: nothing in the statement depends on it.
  Exit status: 0 printed, 2 usage error, 78 config error (or no deid section).
`;

/** Returns the exit code; config errors propagate (the caller maps them to 78). */
export async function conformanceCommand(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parseOptions>;
  try {
    values = parseOptions(argv);
  } catch (error) {
    process.stderr.write(`conformance: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { role, format } = values;
  if ((role !== 'researcher' && role !== 'uploader') || (format !== 'markdown' && format !== 'json')) {
    process.stderr.write(`conformance: --role researcher|uploader and --format markdown|json\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(values.config ?? process.env['DEID_GATEWAY_CONFIG'] ?? 'config/gateway.yaml');
  if (!config.deid) {
    process.stderr.write(`conformance: the config has no deid section: the ${role} role is refused, nothing is de-identified\n`);
    return 78;
  }
  // The effects are described, never a pseudonym, so a throw-away key stands in for the real one:
  // whoever writes the statement need not hold the secret.
  const policy = policyFor(config, role, randomBytes(32).toString('hex'));
  const statement = conformanceStatement(policy, { role, ...(role === 'researcher' ? { renderedOffered: config.deid.researcherRendered } : {}) });
  process.stdout.write(format === 'json' ? `${JSON.stringify(statement, null, 2)}\n` : `${statementMarkdown(statement)}\n`);
  return 0;
}

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      role: { type: 'string', default: 'researcher' },
      config: { type: 'string', short: 'c' },
      format: { type: 'string', default: 'markdown' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
}
