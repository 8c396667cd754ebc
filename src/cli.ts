import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors.ts';

const USAGE = `usage: deid-gateway <command> [options]

commands:
  serve [--config FILE]     run the gateway (default config: config/gateway.yaml)
  demo                      start a local Orthanc with the shared samples and the gateway, print a token per role
  deidentify IN… --out DIR  de-identify files and folders offline with the same engine (--help for options)
  conformance [--role R]    print what the configured profile does per attribute (--format markdown|json)
`;

/** The command line. Returns the exit code. */
export async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': {
        const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
        const { main } = await import('./main.ts');
        await main(values.config ?? process.env['DEID_GATEWAY_CONFIG'] ?? 'config/gateway.yaml');
        return 0; // the server keeps the process alive until a signal
      }
      case 'demo': {
        const { runDemo } = await import('./demo/demo.ts');
        await runDemo();
        return 0;
      }
      case 'deidentify': {
        const { deidentifyCommand } = await import('./cli-deidentify.ts');
        return await deidentifyCommand(rest);
      }
      case 'conformance': {
        const { conformanceCommand } = await import('./cli-conformance.ts');
        return await conformanceCommand(rest);
      }
      case undefined:
      case 'help':
      case '--help':
        process.stdout.write(USAGE);
        return command ? 0 : 2;
      default:
        process.stderr.write(`unknown command: ${command}\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`deid-gateway: ${error.message}\n`);
      return 78; // EX_CONFIG
    }
    process.stderr.write(`deid-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await run(process.argv.slice(2));
}
